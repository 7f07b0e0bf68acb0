"""One call's plan: the models and endpoints it may try, in order, and what happened to each attempt.

The chain of models comes from a routing policy (when the requested id names one) followed by the request's own
`models: [...]` list. Each model's endpoints come from provider routing (shared/routing/providers.py). Moving
on is immediate: a failed attempt is followed at once by the next candidate, so a fallback costs nothing but
the failed attempt itself. What moves on:
- any upstream error moves to the next endpoint of the model; a request the upstream called invalid (plain
  400, content policy) skips the model's other endpoints, since they would refuse it too;
- a policy's `on_error` reroutes by error type (e.g. `context_length_exceeded` → a longer-context model);
- an endpoint whose breaker is open is skipped (its load is shed).
When every candidate failed and some failure was transient (429, 5xx, timeout, connection), the plan is run
again after a jittered exponential backoff (at least the largest Retry-After, and never longer than
`max_retry_wait_seconds`), at most `max_retries` times (a policy's `retries` overrides), within the call's
total timeout. Endpoints that failed for good are not retried.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import TYPE_CHECKING, Any

from shared.chat.schema import ChatRequest
from shared.errors import NoProviderError, SwitchyardError, UpstreamTimeoutError
from shared.routing.policy import RoutingInput

if TYPE_CHECKING:
    from shared.chat.service import CallContext, ChatService
    from shared.routing.providers import Candidate

# Errors worth another try on the same endpoint later; anything else that is the provider's fault still counts
# against its breaker.
RETRYABLE = frozenset({"rate_limit_exceeded", "provider_overloaded", "provider_error", "timeout",
                       "provider_unavailable"})
REQUEST_FAULTS = frozenset({"invalid_request", "context_length_exceeded", "content_policy_violation"})
_JITTER = random.Random()


def error_type(error: SwitchyardError) -> str:
    return error.metadata.get("error_type") or error.error_type


def _retry_after(error: SwitchyardError) -> float | None:
    value = error.metadata.get("retry_after") or error.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: treated as no hint


class Plan:
    def __init__(self, service: "ChatService", request: ChatRequest, ctx: "CallContext") -> None:
        self.service, self.request, self.ctx = service, request, ctx
        settings = service.settings
        requested = request.model_ids
        catalog = service.catalog
        self.policy = catalog.policies.find(requested[0]) if len(catalog.policies) else None
        self.rule: str | None = None
        if self.policy is not None:
            inp = RoutingInput(request.messages, requested[0], app_title=ctx.app_title, app_referer=ctx.app_referer,
                               key_id=ctx.key_id, key_tags=ctx.key_tags, sticky_key=request.session_id or request.user)
            chain, self.rule = self.policy.decide(inp)
            self.chain = list(dict.fromkeys(chain + requested[1:]))
        else:
            self.chain = requested
        self.retries = self.policy.retries if self.policy is not None and self.policy.retries is not None \
            else settings.max_retries
        self.deadline = ctx.started + settings.total_timeout_seconds  # on time.perf_counter's clock
        self.round = 0
        self.position = 0
        self.queue: list[Candidate] = []
        self.attempts: list[dict[str, Any]] = []
        self.errors: list[SwitchyardError] = []  # the attempts' errors
        self.unresolved: list[SwitchyardError] = []  # models that gave no candidate (unknown, no provider)
        self.shed: list[Candidate] = []
        self.spent: set[tuple[str, str]] = set()  # endpoints that failed for good: not retried
        self.rerouted: set[str] = set()
        self.transient: list[SwitchyardError] = []  # this round's retryable failures
        self.started = 0.0

    # -- moving through the plan --

    def first(self) -> "Candidate":
        """The first candidate; raises the reason when there is none (unknown model, no provider, all shed)."""
        candidate = self._next()
        if candidate is None:
            raise self.final_error()
        return candidate

    def _next(self) -> "Candidate | None":
        breakers = self.service.breakers
        while True:
            while self.queue:
                c = self.queue.pop(0)
                if (c.endpoint.provider.id, c.endpoint.upstream_model) in self.spent:
                    continue
                if breakers(c.endpoint.provider.id, c.endpoint.upstream_model).allow():
                    self.started = time.perf_counter()
                    return c
                self.shed.append(c)
            if self.position >= len(self.chain):
                return None
            model_id = self.chain[self.position]
            self.position += 1
            try:
                self.queue = list(self.service.candidates(model_id, self.request))
            except SwitchyardError as e:
                self.unresolved.append(e)

    def failed(self, c: "Candidate", error: SwitchyardError) -> None:
        """Record a failed attempt and let its breaker know."""
        kind = error_type(error)
        self._record(c, error.metadata.get("upstream_status") or error.status, kind)
        self.errors.append(error)
        breaker = self.service.breakers(c.endpoint.provider.id, c.endpoint.upstream_model)
        if kind not in REQUEST_FAULTS:
            breaker.failure()
        elif breaker.probing:
            breaker.success()  # the probe reached a healthy upstream that refused the request itself
        if kind in RETRYABLE:
            self.transient.append(error)
        else:
            self.spent.add((c.endpoint.provider.id, c.endpoint.upstream_model))
        if kind in ("invalid_request", "content_policy_violation"):
            self.queue = []  # the model's other endpoints would refuse this request too
        target = self.policy.on_error.get(kind) if self.policy is not None else None
        if target is not None and target not in self.rerouted:
            self.rerouted.add(target)
            self.queue = []
            self.chain.insert(self.position, target)

    def succeeded(self, c: "Candidate") -> None:
        """Record the attempt that answered (for a stream: its first chunk) and feed the latency average."""
        self._record(c, 200, None)
        self.service.breakers(c.endpoint.provider.id, c.endpoint.upstream_model).success()
        key, ms = (c.endpoint.provider.id, c.model.id), self.attempts[-1]["latency_ms"]
        averages = self.service.latency
        averages[key] = ms if key not in averages else 0.8 * averages[key] + 0.2 * ms

    def broke(self, c: "Candidate", error: SwitchyardError) -> None:
        """A stream that had answered failed mid-way: its attempt says so and its breaker counts it."""
        kind = error_type(error)
        if self.attempts and self.attempts[-1]["provider"] == c.endpoint.provider.id:
            self.attempts[-1].update(status=error.metadata.get("upstream_status") or error.status, error_type=kind,
                                     mid_stream=True)
        if kind not in REQUEST_FAULTS:
            self.service.breakers(c.endpoint.provider.id, c.endpoint.upstream_model).failure()

    def _record(self, c: "Candidate", status: int, kind: str | None) -> None:
        self.attempts.append({
            "provider": c.endpoint.provider.id, "model": c.model.id, "upstream_model": c.endpoint.upstream_model,
            "status": status, "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "error_type": kind, "round": self.round})

    async def next_after(self, c: "Candidate", error: SwitchyardError) -> "Candidate | None":
        """The candidate to try after `c` failed with `error`: the next one at once, or, when none is left, the
        plan again after a backoff (if the failure was transient and the budget allows). None: give up."""
        self.failed(c, error)
        candidate = self._next()
        if candidate is not None or not self.transient or self.round >= self.retries:
            return candidate
        hint = max((h for e in self.transient if (h := _retry_after(e)) is not None), default=0.0)
        backoff = self.service.settings.retry_backoff_seconds * 2 ** self.round * (0.5 + _JITTER.random() / 2)
        wait = max(backoff, hint)
        remaining = self.deadline - time.perf_counter()
        if wait > self.service.settings.max_retry_wait_seconds or wait >= remaining:
            return None
        await asyncio.sleep(wait)
        self.round += 1
        self.position, self.queue, self.transient, self.rerouted = 0, [], [], set()
        return self._next()

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def final_error(self) -> SwitchyardError:
        """What the caller gets when nothing answered: the last upstream error, else why nothing was tried."""
        if self.errors:
            return self.errors[-1]
        if self.shed:
            breaker = self.service.breakers(self.shed[0].endpoint.provider.id, self.shed[0].endpoint.upstream_model)
            wait = max(1, math.ceil(breaker.opened_at + breaker.policy.cooldown - time.monotonic()))
            return NoProviderError(
                "Every provider of the requested models is failing; calls are paused while they recover",
                metadata={"error_type": "provider_unavailable", "breaker": "open",
                          "providers": sorted({c.endpoint.provider.id for c in self.shed})},
                headers={"Retry-After": str(wait)})
        if self.unresolved:
            return self.unresolved[0]
        return UpstreamTimeoutError("The call ran out of time")
