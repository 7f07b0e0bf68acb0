"""What every vendor adapter implements, and the shapes it returns."""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Protocol

import orjson

from shared.catalog import Endpoint
from shared.chat.schema import ChatRequest
from shared.config import get_settings
from shared.providers.http import ConnectError, ReadTimeout, ResponseTooLarge, TransportError, client

if TYPE_CHECKING:
    from shared.providers.http import Response
from shared.errors import (BadRequestError, ContentPolicyError, ContextLengthExceededError, PayloadTooLargeError,
                           ProviderAuthError, ProviderOverloadedError, ProviderUnreachableError, RateLimitedError,
                           SwitchyardError, UpstreamError, UpstreamTimeoutError)


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


DEADLINE: ContextVar[float | None] = ContextVar("switchyard_deadline", default=None)
"""The time.perf_counter() by which work in this context must end: an invocation's (the Lambda handler sets
it), narrowed to a call's by ChatService. `post` cuts the connect, the first byte and every read at it."""


class Marker:
    """A point in a stream that is not a chunk: PULSE (the upstream has been silent for a keep-alive interval)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name.upper()


PULSE = Marker("pulse")


class Provider(Protocol):
    """One wire format. Errors are raised as `SwitchyardError`s (see `upstream_error`). An adapter whose I/O
    all goes through `post` sets `honours_deadline = True`: it ends by DEADLINE itself (no timer needed). An
    adapter whose stream yields, for each upstream read, the list of chunks that read brought, and PULSE for
    silences, sets `streams_by_read = True` (its reads are ours to watch: `sse_data`); the others' streams,
    one chunk an item, are given that shape by `by_read()`."""

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion: ...

    def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[Any]:
        """OpenAI `chat.completion.chunk` dicts (a chunk carrying `usage` may come last): one an item, or, with
        `streams_by_read`, in lists (one a read) with PULSE markers."""
        ...


async def by_read(chunks: AsyncIterator[Any], pulse: float, until: float | None = None) -> AsyncIterator[Any]:
    """A stream of chunks as a stream by read: each chunk alone in a list, PULSE after each `pulse` seconds of
    silence and at `until` (time.monotonic()), for adapters whose reads are not ours to watch: the sim,
    botocore's event stream."""
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(chunks.__anext__())
            wait = pulse if until is None else max(min(pulse, until - time.monotonic()), 0)
            done, _ = await asyncio.wait({pending}, timeout=wait)
            if not done:
                yield PULSE
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            yield [item]
    finally:
        if pending is not None:
            pending.cancel()
        await chunks.aclose()  # type: ignore[attr-defined]


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
    """POST to an upstream with the connect, first-byte and idle timeouts, each cut at DEADLINE when one is
    set (so is every read of the body); transport failures as our errors."""
    idle = first_byte = first_byte_timeout(endpoint)
    connect = get_settings().connect_timeout_seconds
    deadline = DEADLINE.get()
    if deadline is not None:
        remaining = deadline - time.perf_counter()
        connect, first_byte = min(connect, remaining), min(first_byte, remaining)
    try:
        resp = await client().request("POST", url, headers=headers, body=body, connect_timeout=connect,
                                      first_byte_timeout=first_byte, idle_timeout=idle)
    except TransportError as e:
        raise transport_error(e, endpoint.provider.id) from e
    if deadline is not None:
        resp.deadline = asyncio.get_running_loop().time() + (deadline - time.perf_counter())
    return resp


_POLICY_CODES = {"content_policy_violation", "content_filter", "SAFETY", "PROHIBITED_CONTENT"}
_POLICY_HINTS = ("content policy", "content management policy", "safety system", "flagged as potentially")
_CONTEXT_HINTS = ("context_length", "context length", "maximum context", "too many tokens", "prompt is too long")


def retry_after_seconds(value: str | None) -> int | None:
    """An upstream's Retry-After (delay-seconds or an HTTP date) as whole seconds from now, capped at
    SWITCHYARD_MAX_RETRY_AFTER_SECONDS; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = int(value)
    else:
        try:
            seconds = max(0, round(parsedate_to_datetime(value).timestamp() - time.time()))
        except (TypeError, ValueError, IndexError):
            return None
    return min(seconds, get_settings().max_retry_after_seconds)


def upstream_error(status: int, message: str, *, provider: str, code: str | None = None,
                   retry_after: str | None = None) -> SwitchyardError:
    """An upstream HTTP error → our error, with the provider and upstream status in metadata. The
    Retry-After of a 429, 503 or 529 is kept (capped, in seconds) for our retries and passed on."""
    meta: dict[str, Any] = {"provider_name": provider, "upstream_status": status}
    if code:
        meta["upstream_code"] = code
    headers: dict[str, str] = {}
    if status in (429, 503, 529) and (after := retry_after_seconds(retry_after)) is not None:
        meta["retry_after"] = headers["Retry-After"] = str(after)
    text = message[:500]
    if status == 400 and (code == "context_length_exceeded" or any(h in text.lower() for h in _CONTEXT_HINTS)):
        return ContextLengthExceededError(text, metadata=meta)
    if status in (400, 403, 422) and (code in _POLICY_CODES or any(h in text.lower() for h in _POLICY_HINTS)):
        return ContentPolicyError(f"{provider} refused the content: {text}", metadata=meta)
    if status in (400, 422):
        return BadRequestError(f"{provider} rejected the request: {text}", metadata=meta)
    if status == 413:
        return PayloadTooLargeError(f"{provider}: request too large", metadata=meta)
    if status == 429:
        return RateLimitedError(f"{provider} is rate limiting requests", metadata=meta, headers=headers)
    if status in (408, 504):
        return UpstreamTimeoutError(f"{provider} timed out", metadata=meta)
    summary = f"{provider} returned HTTP {status}: {text}"
    if status in (503, 529):
        return ProviderOverloadedError(summary, metadata=meta, headers=headers)
    if status in (401, 403):
        return ProviderAuthError(summary, metadata=meta)  # our vendor key, not the caller's: a 502
    return UpstreamError(summary, metadata=meta, headers=headers)


def transport_error(e: TransportError, provider: str) -> SwitchyardError:
    """A failure below HTTP (connect, reset, silence) as our error."""
    if isinstance(e, ReadTimeout):
        return UpstreamTimeoutError(f"{provider} did not answer in time", metadata={"provider_name": provider})
    if isinstance(e, ResponseTooLarge):
        return too_large(provider, e.limit)
    if isinstance(e, ConnectError):
        return ProviderUnreachableError(f"Could not reach {provider}: {e}", metadata={"provider_name": provider})
    return UpstreamError(f"Could not reach {provider}: {e}", metadata={"provider_name": provider})


def too_large(provider: str, limit: int) -> UpstreamError:
    return UpstreamError(f"{provider} sent a response that was too large (over {limit} bytes)",
                         metadata={"provider_name": provider, "limit_bytes": limit})


ErrorParser = Callable[[int, bytes, dict[str, str], Endpoint], SwitchyardError]


async def read_ok(resp: "Response", endpoint: Endpoint, error: ErrorParser) -> bytes:
    """A response's whole body (at most SWITCHYARD_MAX_UPSTREAM_RESPONSE_BYTES); the vendor's error (in our
    vocabulary) when the status says it failed."""
    try:
        raw = await resp.read(get_settings().max_upstream_response_bytes)
    except TransportError as e:
        raise transport_error(e, endpoint.provider.id) from e
    if resp.status >= 400:
        raise error(resp.status, raw, resp.headers, endpoint)
    return raw


def _not_sse(provider: str, resp: "Response") -> UpstreamError:
    kind = resp.headers.get("content-type") or "no content type"
    return UpstreamError(f"{provider} answered a stream request with a body that is not an event stream "
                         f"({kind})", metadata={"provider_name": provider, "upstream_status": resp.status})


def _lines(block: bytes, pending: bytes, data: bool, scanned: int, declared: bool, limit: int, provider: str,
           resp: "Response") -> tuple[list[bytes], bytes, bool, int]:
    """One read's block after the `pending` part line before it: the data of the lines it completes, the part
    line it ends with, whether a data line was seen so far, how many bytes came before the first (see
    sse_data)."""
    if pending:
        block = pending + block
    *lines, pending = block.split(b"\n")
    if len(block) > limit and max(map(len, lines), default=0) > limit or len(pending) > limit:
        raise too_large(provider, limit)
    found = []
    for line in lines:
        if line.startswith(b"data:") or (line := line.strip()).startswith(b"data:"):
            found.append(line[5:].strip())
            data = True
        elif not data:
            scanned += len(line) + 1
            if not declared and scanned > limit:
                raise _not_sse(provider, resp)
    return found, pending, data, scanned


Decoder = Callable[[list[bytes]], tuple[list[Any], bool]]
"""A read's event data → the chunks they make, and whether the stream ended there (e.g. at `[DONE]`)."""


async def sse_data(resp: "Response | Callable[[], Awaitable[Response]]", endpoint: Endpoint, error: ErrorParser,
                   decode: Decoder | None = None) -> AsyncIterator[list[Any] | Marker]:
    """A streamed answer's events as they arrive: for each upstream read that completes any, the data of its
    `data:` lines (a line split across reads is joined first; other fields, comments and blank lines are left
    out), and a PULSE for each keep-alive interval of silence; the connection is released when the iteration
    ends. With `decode`, each read's data goes through it and what is yielded is the chunks it made (none:
    nothing), until it says the stream ended. `resp` may be the request still to send (a callable that posts
    it), so that an adapter's stream is this one generator: a stream waits in it once a read, with no frame
    of the adapter's own around it. Raised instead, in our vocabulary: the vendor's error for an HTTP error
    status; an answer that is not an event stream (a JSON body, or no `data:` line: within the first
    SWITCHYARD_MAX_UPSTREAM_EVENT_BYTES unless it says text/event-stream, where comments may come first); a
    line over that same cap; a transport failure."""
    if callable(resp):
        resp = await resp()
    provider = endpoint.provider.id
    pulse = get_settings().keepalive_seconds
    try:
        if resp.status >= 400:
            raw = await resp.read(get_settings().max_upstream_response_bytes)
            raise error(resp.status, raw, resp.headers, endpoint)
        kind = resp.headers.get("content-type", "")
        declared = kind.startswith("text/event-stream")
        if not declared and "json" in kind:
            raise _not_sse(provider, resp)
        limit = get_settings().max_upstream_event_bytes
        pending, data, scanned = b"", False, 0
        while (block := await resp.next_piece(pulse)) is not None:
            if not block:
                yield PULSE
                continue
            if data and not pending and block[:6] == b"data: " and block[-2:] == b"\n\n" \
                    and block.count(b"\n") == 2 and len(block) <= limit:
                found = [block[6:-2].strip()]  # the common read, one whole event: what the loop below would find
            else:
                found, pending, data, scanned = _lines(block, pending, data, scanned, declared, limit, provider, resp)
                if not found:
                    continue
            if decode is None:
                yield found
                continue
            chunks, ended = decode(found)
            if chunks:
                yield chunks
            if ended:
                return
        if (pending := pending.strip()).startswith(b"data:"):
            data = True
            found = [pending[5:].strip()]
            if decode is None:
                yield found
            elif (chunks := decode(found)[0]):
                yield chunks
        if not data:
            raise _not_sse(provider, resp)
    except TransportError as e:
        raise transport_error(e, provider) from e
    finally:
        resp.release()  # reused only if the response ended cleanly


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
