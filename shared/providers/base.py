"""What every vendor adapter implements, and the shapes it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Protocol

import orjson

from shared.catalog import Endpoint
from shared.chat.schema import ChatRequest
from shared.config import get_settings
from shared.providers.http import ConnectError, ReadTimeout, TransportError, client

if TYPE_CHECKING:
    from shared.providers.http import Response
from shared.errors import (BadRequestError, PayloadTooLargeError, RateLimitedError, SwitchyardError,
                           UpstreamError, UpstreamTimeoutError)


MAX_TOKENS = 100_000_000  # per count and call: no model comes near it; beyond, a count is a bug or a lie


def token_count(value: Any) -> int | None:
    """A vendor's token count if it is believable: a non-negative integer (or integral float) within MAX_TOKENS;
    0 when it is absent; None when it is there and wrong (negative, huge, a string, a bool…)."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_TOKENS:
        return None
    return value


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @classmethod
    def checked(cls, prompt: Any, completion: Any, cached: Any = None, reasoning: Any = None,
                *, extra_prompt: tuple[Any, ...] = ()) -> "Usage | None":
        """Usage from a vendor's counts, or None when any is not believable (then we count it ourselves).
        `extra_prompt` counts are added to the prompt (cache reads and writes where a vendor lists them apart)."""
        counts = [token_count(v) for v in (prompt, completion, cached, reasoning, *extra_prompt)]
        if None in counts:
            return None
        p, c, cached_n, r, *extra = counts
        return cls(p + sum(extra), c, cached_n, r)

    @classmethod
    def from_openai(cls, u: Any) -> "Usage | None":
        """OpenAI's usage object; None when it is missing or not believable."""
        if not u or not isinstance(u, dict):
            return None
        details = u.get("prompt_tokens_details") or {}
        out_details = u.get("completion_tokens_details") or {}
        if not isinstance(details, dict) or not isinstance(out_details, dict):
            return None
        return cls.checked(u.get("prompt_tokens"), u.get("completion_tokens"), details.get("cached_tokens"),
                           out_details.get("reasoning_tokens"))

    def to_openai(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens}}


@dataclass(slots=True)
class Completion:
    """A finished non-streaming answer: an OpenAI `chat.completion` body plus what metering needs."""

    body: dict[str, Any]
    usage: Usage
    finish_reason: str | None
    upstream_id: str | None = None


class Provider(Protocol):
    """One wire format. Errors are raised as `SwitchyardError`s (see `upstream_error`)."""

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion: ...

    def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[dict[str, Any]]:
        """OpenAI `chat.completion.chunk` dicts; a chunk carrying `usage` may come last."""
        ...


JSON_INSTRUCTION = "Answer with one JSON object and nothing else: no prose, no code fences."


def alternating_turns(messages: list[Any], blocks: Callable[[Any], list[Any]], *, assistant: str = "assistant",
                      key: str = "content") -> tuple[list[str], list[dict[str, Any]]]:
    """System and developer messages hoisted (their texts, in order); the others as user/assistant turns whose
    consecutive same-role turns are merged, since Anthropic, Gemini and Bedrock all want turns to alternate."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role in ("system", "developer"):
            system.append(m.text())
            continue
        role = assistant if m.role == "assistant" else "user"
        parts = blocks(m)
        if turns and turns[-1]["role"] == role:
            turns[-1][key].extend(parts)
        else:
            turns.append({"role": role, key: parts})
    return system, turns


def first_byte_timeout(endpoint: Endpoint) -> float:
    """Seconds an upstream may take to start answering (and, after that, between two reads): the model's own
    `timeout_seconds` when its catalog entry sets one, else SWITCHYARD_FIRST_BYTE_TIMEOUT_SECONDS."""
    return endpoint.config.timeout_seconds or get_settings().first_byte_timeout_seconds


async def post(endpoint: Endpoint, url: str, headers: dict[str, str], body: bytes) -> "Response":
    """POST to an upstream with the connect, first-byte and idle timeouts; transport failures as our errors."""
    first_byte = first_byte_timeout(endpoint)
    try:
        return await client().request("POST", url, headers=headers, body=body,
                                      connect_timeout=get_settings().connect_timeout_seconds,
                                      first_byte_timeout=first_byte, idle_timeout=first_byte)
    except TransportError as e:
        raise transport_error(e, endpoint.provider.id) from e


_POLICY_CODES = {"content_policy_violation", "content_filter", "SAFETY", "PROHIBITED_CONTENT"}
_POLICY_HINTS = ("content policy", "content management policy", "safety system", "flagged as potentially")
_CONTEXT_HINTS = ("context_length", "context length", "maximum context", "too many tokens", "prompt is too long")


def upstream_error(status: int, message: str, *, provider: str, code: str | None = None,
                   retry_after: str | None = None) -> SwitchyardError:
    """An upstream HTTP error → our error, with the provider and upstream status in metadata."""
    meta: dict[str, Any] = {"provider_name": provider, "upstream_status": status}
    if code:
        meta["upstream_code"] = code
    text = message[:500]
    if status == 400 and (code == "context_length_exceeded" or any(h in text.lower() for h in _CONTEXT_HINTS)):
        err: SwitchyardError = BadRequestError(text, metadata=meta)
        err.metadata["error_type"] = "context_length_exceeded"
        return err
    if status in (400, 403, 422) and (code in _POLICY_CODES or any(h in text.lower() for h in _POLICY_HINTS)):
        err = BadRequestError(f"{provider} refused the content: {text}", metadata=meta)
        err.metadata["error_type"] = "content_policy_violation"
        return err
    if status in (400, 422):
        return BadRequestError(f"{provider} rejected the request: {text}", metadata=meta)
    if status == 413:
        return PayloadTooLargeError(f"{provider}: request too large", metadata=meta)
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after else {}
        if retry_after:
            meta["retry_after"] = retry_after
        return RateLimitedError(f"{provider} is rate limiting requests", metadata=meta, headers=headers)
    if status in (408, 504):
        return UpstreamTimeoutError(f"{provider} timed out", metadata=meta)
    err = UpstreamError(f"{provider} returned HTTP {status}: {text}", metadata=meta)
    if status in (503, 529):
        err.metadata["error_type"] = "provider_overloaded"
    elif status in (401, 403):
        err.metadata["error_type"] = "provider_auth_failed"
    return err


def transport_error(e: TransportError, provider: str) -> SwitchyardError:
    """A failure below HTTP (connect, reset, silence) as our error."""
    if isinstance(e, ReadTimeout):
        return UpstreamTimeoutError(f"{provider} did not answer in time", metadata={"provider_name": provider})
    err = UpstreamError(f"Could not reach {provider}: {e}", metadata={"provider_name": provider})
    if isinstance(e, ConnectError):
        err.metadata["error_type"] = "provider_unavailable"
    return err


async def read_ok(resp: "Response", endpoint: Endpoint,
                  error: Callable[[int, bytes, dict[str, str], Endpoint], SwitchyardError]) -> bytes:
    """A response's whole body; the vendor's error (in our vocabulary) when the status says it failed."""
    try:
        raw = await resp.read()
    except TransportError as e:
        raise transport_error(e, endpoint.provider.id) from e
    if resp.status >= 400:
        raise error(resp.status, raw, resp.headers, endpoint)
    return raw


async def sse_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of an SSE body as they arrive (a line split across reads is joined first)."""
    pending = b""
    async for block in chunks:
        pending += block
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending.strip():
        yield pending


def tool_call(call_id: str | None, name: str | None, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def assistant_choice(text: list[str], calls: list[dict[str, Any]], finish: str, native: str | None) -> dict[str, Any]:
    """One OpenAI choice from translated parts. A forced JSON-answer tool (text, no calls) finishes as stop."""
    if finish == "tool_calls" and not calls:
        finish = "stop"
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {"index": 0, "message": message, "finish_reason": finish, "native_finish_reason": native, "logprobs": None}


def call_arguments(call: Any) -> Any:
    """A history tool call's arguments as JSON (vendors that take objects); 400 when they are not JSON."""
    try:
        return orjson.loads(call.function.arguments or "{}")
    except orjson.JSONDecodeError:
        raise BadRequestError(f"tool call {call.id} has arguments that are not JSON",
                              metadata={"field": "messages.tool_calls.function.arguments"}) from None
