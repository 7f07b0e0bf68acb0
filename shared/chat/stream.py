"""One streamed call: pulls the upstream's chunks, relabels them as ours, keeps the line alive, meters at the end.

The status waits for the first upstream chunk for up to one keep-alive interval, so that an upstream that fails
(or times out) within it still gets a proper HTTP status. An upstream silent for longer commits the 200 and the
line is kept alive with SSE comments; an error after that ends the stream with an error event in OpenRouter's
mid-stream format (`finish_reason: "error"`). Until the first data frame, a failing candidate is replaced by the
plan's next one (keep-alive comments carry no data). A stream that fails or is left bills what was generated
up to then (nothing, when nothing was); a client that goes away is metered as cancelled.

From a candidate's first chunk on, the relay awaits the upstream directly: the stream comes by read (each item
the chunks one upstream read brought, so that they go out in one write) and silences come as PULSE markers (the
upstream read saw nothing for a keep-alive interval; shared/providers/base.py). No task, timer or wait is made
per chunk; before the first chunk, a task watched by a keep-alive timer, since the upstream may not have
answered yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

import orjson

from shared.chat import record
from shared.chat.context import CallContext
from shared.chat.schema import ChatRequest
from shared.errors import SwitchyardError, UpstreamError, UpstreamTimeoutError
from shared.healing.completion import HealReport
from shared.healing.repair import HealResult
from shared.healing.stream import StreamHealer
from shared.metering import UsageEvent
from shared.providers import Usage
from shared.providers.base import DEADLINE, PULSE, by_read, first_byte_timeout
from shared.routing.plan import Plan
from shared.routing.providers import Candidate

if TYPE_CHECKING:
    from shared.chat.service import ChatService

KEEPALIVE = b": SWITCHYARD PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"


class StreamRelay:
    def __init__(self, service: "ChatService", request: ChatRequest, ctx: CallContext, plan: Plan,
                 route: Candidate, event: UsageEvent, sent: ChatRequest) -> None:
        self.service, self.request, self.ctx, self.plan = service, request, ctx, plan
        self.event = event
        self.created = int(ctx.created)
        self.keepalive = service.settings.keepalive_seconds
        self.metered = False
        self.sent = False  # a data frame was made: no more fallbacks
        self.total_deadline = time.monotonic() + plan.remaining()  # the call's deadline, monotonic clock
        self._open(route, sent)

    def _open(self, route: Candidate, sent: ChatRequest) -> None:
        """Start streaming from `route`, sending `sent` (the request bounded for it)."""
        self.route = route
        record.label(self.event, route)
        chunks = route.adapter.stream(sent.for_endpoint(route.endpoint.supported), route.endpoint)
        self.upstream = chunks if getattr(route.adapter, "streams_by_read", False) else \
            by_read(chunks, self.keepalive, self.total_deadline)
        self.next: asyncio.Future[Any] | None = None  # the first item, while start() waits for it
        self.labels = {"id": self.ctx.request_id, "model": route.model.id, "provider": route.endpoint.provider.id,
                       "object": "chat.completion.chunk"}
        self.usage: Usage | None = None
        self.text: list[str] = []  # what was generated, for counting tokens if the upstream sends no usage
        # Healing as the deltas pass (a few bytes held back): one healer per choice's content and per tool call's
        # arguments.
        heal = self.request.heal_content or self.request.heal_tool_arguments
        self.healers: dict[tuple[int, int | None], StreamHealer] | None = {} if heal else None
        self.first_byte_deadline = min(time.monotonic() + first_byte_timeout(route.endpoint), self.total_deadline)
        self.answered = False  # this candidate sent its first chunk

    async def _fallback(self, error: SwitchyardError) -> bool:
        """Before any data was sent: move to the plan's next candidate. False when there is none."""
        if self.sent:
            return False
        if self.next is not None and not self.next.done():
            self.next.cancel()
        asyncio.ensure_future(_aclose(self.upstream))
        step = await self.service.advance(self.plan, self.event, self.ctx, self.request, self.route, error)
        if step is None:
            return False
        self._open(*step)
        return True

    # -- the status: held until the first chunk, for one keep-alive interval at most ------------------------
    async def start(self) -> None:
        """Hold the status until the first chunk, for at most one keep-alive interval from now, falling back
        while candidates fail (a first-byte timeout that falls within the interval included); an error that
        ends the plan by then is raised (a plain HTTP error). After the interval the 200 is committed."""
        commit_at = time.monotonic() + self.keepalive
        while True:
            own_deadline_first = self.first_byte_deadline <= commit_at
            if await self._wait(min(commit_at, self.first_byte_deadline) - time.monotonic()):
                assert self.next is not None
                error = self.next.exception()
                if error is None and self.next.result() == []:
                    self.next = None  # a read that brought nothing to relay: keep waiting
                    continue
                if not isinstance(error, SwitchyardError):
                    return  # the first chunk (or a bug, which sse() reports)
                self.next = None
            elif own_deadline_first:
                error = self._silent(True)
            else:
                return  # silent for a whole interval: the 200 goes out, keep-alive comments follow
            if not await self._fallback(error):
                final = self.plan.final_error()
                self._close(final)
                raise final

    async def _wait(self, timeout: float) -> bool:
        if self.next is None:
            # The task copies the context: an adapter's post() sees the call's deadline, and every read of
            # the stream (in this task or later ones) is cut at it.
            token = DEADLINE.set(self.plan.deadline)
            try:
                self.next = asyncio.ensure_future(self.upstream.__anext__())
            finally:
                DEADLINE.reset(token)
        done, _ = await asyncio.wait({self.next}, timeout=max(timeout, 0))
        return bool(done)

    def _silent(self, first: bool) -> UpstreamTimeoutError:
        provider = self.route.endpoint.provider.id
        why = "went silent" if first else "did not finish in time (the call's total timeout)"
        return UpstreamTimeoutError(f"{provider} {why}", metadata={"provider_name": provider})

    # -- the body ------------------------------------------------------------------------------------------
    async def _unanswered_item(self) -> Any:
        """The upstream's next item before this candidate's first chunk. Its response headers may not even have
        come, so the transport cannot mark silences yet: reads go through a task watched with a keep-alive timer
        (a PULSE when it rings, at the first-byte deadline at the latest), which also hands the first read, a
        fallback's too, the call's deadline. After the first chunk, sse() awaits the upstream directly."""
        if not await self._wait(min(self.keepalive, self.first_byte_deadline - time.monotonic())):
            return PULSE
        assert self.next is not None
        waiting, self.next = self.next, None
        return waiting.result()  # raises the upstream's error, or StopAsyncIteration

    async def sse(self) -> AsyncIterator[bytes]:
        frames: list[bytes] = []  # relabelled, not yet written
        held: list[bytes] = []
        try:
            while True:
                try:
                    item = await (self.upstream.__anext__() if self.answered else self._unanswered_item())
                except StopAsyncIteration:
                    break
                except SwitchyardError as e:
                    if await self._fallback(e):
                        continue
                    raise
                if item is PULSE:
                    first = self.event.ttft_ms is None
                    if time.monotonic() < (self.first_byte_deadline if first else self.total_deadline):
                        yield KEEPALIVE
                        continue
                    if await self._fallback(silent := self._silent(first)):
                        continue
                    raise silent
                if not item:
                    continue
                if not self.answered:
                    self.answered = True
                    self.plan.succeeded(self.route)
                self._relabel_read(item, frames, held)  # what one upstream read brought: one write
                if frames:
                    yield frames[0] if len(frames) == 1 else b"".join(frames)
                    frames.clear()
            heal = {}
            if self.healers is not None:
                report = HealReport()
                frames += self._heal_frames(report) + held
                record.healed(self.event, report)
                heal = {"heal_status": report.status, "heal": report.summary()}
            usage = self._final_usage()
            frames += (self._frame(choices=[], usage=record.usage_block(self.route, usage), **heal), DONE)
            yield b"".join(frames)
            self._close(None)
        except SwitchyardError as e:
            # Bytes were sent: the status is committed, so the error travels as a final event.
            self.plan.broke(self.route, e)
            yield b"".join([*frames, self._error_frame(e), DONE])
            self._close(e)
        except Exception as e:  # a bug or an unexpected upstream shape: end cleanly, never a stack trace
            err = UpstreamError("The stream failed", metadata={"provider_name": self.route.endpoint.provider.id})
            yield b"".join([*frames, self._error_frame(err), DONE])
            self._close(e)
        finally:
            if not self.metered:  # the client went away mid-stream
                self._close(None, cancelled=True)

    def _relabel_read(self, chunks: list[dict[str, Any]], frames: list[bytes], held: list[bytes]) -> None:
        """The chunks of one read as our SSE frames, added to `frames` (a usage-only chunk makes none; while
        healing, a chunk that finishes a choice goes to `held`: the healing deltas must come before it)."""
        labels, text, healers = self.labels, self.text, self.healers
        for chunk in chunks:
            usage = chunk.pop("usage", None)
            if usage:
                self.usage = Usage.from_openai(usage)
            choices = chunk.get("choices")
            if not choices:
                continue
            finishing = False
            for c in choices:
                delta = c.get("delta") or {}
                content = delta.get("content")
                if content:
                    text.append(content)
                    if healers is not None and self.request.heal_content:
                        # what may go out now: the healer holds back the few bytes the next ones decide
                        delta["content"] = _healer(healers, (c.get("index", 0), None)).feed(content)
                calls = delta.get("tool_calls")
                if calls:
                    for call in calls:
                        function = call.get("function") or {}
                        arguments = function.get("arguments") or ""
                        text.append(arguments)
                        if arguments and healers is not None and self.request.heal_tool_arguments:
                            key = (c.get("index", 0), call.get("index", 0))
                            function["arguments"] = _healer(healers, key).feed(arguments)
                if c.get("finish_reason"):
                    self.event.finish_reason = c["finish_reason"]
                    finishing = True
            if self.event.ttft_ms is None:
                self.event.ttft_ms = self.ctx.elapsed_ms()
            chunk.update(labels)
            self.sent = True
            (held if finishing and healers is not None else frames).append(b"data: " + orjson.dumps(chunk) + b"\n\n")

    def _heal_frames(self, report: HealReport) -> list[bytes]:
        """The deltas that end what each healer saw (what it held and keeps, the closers): after all the upstream's
        content, before its finish chunks."""
        assert self.healers is not None
        frames = []
        truncated = self.event.finish_reason == "length"
        for (index, call), healer in sorted(self.healers.items(),
                                            key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])):
            suffix, status, repairs = healer.finish(truncated=truncated)
            where = f"choices[{index}]." + ("delta.content" if call is None else f"delta.tool_calls[{call}].arguments")
            report.add(where, HealResult(suffix, status, repairs))
            if suffix:
                delta = {"content": suffix} if call is None else \
                    {"tool_calls": [{"index": call, "function": {"arguments": suffix}}]}
                frames.append(self._frame(choices=[{"index": index, "delta": delta, "finish_reason": None}]))
        return frames

    def _final_usage(self) -> Usage:
        if self.usage is None:
            self.usage = record.counted_usage(self.request, self.route, "".join(self.text))
        return self.usage

    def _billed(self, completed: bool) -> Usage | None:
        """A completed stream bills its usage; one that failed or was left bills what was generated up to then
        (the vendor's count when it sent one), and nothing when nothing was."""
        if completed or self.usage is not None or self.text:
            return self._final_usage()
        return None

    def _frame(self, **fields: Any) -> bytes:
        body = {"id": self.ctx.request_id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.route.model.id, "provider": self.route.endpoint.provider.id, **fields}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def _error_frame(self, e: SwitchyardError) -> bytes:
        return self._frame(error={"code": e.status, "message": e.message, "metadata": e.metadata},
                           choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}])

    # -- metering, exactly once ------------------------------------------------------------------------------
    def __del__(self) -> None:
        # A client that left before the response started: the body generator never ran, so its finally
        # block never will. Meter the call as cancelled when the stream is dropped instead.
        if not self.metered:
            self.metered = True
            self.event.status = "cancelled"
            self.event.attempts = self.plan.metered_attempts()
            if self.next is not None and not self.next.done():
                self.next.cancel()
            self.service.recorder.finish(self.event, self.route, self.ctx, self._billed(False))

    def fail(self, error: BaseException) -> None:
        """The stream could not start (a storage failure holding a fallback's spend, a cancellation…)."""
        if isinstance(error, asyncio.CancelledError):
            self._close(None, cancelled=True)
        else:
            self._close(error)

    def _close(self, error: BaseException | None, *, cancelled: bool = False) -> None:
        if self.metered:
            return
        self.metered = True
        self.event.attempts = self.plan.metered_attempts()
        if self.next is not None and not self.next.done():
            self.next.cancel()
        asyncio.ensure_future(_aclose(self.upstream))
        if error is not None:
            record.failed(self.event, error)
        if cancelled:
            self.event.status = "cancelled"
        self.service.recorder.finish(self.event, self.route, self.ctx,
                                     self._billed(error is None and not cancelled))


def _healer(healers: dict[tuple[int, int | None], StreamHealer], key: tuple[int, int | None]) -> StreamHealer:
    healer = healers.get(key)
    if healer is None:
        healer = healers[key] = StreamHealer()
    return healer


async def _aclose(agen: Any) -> None:
    try:
        await agen.aclose()
    except (Exception, asyncio.CancelledError):
        pass
