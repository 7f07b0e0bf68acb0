"""GET /models/{id}/endpoints serves endpoint health from a cached aggregate: concurrent callers share one
query, a model is queried at most once per TTL, and only the newest records are read."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from shared.metering import stats
from tests.stores import MemoryUsageStore


@pytest.fixture
def queries(monkeypatch) -> list[str]:
    """Every call of the usage query, by model (the real query runs, against moto)."""
    made: list[str] = []
    original = stats.recent_calls

    def counted(usage, model, **kwargs):
        made.append(model)
        return original(usage, model, **kwargs)

    monkeypatch.setattr(stats, "recent_calls", counted)
    return made


def test_forty_concurrent_calls_make_one_query(gateway, queries):
    from functions.gateway.app import create_app

    app = create_app()
    gateway.endpoint_stats.clock = lambda: 1000.0  # no TTL runs out during the test

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await asyncio.gather(*(client.get("/api/v1/models/sim/fast/endpoints") for _ in range(40)))

    answers = asyncio.run(go())
    assert {a.status_code for a in answers} == {200}
    assert queries == ["sim/fast"]


def test_callers_waiting_on_a_query_share_it(aws, monkeypatch):
    release = threading.Event()
    made: list[str] = []

    def slow(usage, model, **kwargs):
        made.append(model)
        release.wait(10)
        return [{"provider": "sim", "status": "completed", "latency_ms": 5.0}]

    monkeypatch.setattr(stats, "recent_calls", slow)
    cache = stats.EndpointStats(MemoryUsageStore(), clock=lambda: 0.0)

    async def go():
        waiting = [asyncio.ensure_future(cache.get("sim/fast")) for _ in range(40)]
        await asyncio.sleep(0)  # every task runs to its first wait: all 40 are inside get() now
        assert not any(t.done() for t in waiting)
        release.set()
        return await asyncio.gather(*waiting)

    results = asyncio.run(go())
    assert made == ["sim/fast"] and all(r == results[0] for r in results)
    assert results[0]["sim"]["requests"] == 1


def test_a_model_is_queried_again_only_after_the_ttl():
    usage = MemoryUsageStore()
    now = [0.0]
    cache = stats.EndpointStats(usage, ttl=15, clock=lambda: now[0])

    async def go():
        await cache.get("a")
        await cache.get("a")
        await cache.get("b")
        now[0] = 14.0
        await cache.get("a")
        now[0] = 16.0
        await cache.get("a")

    asyncio.run(go())
    assert usage.reads == ["a", "b", "a"]


def test_a_failed_query_is_not_cached(aws, monkeypatch):
    from shared.errors import StorageError

    calls = []

    def failing(usage, model, **kw):
        calls.append(model)
        if len(calls) == 1:
            raise StorageError("Storage is unavailable (usage stats)")
        return []

    monkeypatch.setattr(stats, "recent_calls", failing)
    cache = stats.EndpointStats(MemoryUsageStore(), clock=lambda: 0.0)

    async def go():
        with pytest.raises(StorageError):
            await cache.get("a")
        return await cache.get("a")

    assert asyncio.run(go()) == {} and calls == ["a", "a"]


def test_only_the_newest_records_are_read(gateway, monkeypatch):
    from shared.aws import client, dynamodb
    from shared.metering.store import MAX_PAGES

    pages = []
    real = client("dynamodb")

    class Counting:
        def query(self, **kwargs):
            pages.append(kwargs["Limit"])
            return {"Items": [], "LastEvaluatedKey": {"id": {"S": "x"}}} if len(pages) < 50 else {"Items": []}

    monkeypatch.setattr(dynamodb, "client", lambda name: Counting() if name == "dynamodb" else real)
    stats.recent_calls(gateway.usage, "sim/fast")
    assert pages[0] == stats.RECENT_RECORDS and len(pages) <= MAX_PAGES < 50
