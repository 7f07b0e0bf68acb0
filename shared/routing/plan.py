"""One call's plan: the models and endpoints it may try, in order, and what happened to each attempt.

The chain of models comes from a routing policy (when the requested id names one; with a variant, `:floor` say, the
variant applies to each model it routes to) followed by the request's own `models: [...]` list. Each model's endpoints come from provider routing (shared/routing/providers.py). Moving
on is immediate: a failed attempt is followed at once by the next candidate, so a fallback costs nothing but
the failed attempt itself. What moves on (the error's class says: `retryable`, `request_fault` and
`every_endpoint` in shared/errors.py; its name matters only to `on_error` and the attempt records):
- any upstream error moves to the next endpoint of the model; a request the upstream called invalid (plain
  400, content policy) skips the model's other endpoints, since they would refuse it too;
- only the endpoint's own faults count against its breaker, never the request's (400s, 413, a key that
  cannot afford it);
- a policy's `on_error` reroutes by error type (e.g. `context_length_exceeded` → a longer-context model);
- an endpoint whose breaker is open is skipped (its load is shed);
- a model or endpoint the call may not use is screened out (shared/routing/screen.py: the key's allowed models,
  the organisation's approvals, residency), its refusal kept as the final error if nothing else answers.
When every candidate failed and some failure was transient (429, 5xx, timeout, connection), the plan is run
again after a jittered exponential backoff (at least the largest Retry-After, and never longer than
`max_retry_wait_seconds`), at most `max_retries` times (a policy's `retries` overrides), within the call's
deadline. Endpoints that failed for good are not retried.
The deadline (`Plan.deadline`) is the call's start plus the total timeout, or the invocation's (`DEADLINE`,
set by the Lambda handler) when that comes first; every attempt, the first included, ends by it.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from shared.chat.schema import ChatRequest
from shared.errors import NoProviderError, SwitchyardError, UpstreamTimeoutError
from shared.providers.base import DEADLINE
from shared.routing.policy import RoutingInput
from shared.routing.screen import Screen
from shared.routing.state import VARIANTS

if TYPE_CHECKING:
    from shared.chat.context import CallContext
    from shared.routing.providers import Candidate
    from shared.routing.state import RoutingState

_JITTER = random.Random()


def error_type(error: SwitchyardError) -> str:
    """The name an error goes by in attempt records and a policy's `on_error` (what the error body shows)."""
    return error.metadata.get("error_type") or error.error_type


def _retry_after(error: SwitchyardError) -> float | None:
    value = error.metadata.get("retry_after") or error.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # (an upstream's HTTP date is already seconds: see providers.base.retry_after_seconds)


class Attempt(NamedTuple):
    candidate: "Candidate"
    status: int | None  # the upstream's HTTP status (ours where it sent none); None: not tried
    error_type: str | None
    latency_ms: float
    round: int
    flag: str | None = None  # "skipped" (breaker open) or "mid_stream" (a stream that failed after answering)

    def record(self) -> dict[str, Any]:
        c = self.candidate
        return {"provider": c.key[0], "model": c.model.id, "upstream_model": c.key[1], "status": self.status,
                "latency_ms": self.latency_ms, "error_type": self.error_type, "round": self.round,
                **({self.flag: True} if self.flag else {})}


class Plan:
    # What most calls never touch stays a shared empty tuple until the first failure needs a list.
    errors: list[SwitchyardError] | tuple = ()  # the attempts' errors
    unresolved: list[SwitchyardError] | tuple = ()  # models that gave no candidate (unknown, no provider)
    shed: list[Candidate] | tuple = ()  # candidates skipped because their breaker is open
    spent: set[tuple[str, str]] | frozenset = frozenset()  # endpoints that failed for good: not retried
    rerouted: set[str] | frozenset = frozenset()
    transient: list[SwitchyardError] | tuple = ()  # this round's retryable failures
    rule: str | None = None
    round = 0
    expanded: frozenset[str] | set[str] = frozenset()  # policies met later in the chain, expanded once each

    def __init__(self, routing: "RoutingState", request: ChatRequest, ctx: "CallContext") -> None:
        self.routing, self.request, self.ctx = routing, request, ctx
        self.settings = settings = routing.settings
        requested = request.model_ids
        self.catalog = catalog = routing.catalog  # read once: every lookup of this call sees the same catalog
        self.screen = screen = Screen.of(ctx, routing.governance())  # None: nothing to screen (the usual call)
        if screen is not None:
            screen.check_requested(catalog, requested)
        self.policy = catalog.policies.find(requested[0]) if len(catalog.policies) else None
        variant = None
        if self.policy is None and len(catalog.policies) and ":" in requested[0]:  # a variant on a policy
            base, _, variant = requested[0].rpartition(":")
            self.policy = catalog.policies.by_id.get(base) if variant in VARIANTS else None
        if self.policy is not None:
            chain, self.rule = self.policy.decide(self._input(requested[0]))
            if variant:  # applies to each model it routes to (not to policies, nor to ids that name a variant)
                chain = [m if ":" in m or m in catalog.policies.by_id else f"{m}:{variant}" for m in chain]
            self.expanded = {self.policy.id}
            self.chain = list(dict.fromkeys(chain + requested[1:]))
        else:
            self.chain = requested
        self.retries = self.policy.retries if self.policy is not None and self.policy.retries is not None \
            else settings.max_retries
        self.deadline = ctx.started + settings.total_timeout_seconds  # on time.perf_counter's clock
        if (outer := DEADLINE.get()) is not None and outer < self.deadline:
            self.deadline = outer  # the Lambda invocation's, less a margin for metering
        self.position = 0
        self.queue: list[Candidate] = []  # the current model's candidates (shared: read from `next_in_queue` on)
        self.next_in_queue = 0
        self.tried: list[Attempt] = []
        self.started = 0.0

    def _input(self, requested: str) -> RoutingInput:
        ctx, request = self.ctx, self.request
        return RoutingInput(request.messages, requested, app_title=ctx.app_title, app_referer=ctx.app_referer,
                            key_id=ctx.key_id, key_tags=ctx.key_tags, sticky_key=request.session_id or request.user)

    def _expand(self, policy_id: str) -> bool:
        """A policy named later in the chain (a fallback, or a policy's target) is replaced by its decision."""
        policy = self.catalog.policies.by_id.get(policy_id)
        if policy is None or policy_id in self.expanded:
            return False
        self.expanded = {*self.expanded, policy_id}
        chain, _ = policy.decide(self._input(policy_id))
        head = self.chain[:self.position]
        rest = self.chain[self.position + 1:]
        self.chain = head + list(dict.fromkeys(m for m in chain + rest if m not in head))
        return True

    # -- moving through the plan --

    def first(self) -> "Candidate":
        """The first candidate; raises the reason when there is none (unknown model, no provider, all shed)."""
        candidate = self._next()
        if candidate is None:
            raise self.final_error()
        return candidate

    def _next(self) -> "Candidate | None":
        while True:
            queue = self.queue
            while self.next_in_queue < len(queue):
                c = queue[self.next_in_queue]
                self.next_in_queue += 1
                if self.spent and c.key in self.spent:
                    continue
                if c.breaker.allow():
                    self.started = time.perf_counter()
                    return c
                self.shed = [*self.shed, c]
                self.tried.append(Attempt(c, None, "circuit_open", 0.0, self.round, "skipped"))  # listed, not tried
            if self.position >= len(self.chain):
                return None
            model_id = self.chain[self.position]
            if (self.position or self.expanded) and self._expand(model_id):  # (a plain first model is no policy)
                continue
            self.position += 1
            self.next_in_queue = 0
            try:
                self.queue = self.routing.candidates(model_id, self.request, self.catalog)  # may be cached: read only
            except SwitchyardError as e:
                self.queue = []
                self.unresolved = [*self.unresolved, e]
                continue
            if self.screen is not None and self.queue:
                self.queue, refusal = self.screen.keep(self.queue)
                if refusal is not None:  # skipped, and said so if nothing answers
                    self.unresolved = [*self.unresolved, refusal]

    def failed(self, c: "Candidate", error: SwitchyardError) -> None:
        """Record a failed attempt and let its breaker know. What follows is the error class's to say
        (shared/errors.py): `request_fault`, `retryable`, `every_endpoint`."""
        kind = error_type(error)
        self._record(c, error.metadata.get("upstream_status") or error.status, kind)
        self._count_error(c, kind)
        self.errors = [*self.errors, error]
        breaker = c.breaker
        if not error.request_fault:
            breaker.failure()
        elif breaker.probing:
            breaker.success()  # the probe reached a healthy upstream that refused the request itself
        if error.retryable:
            self.transient = [*self.transient, error]
        else:
            self.spent = self.spent | {c.key}
        if error.every_endpoint:
            self.next_in_queue = len(self.queue)  # the model's other endpoints would refuse this request too
        target = self.policy.on_error.get(kind) if self.policy is not None else None
        if target is not None and target not in self.rerouted:
            self.rerouted = self.rerouted | {target}
            self.next_in_queue = len(self.queue)
            self.chain = [*self.chain[:self.position], target, *self.chain[self.position:]]

    def succeeded(self, c: "Candidate") -> None:
        """Record the attempt that answered (for a stream: its first chunk) and feed the latency average."""
        ms = self._record(c, 200, None)
        c.breaker.success()
        self.routing.observed_latency((c.key[0], c.model.id), ms)

    def broke(self, c: "Candidate", error: SwitchyardError) -> None:
        """A stream that had answered failed mid-way: its attempt says so and its breaker counts it."""
        kind = error_type(error)
        if self.tried and self.tried[-1].candidate is c:
            self.tried[-1] = self.tried[-1]._replace(status=error.metadata.get("upstream_status") or error.status,
                                                     error_type=kind, flag="mid_stream")
        self._count_error(c, kind)
        if not error.request_fault:
            c.breaker.failure()

    def _count_error(self, c: "Candidate", kind: str) -> None:
        """Count a failed upstream attempt for /metrics (shared/metrics/prometheus.py)."""
        errors = self.routing.upstream_errors
        key = (c.key[0], c.model.id, kind)
        errors[key] = errors.get(key, 0) + 1

    def _record(self, c: "Candidate", status: int, kind: str | None) -> float:
        ms = round((time.perf_counter() - self.started) * 1000, 3)
        self.tried.append(Attempt(c, status, kind, ms, self.round))
        return ms

    def metered_attempts(self) -> list[dict[str, Any]] | None:
        """What the usage record stores: the attempts when there was more than one, or the one failed mid-stream
        or was skipped (a single plain attempt is the record itself: its provider, model, status and latency).
        Candidates skipped because their breaker is open are listed too (`skipped`, `circuit_open`)."""
        if not self.tried or len(self.tried) == 1 and self.tried[0].flag is None:
            return None
        return [a.record() for a in self.tried]

    async def next_after(self, c: "Candidate", error: SwitchyardError) -> "Candidate | None":
        """The candidate to try after `c` failed with `error`: the next one at once, or, when none is left, the
        plan again after a backoff (if the failure was transient and the budget allows). None: give up."""
        self.failed(c, error)
        candidate = self._next()
        if candidate is not None or not self.transient or self.round >= self.retries:
            return candidate
        hint = max((h for e in self.transient if (h := _retry_after(e)) is not None), default=0.0)
        backoff = self.settings.retry_backoff_seconds * 2 ** self.round * (0.5 + _JITTER.random() / 2)
        wait = max(backoff, hint)
        remaining = self.deadline - time.perf_counter()
        if wait > self.settings.max_retry_wait_seconds or wait >= remaining:
            return None
        await asyncio.sleep(wait)
        self.round += 1
        self.position, self.queue, self.next_in_queue, self.transient, self.rerouted = 0, [], 0, (), frozenset()
        return self._next()

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def final_error(self) -> SwitchyardError:
        """What the caller gets when nothing answered: the last upstream error, else why nothing was tried."""
        if self.errors:
            return self.errors[-1]
        if self.shed:
            breaker = self.shed[0].breaker
            wait = max(1, math.ceil(breaker.opened_at + breaker.policy.cooldown - time.monotonic()))
            return NoProviderError(
                "Every provider of the requested models is failing; calls are paused while they recover",
                metadata={"breaker": "open",
                          "providers": sorted({c.endpoint.provider.id for c in self.shed})},
                headers={"Retry-After": str(wait)})
        if self.unresolved:
            return self.unresolved[0]
        return UpstreamTimeoutError("The call ran out of time")
