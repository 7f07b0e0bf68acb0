"""The legacy text completions (`POST /api/v1/completions`): a `prompt` instead of `messages`, `text` instead of a
message, as OpenRouter serves them in front of chat models.

The prompt becomes one user message and every other field is the chat request's own (same names, same checks, same
routing and healing), except: `logprobs` (an integer here: how many top log-probabilities) becomes the chat's
`logprobs: true, top_logprobs: n`; what the chat shape cannot express is refused with a 400: `echo`, `suffix`,
`best_of` above 1, a batch of prompts, or a prompt of token ids.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson

from shared.chat import frames
from shared.chat.schema import ChatRequest, json_object, parse_chat_request
from shared.errors import BadRequestError


def _invalid(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"Invalid request: {field}: {message}", metadata={"field": field})


def parse(raw: bytes) -> ChatRequest:
    """A completions body → the chat request it stands for, or a 400 naming the field."""
    data = json_object(raw)
    if "messages" in data:
        raise _invalid("messages", "belongs to /chat/completions: a completion takes a prompt")
    prompt = data.pop("prompt", None)
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _invalid("prompt", "is required, as a string (one prompt a call; token ids are not accepted)"
                       if prompt is None or not isinstance(prompt, list) else
                       "takes one prompt a call (as a string), not a batch or token ids")
    if data.get("echo"):
        raise _invalid("echo", "is not supported (the chat models behind this route cannot echo the prompt)")
    data.pop("echo", None)  # false: the default
    if data.get("suffix") is not None:
        raise _invalid("suffix", "is not supported (insertion needs a model trained for it)")
    data.pop("suffix", None)
    best_of = data.pop("best_of", None)
    if best_of not in (None, 1):
        raise _invalid("best_of", "is not supported above 1")
    logprobs = data.pop("logprobs", None)
    if logprobs is not None:
        if type(logprobs) is not int or not 0 <= logprobs <= 20:
            raise _invalid("logprobs", "is the number of top log-probabilities, an integer from 0 to 20")
        data["logprobs"] = True
        data["top_logprobs"] = logprobs
    data["messages"] = [{"role": "user", "content": prompt}]
    return parse_chat_request(orjson.dumps(data))


def _legacy_logprobs(scored: Any, offset: int = 0) -> dict[str, Any] | None:
    """The chat shape's logprobs (`content`: a list of tokens) in the legacy one (parallel lists)."""
    if not isinstance(scored, dict) or not isinstance(scored.get("content"), list):
        return None
    tokens = [t.get("token", "") for t in scored["content"]]
    offsets, at = [], offset
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {"tokens": tokens, "token_logprobs": [t.get("logprob") for t in scored["content"]],
            "top_logprobs": [{o.get("token", ""): o.get("logprob") for o in t.get("top_logprobs") or ()}
                             for t in scored["content"]], "text_offset": offsets}


def _choice(choice: dict[str, Any], text: str) -> dict[str, Any]:
    return {"index": choice.get("index", 0), "text": text, "logprobs": _legacy_logprobs(choice.get("logprobs")),
            "finish_reason": choice.get("finish_reason"),
            **({"native_finish_reason": choice["native_finish_reason"]} if "native_finish_reason" in choice else {})}


def completion(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion body → a text completion."""
    out = {k: v for k, v in body.items() if k != "choices"}
    out["object"] = "text_completion"
    out["choices"] = [_choice(c, (c.get("message") or {}).get("content") or "") for c in body.get("choices") or ()]
    return out


async def chunks(relay: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chat relay's frames → text completion chunks (the final usage chunk and error events as they are)."""
    async for kind, item in frames.read(relay):
        if kind == frames.COMMENT:
            yield item
        elif kind == frames.END:
            yield b"data: [DONE]\n\n"
        else:
            item["object"] = "text_completion"
            item["choices"] = [_choice(c, (c.get("delta") or {}).get("content") or "") for c in item.get("choices") or ()]
            yield b"data: " + orjson.dumps(item) + b"\n\n"
