"""Chat completions: plan the call (shared/routing), try its candidates, shape the answer, meter it exactly once.

A call moves through its plan one candidate at a time (`begin`, then `advance` after each failure: one step
for both the answered and the streamed path). Before each candidate, the request is bounded for it and, for a
key with a spend limit, its worst case is held (shared/keys/spend.py); for a key with a tokens-per-minute
limit, its worst case in tokens is taken (shared/keys/rates.py) and settled when the call is metered. Streams are relayed by
shared/chat/stream.py; the usage record is assembled by shared/chat/record.py.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

from shared.catalog import Catalog
from shared.catalog.source import CatalogSource
from shared.chat import middle_out, record
from shared.chat.budget import (Budget, affordable_tokens, budget, capped, prompt_bound, tokenizer_of,
                               with_output_limit)
from shared.chat.context import CallContext, new_request_id
from shared.chat.record import Recorder, counted_usage
from shared.chat.schema import ChatRequest
from shared.chat.stream import DONE, KEEPALIVE, StreamRelay
from shared.config import Settings
from shared.errors import (BadRequestError, InsufficientCreditsError, KeyRateLimitedError, SwitchyardError,
                           UpstreamTimeoutError)
from shared.governance.source import GovernanceSource
from shared.healing.completion import heal_completion
from shared.keys.rates import RateLimiter
from shared.keys.spend import SpendGuard
from shared.metering import Meter, UsageEvent
from shared.providers import Usage
from shared.providers.base import DEADLINE
from shared.routing.plan import Plan
from shared.routing.providers import Candidate
from shared.routing.state import RoutingState

__all__ = ["CallContext", "ChatService", "DONE", "KEEPALIVE", "Route", "counted_usage", "new_request_id"]

Route = Candidate  # one model served by one endpoint through one adapter


class ChatService:
    def __init__(self, catalog: Catalog | CatalogSource, meter: Meter, settings: Settings,
                 spend: SpendGuard | None = None, fingerprint: Callable[[ChatRequest], str | None] | None = None,
                 governance: GovernanceSource | None = None, rates: RateLimiter | None = None) -> None:
        self.fingerprint = fingerprint  # the prompt's salted fingerprint for the usage record (never the prompt)
        self.routing = RoutingState(catalog, settings, governance)
        self.recorder = Recorder(meter, self.routing, rates)
        self.spend = spend
        self.rates = rates  # per-key rpm, rpd (counted by the route) and tpm (taken here)
        self.settings = settings

    @property
    def catalog(self) -> Catalog:
        return self.routing.catalog

    @property
    def meter(self) -> Meter:
        return self.recorder.meter

    def route(self, request: ChatRequest) -> Route:
        """The first candidate for a request (what a call would try first)."""
        return Plan(self.routing, request, CallContext(key_id="")).first()

    def meter_rejected(self, ctx: CallContext, request: ChatRequest | None, error: SwitchyardError) -> None:
        """Meter a call refused before any provider was chosen (bad body, unknown model…)."""
        self.recorder.rejected(ctx, request, error)

    # -- moving through the plan -----------------------------------------------------------------------------
    async def begin(self, plan: Plan, event: UsageEvent, ctx: CallContext,
                    request: ChatRequest) -> tuple[Route, ChatRequest]:
        """The first candidate and the request as it gets it; raises when there is none (or a 402)."""
        route = plan.first()
        record.label(event, route)
        return route, await self._bounded(ctx, event, route, request)

    async def advance(self, plan: Plan, event: UsageEvent, ctx: CallContext, request: ChatRequest,
                      route: Route, error: SwitchyardError) -> tuple[Route, ChatRequest] | None:
        """After `route` failed with `error`: the next candidate and its request, or None (the plan's final
        error says why; a fallback the key cannot afford ends the call with that 402)."""
        following = await plan.next_after(route, error)
        if following is None:
            return None
        record.label(event, following)
        try:
            return following, await self._bounded(ctx, event, following, request)
        except (InsufficientCreditsError, KeyRateLimitedError) as e:
            plan.errors = [*plan.errors, e]
            return None

    async def _bounded(self, ctx: CallContext, event: UsageEvent, route: Route, request: ChatRequest) -> ChatRequest:
        """The request as this candidate gets it: output capped at the model's max. For a key with a limit, the
        call's worst case on this candidate is held first (raised from an earlier candidate's hold if higher);
        for a key with a tpm limit, its worst case in tokens is taken likewise. With middle-out asked for, the
        prompt is first fitted to this candidate's context."""
        if (request.transforms or request.plugins) and middle_out.wanted(request):
            request = await asyncio.to_thread(middle_out.fitted, request, route.endpoint, ctx)  # (~0.1 s at 200k)
        if ctx.limit is None and ctx.tpm is None:
            return capped(request, route.endpoint)
        if ctx.limit is not None and ctx.usage >= ctx.limit and ctx.limit_period == "total":
            # (a period limit is left to the hold: the cached spend may be the last period's)
            raise InsufficientCreditsError("This key's credit limit is spent", metadata={
                "reason": "limit_spent", "limit": ctx.limit, "limit_remaining": 0.0, "usage": round(ctx.usage, 9)})
        holding = asyncio.ensure_future(asyncio.to_thread(self._hold, ctx, event, route, request))
        try:
            return await asyncio.shield(holding)
        except asyncio.CancelledError:
            # A thread cannot be stopped: let its hold land (and set event.reserved) before the record that
            # settles it is written, or the hold would stand until it is released as stale.
            await asyncio.wait({holding})
            raise

    def _hold(self, ctx: CallContext, event: UsageEvent, route: Route, request: ChatRequest) -> ChatRequest:
        """(In a worker thread: a tokenizer may load, and the hold is a DynamoDB round trip.)"""
        tokenizer = tokenizer_of(route.endpoint)
        bounds = ctx.prompt_bounds = ctx.prompt_bounds or {}
        if tokenizer not in bounds:
            bounds[tokenizer] = prompt_bound(request, tokenizer)
        b = budget(request, route.endpoint, bounds[tokenizer])
        if ctx.tpm is not None:
            b = self._fit_minute(ctx, b, request, route)
            try:
                self._take_tokens(ctx, b.prompt_tokens + b.max_tokens * request.n)
            except KeyRateLimitedError as e:
                # The client set no output limit: the one we set is lowered to what the minute has left,
                # down to 256 tokens (a shorter answer than that is not what an unbounded call asked for).
                left = (int(e.metadata.get("remaining", 0)) - b.prompt_tokens) // request.n
                if request.output_limit is not None or left < min(256, b.max_tokens):
                    raise
                b = budget(with_output_limit(request, left), route.endpoint, b.prompt_tokens)
                self._take_tokens(ctx, b.prompt_tokens + b.max_tokens * request.n)
        if ctx.limit is None:
            return b.request
        held = event.reserved or 0.0
        if b.worst_case <= held:
            return b.request
        assert self.spend is not None, "a limited key needs the spend guard"
        try:
            self.spend.hold(ctx.key_id, ctx.limit, ctx.request_id, b.worst_case, already=held, usage=ctx.usage,
                            period=ctx.limit_period)
        except InsufficientCreditsError as e:
            tokens = affordable_tokens(route.endpoint, b.prompt_tokens, e.metadata["limit_remaining"], request.n)
            e.message += f". You requested up to {b.max_tokens} tokens, but can only afford {tokens}"
            e.metadata.update(max_tokens=b.max_tokens, affordable_tokens=tokens, model=route.model.id)
            raise
        event.reserved = b.worst_case
        if ctx.limit_period != "total":
            event.reserved_on = ctx.limit_period
        return b.request

    @staticmethod
    def _fit_minute(ctx: CallContext, b: Budget, request: ChatRequest, route: Route) -> Budget:
        """A call whose worst case is more than the key's whole minute could never be served: waiting would not
        help, so it is a 400 naming what to change, not a 429. When the client set no output limit, the one we
        set (the model's max output) is lowered to fit instead."""
        room = ctx.tpm - b.prompt_tokens
        if b.prompt_tokens + b.max_tokens * request.n <= ctx.tpm:
            return b
        if request.output_limit is None and room >= request.n:
            return budget(with_output_limit(request, room // request.n), route.endpoint, b.prompt_tokens)
        most = max(room // request.n, 0)
        raise BadRequestError(
            f"This call needs up to {b.prompt_tokens + b.max_tokens * request.n} tokens (a prompt of up to "
            f"{b.prompt_tokens} and {b.max_tokens} output tokens × n={request.n}), more than the key's whole "
            f"minute ({ctx.tpm} tokens a minute): " + (f"ask for max_tokens ≤ {most}" if most else
                                                       "the prompt alone is too long for it"),
            metadata={"reason": "tpm_exceeded_by_request", "field": "max_tokens" if most else "messages",
                      "tpm": ctx.tpm, "requested": b.prompt_tokens + b.max_tokens * request.n,
                      "max_tokens_that_fit": most})

    def _take_tokens(self, ctx: CallContext, tokens: int) -> None:
        """Take the call's worst case in tokens from the key's minute (what an earlier candidate took is raised
        to it), or raise the 429 (reason "tpm"). Settled to the real count by the recorder."""
        assert self.rates is not None, "a tpm key needs the rate limiter"
        taken = ctx.tokens_taken or []
        extra = tokens - sum(t.amount for t in taken)
        if extra > 0:
            got = self.rates.take_local(ctx.key_id, "tpm", ctx.tpm, extra) or \
                self.rates.take(ctx.key_id, "tpm", ctx.tpm, extra)
            ctx.tokens_taken = [*taken, got]

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
        event = record.started(ctx, request, streamed=False, fingerprint=self.fingerprint)
        usage: Usage | None = None
        try:
            plan = Plan(self.routing, request, ctx)
            record.routed(event, plan)
            route, sent = await self.begin(plan, event, ctx, request)  # a 402 here refuses the call
            while True:
                try:
                    done = await self._attempt(plan, route, sent)
                    break
                except SwitchyardError as e:
                    step = await self.advance(plan, event, ctx, request, route, e)
                    if step is None:
                        raise plan.final_error() from None
                    route, sent = step
            plan.succeeded(route)
            usage = done.usage
            if usage.estimated:
                usage = counted_usage(request, route, "".join(str((c.get("message") or {}).get("content") or "")
                                                              for c in done.body.get("choices", [])))
            event.ttft_ms = ctx.elapsed_ms()
            event.finish_reason, event.upstream_id = done.finish_reason, done.upstream_id
            body = done.body
            body.update(id=ctx.request_id, model=route.model.id, provider=route.endpoint.provider.id,
                        object="chat.completion", usage=record.usage_block(route, usage))
            if ctx.transforms:
                body["transforms"] = ctx.transforms
            if request.heal_content or request.heal_tool_arguments:
                report = heal_completion(body, content=request.heal_content,
                                         tool_arguments=request.heal_tool_arguments, schema=request.json_schema)
                body["heal_status"] = report.status
                body["heal"] = report.summary()
                record.healed(event, report)
            return body
        except BaseException as e:
            record.failed(event, e)
            if isinstance(e, asyncio.CancelledError):
                event.status = "cancelled"
            raise
        finally:
            if plan is not None:
                event.attempts = plan.metered_attempts()
            self.recorder.finish(event, route, ctx, usage)

    async def open_stream(self, request: ChatRequest, ctx: CallContext) -> AsyncIterator[bytes]:
        """Start the upstream stream; raise here (a plain HTTP error) if every candidate fails before answering."""
        event = record.started(ctx, request, streamed=True, fingerprint=self.fingerprint)
        try:
            plan = Plan(self.routing, request, ctx)
            record.routed(event, plan)
            route, sent = await self.begin(plan, event, ctx, request)
        except BaseException as e:
            record.failed(event, e)
            if isinstance(e, asyncio.CancelledError):
                event.status = "cancelled"
            self.recorder.finish(event, None, ctx, None)
            raise
        relay = StreamRelay(self, request, ctx, plan, route, event, sent)
        try:
            await relay.start()
        except BaseException as e:  # start() closes the relay on the plan's own errors; anything else, here
            relay.fail(e)
            raise
        return relay.sse()
