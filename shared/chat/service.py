"""Chat completions: plan the call (shared/routing), try its candidates, shape the answer, meter it exactly once.

Streams: the status waits for the first upstream chunk for up to one keep-alive interval, so that an upstream
that fails (or times out) within it still gets a proper HTTP status. An upstream silent for longer commits the
200 and keeps the connection alive with SSE comments; an error after that ends the stream with an error event
in OpenRouter's mid-stream format (`finish_reason: "error"`). A stream that fails or is left bills what was
generated up to then (nothing, when nothing was); a client that goes away is metered as cancelled.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import orjson

from shared.catalog import Catalog
from shared.chat.budget import affordable_tokens, budget, capped, prompt_bound, tokenizer_of
from shared.catalog.source import CatalogSource
from shared.chat.schema import ChatRequest
from shared.config import Settings
from shared.errors import InsufficientCreditsError, SwitchyardError, UpstreamError, UpstreamTimeoutError
from shared.healing.completion import HealReport, heal_completion
from shared.healing.repair import HealResult
from shared.healing.stream import StreamHealer
from shared.keys.spend import SpendGuard
from shared.metering import Meter, UsageEvent, cost_of
from shared.providers import Usage
from shared.providers.base import DEADLINE, first_byte_timeout
from shared.routing.plan import Plan
from shared.routing.providers import Candidate
from shared.routing.state import RoutingState
from shared.tokenizer import count_messages, count_text

KEEPALIVE = b": SWITCHYARD PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"


def new_request_id() -> str:
    """Unique and time-ordered. From os.urandom, not a seeded PRNG: a Lambda SnapStart snapshot would give
    every restored instance the same PRNG state (and the same ids)."""
    return f"gen-{int(time.time()):x}{os.urandom(10).hex()}"


def counted_usage(request: ChatRequest, route: Candidate, completion_text: str) -> Usage:
    """Usage counted by us, for an upstream that sent none: tiktoken for OpenAI-family models, else an estimate."""
    model = route.endpoint.upstream_model
    prompt = count_messages(((m.role, m.text(), m.name) for m in request.messages), model)
    return Usage(prompt, count_text(completion_text, model) if completion_text else 0, estimated=True)


@dataclass(slots=True)
class CallContext:
    """Who is calling and from where; everything the usage record needs besides the answer."""

    key_id: str
    key_tags: tuple[str, ...] = ()
    request_id: str = field(default_factory=new_request_id)
    app_title: str | None = None
    app_referer: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    limit: float | None = None  # the key's spend limit (USD); None: unlimited, and no hold is made
    usage: float = 0.0  # the key's spend as last read
    prompt_bounds: dict[str, int] | None = None  # a limited key's prompt bound per tokenizer, computed once each
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)

    @property
    def app(self) -> str | None:
        return self.app_title or self.app_referer

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


Route = Candidate  # one model served by one endpoint through one adapter


class ChatService:
    def __init__(self, catalog: Catalog | CatalogSource, meter: Meter, settings: Settings,
                 spend: SpendGuard | None = None) -> None:
        self.routing = RoutingState(catalog, settings)
        self.spend = spend
        self.meter = meter
        self.settings = settings

    @property
    def catalog(self) -> Catalog:
        return self.routing.catalog

    def route(self, request: ChatRequest) -> Route:
        """The first candidate for a request (what a call would try first)."""
        return Plan(self.routing, request, CallContext(key_id="")).first()

    def _event(self, ctx: CallContext, request: ChatRequest | None, *, streamed: bool) -> UsageEvent:
        """The call's usage record, named after the requested model until a candidate is tried (`_label`)."""
        ids = request.model_ids if request is not None else None
        model_id = ids[0] if ids else ""
        return UsageEvent(
            id=ctx.request_id, key_id=ctx.key_id, created_at=ctx.created, model=model_id,
            lab=model_id.split("/", 1)[0] if "/" in model_id else "", app=ctx.app,
            app_title=ctx.app_title, app_referer=ctx.app_referer, streamed=streamed,
            client_ip=ctx.client_ip, user_agent=ctx.user_agent)

    def _finish(self, event: UsageEvent, route: Route | None, ctx: CallContext, usage: Usage | None) -> None:
        if usage is not None and route is not None:
            event.prompt_tokens, event.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            event.cached_tokens, event.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
            event.usage_estimated = usage.estimated
            event.cost = cost_of(route.endpoint.pricing, usage.prompt_tokens, usage.completion_tokens,
                                 usage.cached_tokens)
        event.latency_ms = ctx.elapsed_ms()
        if route is not None and event.status == "completed" and event.ttft_ms is not None:
            # streamed: tokens over the generation time; unstreamed: over the whole call (no first-token time)
            seconds = ((event.latency_ms - event.ttft_ms) if event.streamed else event.latency_ms) / 1000
            if seconds > 0 and event.completion_tokens:
                self.routing.observed_throughput((route.endpoint.provider.id, route.model.id),
                                                 event.completion_tokens / seconds)
        self.meter.record(event)

    @staticmethod
    def _fail(event: UsageEvent, error: BaseException) -> None:
        event.status = "failed"
        if isinstance(error, SwitchyardError):
            event.error_code, event.error_type = error.status, error.metadata.get("error_type")
        else:
            event.error_code, event.error_type = 500, "internal_error"

    def meter_rejected(self, ctx: CallContext, request: ChatRequest | None, error: SwitchyardError) -> None:
        """Meter a call refused before any provider was chosen (bad body, unknown model…)."""
        event = self._event(ctx, request, streamed=bool(request and request.stream))
        self._fail(event, error)
        self._finish(event, None, ctx, None)

    def _usage_block(self, route: Route, usage: Usage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "cost": cost_of(route.endpoint.pricing, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens),
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            **({"estimated": True} if usage.estimated else {}),
        }

    async def _bounded(self, ctx: CallContext, event: UsageEvent, route: Route, request: ChatRequest) -> ChatRequest:
        """The request as this candidate gets it: output capped at the model's max. For a key with a limit, the
        call's worst case on this candidate is held first (raised from an earlier candidate's hold if higher)."""
        if ctx.limit is None:
            return capped(request, route.endpoint)
        if ctx.usage >= ctx.limit:
            raise InsufficientCreditsError("This key's credit limit is spent", metadata={
                "limit": ctx.limit, "limit_remaining": 0.0, "usage": round(ctx.usage, 9)})
        return await asyncio.to_thread(self._hold, ctx, event, route, request)

    def _hold(self, ctx: CallContext, event: UsageEvent, route: Route, request: ChatRequest) -> ChatRequest:
        """(In a worker thread: a tokenizer may load, and the hold is a DynamoDB round trip.)"""
        tokenizer = tokenizer_of(route.endpoint)
        bounds = ctx.prompt_bounds = ctx.prompt_bounds or {}
        if tokenizer not in bounds:
            bounds[tokenizer] = prompt_bound(request, tokenizer)
        b = budget(request, route.endpoint, bounds[tokenizer])
        held = event.reserved or 0.0
        if b.worst_case <= held:
            return b.request
        assert self.spend is not None, "a limited key needs the spend guard"
        try:
            self.spend.hold(ctx.key_id, ctx.limit, ctx.request_id, b.worst_case, already=held, usage=ctx.usage)
        except InsufficientCreditsError as e:
            tokens = affordable_tokens(route.endpoint, b.prompt_tokens, e.metadata["limit_remaining"], request.n)
            e.message += f". You requested up to {b.max_tokens} tokens, but can only afford {tokens}"
            e.metadata.update(max_tokens=b.max_tokens, affordable_tokens=tokens, model=route.model.id)
            raise
        event.reserved = b.worst_case
        return b.request

    async def _attempt(self, plan: Plan, route: Route, request: ChatRequest):
        """One upstream call. Adapters enforce the connect, first-byte and idle timeouts; every attempt, the
        first included, is also cut at the call's deadline (`Plan.deadline`), and none starts after it."""
        request = request.for_endpoint(route.endpoint.supported)
        remaining = plan.remaining()
        try:
            if remaining <= 0:
                raise TimeoutError
            if getattr(route.adapter, "honours_deadline", False):  # ~0.3 µs; an asyncio.timeout: ~5 µs
                token = DEADLINE.set(plan.deadline)
                try:
                    return await route.adapter.complete(request, route.endpoint)
                finally:
                    DEADLINE.reset(token)
            async with asyncio.timeout(remaining):
                return await route.adapter.complete(request, route.endpoint)
        except TimeoutError:
            raise UpstreamTimeoutError(f"{route.endpoint.provider.id} did not answer in time (the call's total "
                                       "timeout)", metadata={"provider_name": route.endpoint.provider.id}) from None

    async def complete(self, request: ChatRequest, ctx: CallContext) -> dict[str, Any]:
        route: Route | None = None
        plan: Plan | None = None
        event = self._event(ctx, request, streamed=False)
        usage: Usage | None = None
        try:
            plan = Plan(self.routing, request, ctx)
            _routed(event, plan)
            route = plan.first()
            while True:
                _label(event, route)
                sent = await self._bounded(ctx, event, route, request)  # a 402 here ends the call
                try:
                    done = await self._attempt(plan, route, sent)
                except SwitchyardError as e:
                    following = await plan.next_after(route, e)
                    if following is None:
                        raise plan.final_error() from None
                    route = following
                    continue
                plan.succeeded(route)
                break
            usage = done.usage
            if usage.estimated:
                usage = counted_usage(request, route, "".join(str((c.get("message") or {}).get("content") or "")
                                                              for c in done.body.get("choices", [])))
            event.ttft_ms = ctx.elapsed_ms()
            event.finish_reason, event.upstream_id = done.finish_reason, done.upstream_id
            body = done.body
            body.update(id=ctx.request_id, model=route.model.id, provider=route.endpoint.provider.id,
                        object="chat.completion", usage=self._usage_block(route, usage))
            if request.heal_content or request.heal_tool_arguments:
                report = heal_completion(body, content=request.heal_content,
                                         tool_arguments=request.heal_tool_arguments, schema=request.json_schema)
                body["heal_status"] = report.status
                body["heal"] = report.summary()
                _record_healing(event, report)
            return body
        except BaseException as e:
            self._fail(event, e)
            if isinstance(e, asyncio.CancelledError):
                event.status = "cancelled"
            raise
        finally:
            if plan is not None:
                event.attempts = plan.metered_attempts()
            self._finish(event, route, ctx, usage)

    async def open_stream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[bytes]:
        """Start the upstream stream; raise here (a plain HTTP error) if every candidate fails before answering."""
        event = self._event(ctx, request, streamed=True)
        route = None
        try:
            plan = Plan(self.routing, request, ctx)
            _routed(event, plan)
            route = plan.first()
            _label(event, route)
            sent = await self._bounded(ctx, event, route, request)
        except SwitchyardError as e:
            self._fail(event, e)
            self._finish(event, None, ctx, None)
            raise
        stream = _Stream(self, request, ctx, plan, route, event, sent)
        await stream.start()
        return stream.sse()


class _Stream:
    """One streamed call: pulls upstream chunks, re-labels them, keeps the line alive, meters at the end.

    Until the first data frame reaches the client, a failing candidate is replaced by the plan's next one
    (keep-alive comments may have been sent: they carry no data). After that, an error ends the stream."""

    def __init__(self, service: ChatService, request: ChatRequest, ctx: CallContext, plan: Plan, route: Route,
                 event: UsageEvent, sent: ChatRequest) -> None:
        self.service, self.request, self.ctx, self.plan = service, request, ctx, plan
        self.event = event
        self.created = int(ctx.created)
        self.metered = False
        self.sent = False  # a data frame reached the client: no more fallbacks
        self.total_deadline = time.monotonic() + plan.remaining()  # the call's deadline, monotonic clock
        self._open(route, sent)

    def _open(self, route: Route, sent: ChatRequest) -> None:
        """Start streaming from `route`, sending `sent` (the request bounded for it)."""
        self.route = route
        _label(self.event, route)
        self.upstream = route.adapter.stream(sent.for_endpoint(route.endpoint.supported), route.endpoint)
        self.next: asyncio.Future[dict[str, Any]] | None = None
        self.usage: Usage | None = None
        self.text: list[str] = []  # what was generated, for counting tokens if the upstream sends no usage
        # Healing by appending only: one state tracker per choice's content and per tool call's arguments.
        self.healers: dict[tuple[int, int | None], StreamHealer] | None = {} if self.request.heal_content or self.request.heal_tool_arguments else None
        self.first_byte_deadline = min(time.monotonic() + first_byte_timeout(route.endpoint), self.total_deadline)
        self.answered = False  # this candidate sent its first chunk

    async def _fallback(self, error: SwitchyardError) -> bool:
        """Before any data was sent: move to the plan's next candidate. False when there is none."""
        if self.sent:
            return False
        if self.next is not None and not self.next.done():
            self.next.cancel()
        asyncio.ensure_future(_aclose(self.upstream))
        following = await self.plan.next_after(self.route, error)
        if following is None:
            return False
        _label(self.event, following)
        try:
            sent = await self.service._bounded(self.ctx, self.event, following, self.request)
        except InsufficientCreditsError as e:  # the key cannot afford this fallback: it is the call's answer
            self.plan.errors = [*self.plan.errors, e]
            return False
        self._open(following, sent)
        return True

    def _pull(self) -> asyncio.Future[dict[str, Any]]:
        if self.next is None:
            self.next = asyncio.ensure_future(self.upstream.__anext__())
        return self.next

    def _take(self) -> dict[str, Any]:
        assert self.next is not None
        fut, self.next = self.next, None
        return fut.result()  # raises the upstream's error, or StopAsyncIteration at the end

    async def _wait(self, timeout: float) -> bool:
        done, _ = await asyncio.wait({self._pull()}, timeout=max(timeout, 0))
        return bool(done)

    async def start(self) -> None:
        """Hold the status until the first chunk, for at most one keep-alive interval from now, falling back
        while candidates fail (a first-byte timeout that falls within the interval included); an error that
        ends the plan by then is raised (a plain HTTP error). After the interval the 200 is committed."""
        commit_at = time.monotonic() + self.service.settings.keepalive_seconds
        while True:
            own_deadline_first = self.first_byte_deadline <= commit_at
            if await self._wait(min(commit_at, self.first_byte_deadline) - time.monotonic()):
                error = self.next.exception()
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

    def _silent(self, first: bool) -> UpstreamTimeoutError:
        provider = self.route.endpoint.provider.id
        why = "went silent" if first else "did not finish in time (the call's total timeout)"
        return UpstreamTimeoutError(f"{provider} {why}", metadata={"provider_name": provider})

    def _relabel(self, chunk: dict[str, Any]) -> tuple[bytes | None, bool]:
        """The chunk as our SSE frame (None for a usage-only chunk), and whether it finishes a choice."""
        usage = chunk.pop("usage", None)
        if usage:
            self.usage = Usage.from_openai(usage)
        choices = chunk.get("choices")
        if not choices:
            return None, False
        finishing = False
        for c in choices:
            delta = c.get("delta") or {}
            content = delta.get("content")
            index = c.get("index", 0)
            if content:
                self.text.append(content)
                if self.healers is not None and self.request.heal_content:
                    self.healers.setdefault((index, None), StreamHealer()).feed(content)
            for call in delta.get("tool_calls") or ():
                arguments = (call.get("function") or {}).get("arguments") or ""
                self.text.append(arguments)
                if arguments and self.healers is not None and self.request.heal_tool_arguments:
                    self.healers.setdefault((index, call.get("index", 0)), StreamHealer()).feed(arguments)
            if c.get("finish_reason"):
                self.event.finish_reason = c["finish_reason"]
                finishing = True
        if self.event.ttft_ms is None:
            self.event.ttft_ms = self.ctx.elapsed_ms()
        chunk.update(id=self.ctx.request_id, model=self.route.model.id, provider=self.route.endpoint.provider.id,
                     object="chat.completion.chunk")
        return b"data: " + orjson.dumps(chunk) + b"\n\n", finishing

    def _heal_frames(self, report: HealReport) -> list[bytes]:
        """The deltas that close what each healer saw: after all the upstream's content, before its finish chunks."""
        frames = []
        truncated = self.event.finish_reason == "length"
        for (index, call), healer in sorted(self.healers.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])):
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
            self.usage = counted_usage(self.request, self.route, "".join(self.text))
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

    async def sse(self) -> AsyncIterator[bytes]:
        keepalive = self.service.settings.keepalive_seconds
        held: list[bytes] = []
        try:
            while True:
                first = self.event.ttft_ms is None
                deadline = self.first_byte_deadline if first else self.total_deadline
                if not await self._wait(min(keepalive, deadline - time.monotonic())):
                    if time.monotonic() < deadline:
                        yield KEEPALIVE
                        continue
                    silent = self._silent(first)
                    if await self._fallback(silent):
                        continue
                    raise silent
                try:
                    chunk = self._take()
                except StopAsyncIteration:
                    break
                except SwitchyardError as e:
                    if await self._fallback(e):
                        continue
                    raise
                if not self.answered:
                    self.answered = True
                    self.plan.succeeded(self.route)
                frame, finishing = self._relabel(chunk)
                if frame is None:
                    continue
                self.sent = True
                if self.healers is not None and finishing:
                    held.append(frame)  # healing deltas must come before the choice finishes
                else:
                    yield frame
            heal = {}
            if self.healers is not None:
                report = HealReport()
                for frame in self._heal_frames(report) + held:
                    yield frame
                _record_healing(self.event, report)
                heal = {"heal_status": report.status, "heal": report.summary()}
            usage = self._final_usage()
            yield self._frame(choices=[], usage=self.service._usage_block(self.route, usage), **heal)
            yield DONE
            self._close(None)
        except SwitchyardError as e:
            # Bytes were sent: the status is committed, so the error travels as a final event.
            self.plan.broke(self.route, e)
            yield self._frame(error={"code": e.status, "message": e.message, "metadata": e.metadata},
                              choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}])
            yield DONE
            self._close(e)
        except Exception as e:  # a bug or an unexpected upstream shape: end cleanly, never a stack trace
            err = UpstreamError("The stream failed", metadata={"provider_name": self.route.endpoint.provider.id})
            yield self._frame(error={"code": err.status, "message": err.message, "metadata": err.metadata},
                              choices=[{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}])
            yield DONE
            self._close(e)
        finally:
            if not self.metered:  # the client went away mid-stream
                self.event.status = "cancelled"
                self._close(None, cancelled=True)

    def __del__(self) -> None:
        # A client that left before the response started: the body generator never ran, so its finally
        # block never will. Meter the call as cancelled when the stream is dropped instead.
        if not self.metered:
            self.event.status = "cancelled"
            self.metered = True
            self.event.attempts = self.plan.metered_attempts()
            if self.next is not None and not self.next.done():
                self.next.cancel()
            self.service._finish(self.event, self.route, self.ctx, self._billed(False))

    def _close(self, error: BaseException | None, *, cancelled: bool = False) -> None:
        if self.metered:
            return
        self.metered = True
        self.event.attempts = self.plan.metered_attempts()
        if self.next is not None and not self.next.done():
            self.next.cancel()
        asyncio.ensure_future(_aclose(self.upstream))
        if error is not None:
            self.service._fail(self.event, error)
        if cancelled:
            self.event.status = "cancelled"
        self.service._finish(self.event, self.route, self.ctx, self._billed(error is None and not cancelled))


def _label(event: UsageEvent, route: Route) -> None:
    """The usage record names the model and endpoint that served (or, failing, the last one tried)."""
    event.model, event.lab = route.model.id, route.model.author
    event.provider, event.upstream_model = route.endpoint.provider.id, route.endpoint.upstream_model


def _routed(event: UsageEvent, plan: Plan) -> None:
    if plan.policy is not None:
        event.route, event.route_rule = plan.policy.id, plan.rule


def _record_healing(event: UsageEvent, report: HealReport) -> None:
    event.heal_status, event.heal_repairs = report.status, report.repairs
    event.heal_audit = report.audit or None
    event.schema_valid = report.schema_valid


async def _aclose(agen: Any) -> None:
    try:
        await agen.aclose()
    except (Exception, asyncio.CancelledError):
        pass
