"""Circuit breakers, one per provider endpoint (provider, upstream model), shared by every request of a process.

closed    calls flow. It opens after `consecutive` failures in a row, or when at least `min_calls` calls in the
          last `window` seconds failed at a rate of `error_rate` or more.
open      calls are shed (the endpoint is skipped; with nothing else to try, the caller gets a 503 at once).
          After `cooldown` seconds it turns half-open.
half-open one probe call at a time is let through: a success closes the breaker, a failure opens it again.

Only provider faults count (5xx, 429, timeouts, connection failures), never a 4xx caused by the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_BUCKET = 5.0  # seconds per bucket of the sliding error-rate window


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    consecutive: int = 5
    error_rate: float = 0.5
    min_calls: int = 20
    window: float = 60.0
    cooldown: float = 30.0


class Breaker:
    __slots__ = ("policy", "state", "streak", "opened_at", "probing", "buckets")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = CLOSED
        self.streak = 0  # consecutive failures
        self.opened_at = 0.0
        self.probing = False
        self.buckets: dict[int, list[int]] = {}  # bucket number → [calls, failures]

    def allow(self, now: float | None = None) -> bool:
        """May a call go to this endpoint now? (Claims the probe slot when half-open.)"""
        if self.state == CLOSED:
            return True
        now = time.monotonic() if now is None else now
        if self.state == OPEN:
            if now - self.opened_at < self.policy.cooldown:
                return False
            self.state, self.probing = HALF_OPEN, False
        if self.probing and now - self.opened_at < 2 * self.policy.cooldown:
            return False  # one probe at a time (a probe unanswered for two cooldowns frees the slot)
        self.probing, self.opened_at = True, now
        return True

    def available(self, now: float | None = None) -> bool:
        """Like `allow`, without claiming anything: for ordering candidates."""
        if self.state == CLOSED:
            return True
        now = time.monotonic() if now is None else now
        return now - self.opened_at >= self.policy.cooldown

    def success(self, now: float | None = None) -> None:
        self._count(now, failed=False)
        self.streak = 0
        if self.state != CLOSED:
            self.state, self.probing = CLOSED, False
            self.buckets.clear()

    def failure(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        calls, failures = self._count(now, failed=True)
        self.streak += 1
        p = self.policy
        if self.state == HALF_OPEN or self.streak >= p.consecutive or \
                (calls >= p.min_calls and failures >= p.error_rate * calls):
            self.state, self.opened_at, self.probing = OPEN, now, False

    def _count(self, now: float | None, *, failed: bool) -> tuple[int, int]:
        """Record one call; return the calls and failures in the window."""
        now = time.monotonic() if now is None else now
        bucket = int(now // _BUCKET)
        counts = self.buckets.get(bucket)
        if counts is None:
            oldest = bucket - int(self.policy.window // _BUCKET)
            for b in [b for b in self.buckets if b <= oldest]:
                del self.buckets[b]
            counts = self.buckets[bucket] = [0, 0]
        counts[0] += 1
        counts[1] += failed
        if not failed:
            return 0, 0
        calls = failures = 0
        for c, f in self.buckets.values():
            calls += c
            failures += f
        return calls, failures


class Breakers:
    """The process's breakers, created on first use."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._by_endpoint: dict[tuple[str, str], Breaker] = {}

    def __call__(self, provider: str, upstream_model: str) -> Breaker:
        key = (provider, upstream_model)
        breaker = self._by_endpoint.get(key)
        if breaker is None:
            breaker = self._by_endpoint[key] = Breaker(self.policy)
        return breaker

    def state(self, provider: str, upstream_model: str) -> str:
        """An endpoint's state, without creating a breaker for it."""
        breaker = self._by_endpoint.get((provider, upstream_model))
        return breaker.state if breaker is not None else CLOSED

    def states(self) -> dict[str, str]:
        return {f"{p}/{m}": b.state for (p, m), b in self._by_endpoint.items()}
