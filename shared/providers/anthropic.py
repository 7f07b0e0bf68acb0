"""The `anthropic` kind: Anthropic's Messages API behind the OpenAI chat-completions shape.

Translated both ways: system and developer messages are hoisted into `system`; text and image parts become
content blocks (data URLs as base64 sources, http URLs as url sources); assistant `tool_calls` become
`tool_use` blocks and `tool` messages `tool_result` blocks (consecutive same-role messages merged, as the API
requires alternation); tools, tool_choice, stop, temperature (capped at Anthropic's maximum of 1), top_p and
user. `stop_reason` maps to `finish_reason` (the original kept as `native_finish_reason`). JSON mode:
`json_schema` is a forced tool whose input is the answer (so the schema binds), `json_object` a system
instruction. Streams: message_start / content_block_* / message_delta / message_stop / ping / error events
become OpenAI chunks, tool input deltas included. Usage: prompt tokens are input + cache read + cache write
(cached_tokens = cache reads), exactly the same streamed or not.
`reasoning` becomes `thinking` with a budget (shared/chat/reasoning.py; temperature and top_p are then left to the
API, which allows no others), and thinking blocks come back as `reasoning` (unless excluded).
Not translated (knowingly): n > 1 and logprobs (the API has neither: 400), seed, presence and
frequency penalties (dropped), earlier turns' thinking (not sent back).
"""

from __future__ import annotations

import base64
import time
from contextlib import aclosing
from typing import Any, AsyncIterator

import orjson

from shared.aws.secrets import vendor_key
from shared.catalog import Endpoint
from shared.chat import reasoning
from shared.chat.schema import ChatRequest, ImagePart, Message, TextPart, ToolChoiceFunction
from shared.errors import BadRequestError, SwitchyardError, UpstreamError
from shared.providers.base import (JSON_INSTRUCTION, Completion, Marker, Usage, alternating_turns, assistant_choice,
                                   call_arguments, post, read_ok, sse_data, tool_call, upstream_error)
from shared.providers.http import Response

VERSION = "2023-06-01"
DEFAULT_URL = "https://api.anthropic.com"
JSON_TOOL = "json_answer"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "refusal": "content_filter", "pause_turn": "stop"}
ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500, "invalid_request_error": 400,
                "authentication_error": 401, "permission_error": 403, "not_found_error": 404,
                "request_too_large": 413}


# -- request ------------------------------------------------------------------------------------------------
def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media = header[5:].split(";")[0] or "image/png"
        if ";base64" not in header:
            data = base64.b64encode(data.encode()).decode()
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text()}]
    blocks: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    else:
        for part in message.content or ():
            if isinstance(part, TextPart):
                blocks.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                blocks.append(_image(part.image_url.url))
    for call in message.tool_calls or ():
        arguments = call_arguments(call)
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments})
    return blocks


def build_request(request: ChatRequest, endpoint: Endpoint, *, stream: bool) -> dict[str, Any]:
    if request.logprobs:
        raise BadRequestError("logprobs are not available from Anthropic models",
                              metadata={"field": "logprobs", "provider_name": endpoint.provider.id})
    if request.n > 1:
        raise BadRequestError("n > 1 is not supported by Anthropic models",
                              metadata={"field": "n", "provider_name": endpoint.provider.id})
    system, messages = alternating_turns(request.messages, _blocks)
    body: dict[str, Any] = {
        "model": endpoint.upstream_model, "messages": messages,
        "max_tokens": request.output_limit or endpoint.config.max_output or 4096,
    }
    thinking = reasoning.budget(request, body["max_tokens"])
    if thinking is not None:
        if thinking < reasoning.FLOOR:
            raise BadRequestError(f"reasoning on Anthropic models needs a budget of at least {reasoning.FLOOR} "
                                  "tokens, under max_tokens", metadata={"field": "reasoning",
                                                                         "provider_name": endpoint.provider.id})
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking}  # (sampling is the API's own then)
    else:
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)
        if request.top_p is not None:
            body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.user:
        body["metadata"] = {"user_id": request.user}
    tools = [{"name": t.function.name, "description": t.function.description or "",
              "input_schema": t.function.parameters or {"type": "object", "properties": {}}}
             for t in request.tools or ()]
    choice = request.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        body["tool_choice"] = {"type": "tool", "name": choice.function.name}
    elif choice in ("auto", "required", "none"):
        body["tool_choice"] = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    schema = request.json_schema
    if schema is not None:  # the answer is the input of a tool the model must call: the schema binds
        tools.append({"name": JSON_TOOL, "description": "Give the answer.", "input_schema": schema})
        body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
    elif request.wants_json:
        system.append(JSON_INSTRUCTION)
    if tools:
        body["tools"] = tools
    if system:
        body["system"] = "\n\n".join(system)
    if stream:
        body["stream"] = True
    return body


def _headers(endpoint: Endpoint) -> dict[str, str]:
    p = endpoint.provider
    headers = {"content-type": "application/json", "anthropic-version": VERSION, **p.headers}
    key = vendor_key(p.api_key_env, p.api_key_secret)
    if key:
        headers["x-api-key"] = key
    return headers


# -- response -----------------------------------------------------------------------------------------------
def usage_of(u: Any) -> Usage | None:
    """Anthropic's usage; None when it is missing or not believable (then the gateway counts)."""
    if not u or not isinstance(u, dict):
        return None
    cache_read, cache_write = u.get("cache_read_input_tokens"), u.get("cache_creation_input_tokens")
    return Usage.checked(u.get("input_tokens"), u.get("output_tokens"), cache_read,
                         extra_prompt=(cache_read, cache_write))


def _error(status: int, raw: bytes, headers: dict[str, str], endpoint: Endpoint) -> SwitchyardError:
    message, kind = raw[:500].decode("utf-8", "replace"), None
    try:
        err = orjson.loads(raw).get("error") or {}
        message, kind = str(err.get("message") or message), err.get("type")
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if kind == "invalid_request_error" and "prompt is too long" in message.lower():
        kind = "context_length_exceeded"
    return upstream_error(status, message, provider=endpoint.provider.id, code=kind,
                          retry_after=headers.get("retry-after"))


class AnthropicProvider:
    honours_deadline = True  # all its I/O goes through base.post
    streams_by_read = True  # its stream comes through sse_data

    async def _post(self, request: ChatRequest, endpoint: Endpoint, *, stream: bool) -> Response:
        url = (endpoint.provider.base_url or DEFAULT_URL).rstrip("/") + "/v1/messages"
        return await post(endpoint, url, _headers(endpoint), orjson.dumps(build_request(request, endpoint, stream=stream)))

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion:
        raw = await read_ok(await self._post(request, endpoint, stream=False), endpoint, _error)
        try:
            data = orjson.loads(raw)
            blocks = data["content"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError(f"{endpoint.provider.id} returned a body that is not a message",
                                metadata={"provider_name": endpoint.provider.id}) from None
        text, calls, thought = [], [], []
        for block in blocks:
            if block.get("type") == "thinking":
                thought.append(block.get("thinking", ""))
            elif block.get("type") == "text":
                text.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                if block.get("name") == JSON_TOOL and request.json_schema is not None:
                    text.append(orjson.dumps(block.get("input")).decode())
                else:
                    calls.append(tool_call(block.get("id"), block.get("name"), block.get("input", {})))
        native = data.get("stop_reason")
        choice = assistant_choice(text, calls, FINISH.get(native or "", "stop"), native)
        if thought and reasoning.shown(request):
            choice["message"]["reasoning"] = "".join(thought)
        body = {"id": data.get("id"), "object": "chat.completion", "created": int(time.time()),
                "model": data.get("model", endpoint.upstream_model), "choices": [choice]}
        return Completion(body, usage_of(data.get("usage")) or Usage(estimated=True), choice["finish_reason"],
                          data.get("id"))

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[list[dict[str, Any]] | Marker]:
        resp = await self._post(request, endpoint, stream=True)
        translator = _StreamTranslator(request, endpoint)
        async with aclosing(sse_data(resp, endpoint, _error)) as reads:
            async for read in reads:
                if read.__class__ is Marker:
                    yield read
                    continue
                chunks = []
                for data in read:
                    chunks += translator.event(data)
                    if translator.done:
                        break
                if chunks:
                    yield chunks
                if translator.done:
                    return


class _StreamTranslator:
    """Anthropic SSE events → OpenAI chat.completion.chunk dicts."""

    def __init__(self, request: ChatRequest, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.json_tool = request.json_schema is not None
        self.show_reasoning = reasoning.shown(request)
        self.id = ""
        self.model = endpoint.upstream_model
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index → tool call index
        self.answer_blocks: set[int] = set()  # the forced JSON-answer tool's blocks: streamed as content
        self.native: str | None = None
        self.done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time()), "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": native}]}

    def event(self, data: bytes) -> list[dict[str, Any]]:
        """One event's data (its `event:` line only names the type that the data repeats) → chunks."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            raise UpstreamError(f"{self.endpoint.provider.id} sent a stream event that is not a JSON object",
                                metadata={"provider_name": self.endpoint.provider.id})
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id, self.model = message.get("id", ""), message.get("model", self.model)
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block, index = event.get("content_block") or {}, event.get("index", 0)
            if block.get("type") == "tool_use":
                if self.json_tool and block.get("name") == JSON_TOOL:
                    self.answer_blocks.add(index)
                    return []
                n = self.tools[index] = len(self.tools)
                return [self._chunk({"tool_calls": [{"index": n, "id": block.get("id"), "type": "function",
                                                     "function": {"name": block.get("name"), "arguments": ""}}]})]
            return []
        if kind == "content_block_delta":
            delta, index = event.get("delta") or {}, event.get("index", 0)
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "thinking_delta":
                return [self._chunk({"reasoning": delta.get("thinking", "")})] if self.show_reasoning else []
            if delta.get("type") == "input_json_delta":
                partial = delta.get("partial_json", "")
                if index in self.answer_blocks:
                    return [self._chunk({"content": partial})]
                return [self._chunk({"tool_calls": [{"index": self.tools.get(index, 0),
                                                     "function": {"arguments": partial}}]})]
            return []
        if kind == "message_delta":
            self.native = (event.get("delta") or {}).get("stop_reason") or self.native
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            self.done = True
            finish = FINISH.get(self.native or "", "stop")
            if self.json_tool and finish == "tool_calls" and not self.tools:
                finish = "stop"
            u = usage_of(self.usage)
            final = self._chunk({}, finish, self.native)
            return [final, {**self._chunk({}), "choices": [], "usage": u.to_openai()}] if u else [final]
        if kind == "error":
            err = event.get("error") or {}
            status = ERROR_STATUS.get(err.get("type", ""), 502)
            raise upstream_error(status, str(err.get("message", "stream error")), provider=self.endpoint.provider.id,
                                 code=err.get("type"))
        return []  # ping and future event types
