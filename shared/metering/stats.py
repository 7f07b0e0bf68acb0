"""Per-endpoint health from our own usage records: uptime and latency percentiles over a recent window,
served from an aggregate cached per model (`EndpointStats`) so that the unauthenticated endpoints route costs
one bounded query per model per TTL however many call it."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from shared.metering.store import UsageStore

WINDOW_SECONDS = 30 * 60
RECENT_RECORDS = 1000  # enough for stable percentiles; a busy model's window is sampled from its newest calls
STATS_TTL_SECONDS = 15.0
# One worker: stats queries queue behind each other and never take the default pool's threads, which key
# lookups and metering use.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="endpoint-stats")
_PROVIDER_FAULTS = {408, 429, 500, 502, 503, 504}  # what counts against an endpoint's uptime (not 4xx input)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"p50": pick(0.50), "p75": pick(0.75), "p90": pick(0.90), "p99": pick(0.99)}


def recent_calls(usage: UsageStore, model: str, *, now: float | None = None) -> list[dict[str, Any]]:
    """The model's newest usage records in the window, at most RECENT_RECORDS of them."""
    return usage.for_model(model, since=(now or time.time()) - WINDOW_SECONDS, limit=RECENT_RECORDS)


class EndpointStats:
    """`endpoint_stats` per model, computed in a worker thread at most once every `ttl` seconds; callers that
    arrive while it is computed wait for that computation. A failed one is not kept."""

    def __init__(self, usage: UsageStore, *, ttl: float = STATS_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.usage, self.ttl, self.clock = usage, ttl, clock
        self._done: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}  # model → (computed at, stats)
        self._running: dict[str, asyncio.Future[dict[str, dict[str, Any]]]] = {}

    async def get(self, model: str) -> dict[str, dict[str, Any]]:
        started = self.clock()
        done = self._done.get(model)
        if done is not None and started - done[0] < self.ttl:
            return done[1]
        loop = asyncio.get_running_loop()
        running = self._running.get(model)
        if running is None or running.get_loop() is not loop:
            running = loop.run_in_executor(_EXECUTOR, self._compute, model)
            self._running[model] = running
            running.add_done_callback(lambda f: self._keep(model, started, f))
        return await asyncio.shield(running)  # one caller going away does not cancel the others' answer

    def _compute(self, model: str) -> dict[str, dict[str, Any]]:
        return endpoint_stats(recent_calls(self.usage, model))

    def _keep(self, model: str, started: float, future: asyncio.Future[dict[str, dict[str, Any]]]) -> None:
        if self._running.get(model) is future:
            del self._running[model]
        if not future.cancelled() and future.exception() is None:
            self._done[model] = (started, future.result())


def endpoint_stats(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{provider: {uptime, requests, latency (ms, whole call), time_to_first_token (ms)}}."""
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        if call.get("provider"):
            by_provider.setdefault(call["provider"], []).append(call)
    stats = {}
    for provider, group in by_provider.items():
        faults = sum(1 for c in group if c.get("status") == "failed" and c.get("error_code") in _PROVIDER_FAULTS)
        ok = [c for c in group if c.get("status") == "completed"]
        stats[provider] = {
            "requests": len(group),
            "uptime": round(1 - faults / len(group), 4),
            "latency": _percentiles([float(c["latency_ms"]) for c in ok if c.get("latency_ms") is not None]),
            "time_to_first_token": _percentiles([float(c["ttft_ms"]) for c in ok if c.get("ttft_ms") is not None]),
        }
    return stats
