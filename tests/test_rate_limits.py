"""Per-key rate limits (rpm, rpd, tpm): the leases against moto (two `RateLimiter`s on one table behave like two
processes), window boundaries on an injected clock, and each limit allowed and refused through the API."""

import asyncio
import random
import threading
import time
from datetime import datetime, timezone

import pytest

from shared.aws.dynamodb import Table
from shared.errors import KeyRateLimitedError, RateLimitedError
from shared.keys.rates import RateLimiter, bucket, rate_key

CHAT = "/api/v1/chat/completions"
T0 = datetime(2026, 12, 2, 7, 5, 0, tzinfo=timezone.utc).timestamp()  # a minute's first second


def chat(**extra):
    return {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}], **extra}


def bearer(token, **headers):
    return {"Authorization": f"Bearer {token}", **headers}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counted(limiter: RateLimiter) -> list[str]:
    """The limiter's DynamoDB round trips, as they happen (one entry each)."""
    trips: list[str] = []
    update = limiter.table.update

    def counting(*args, **kwargs):
        trips.append(args[1])
        return update(*args, **kwargs)

    limiter.table.update = counting
    return trips


def granted(aws, key_id: str, name: str) -> int:
    row = Table(aws["CountersTable"]).get({"pk": rate_key(key_id), "period": name}, consistent=True) or {}
    return int(row.get("granted", 0))


# -- windows --

def test_windows_are_utc_minutes_and_days_named_in_the_sort_key():
    assert bucket("rpm", int(T0)) == "rpm#2026-12-02T07:05"
    assert bucket("tpm", int(T0)) == "tpm#2026-12-02T07:05"
    assert bucket("rpd", int(T0 // 86400 * 86400)) == "rpd#2026-12-02"


def test_a_minute_window_refuses_until_it_ends_then_opens_again(aws):
    clock = Clock(T0 + 58.2)
    limiter = RateLimiter(aws["CountersTable"], clock=clock)
    for _ in range(3):
        limiter.take("k1", "rpm", 3)
    with pytest.raises(KeyRateLimitedError) as refused:
        limiter.take("k1", "rpm", 3)
    e = refused.value
    assert e.status == 429 and e.metadata["reason"] == "rpm" and not e.retryable and e.request_fault
    assert e.headers == {"Retry-After": "2", "X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "0",
                         "X-RateLimit-Reset": str(int((T0 + 60) * 1000))}
    clock.now = T0 + 59.999
    with pytest.raises(KeyRateLimitedError):
        limiter.take("k1", "rpm", 3)
    clock.now = T0 + 60  # 07:06:00: a new window, a new row
    assert limiter.take("k1", "rpm", 3).bucket == "rpm#2026-12-02T07:06"
    assert granted(aws, "k1", "rpm#2026-12-02T07:05") == 3
    row = Table(aws["CountersTable"]).get({"pk": "rate#k1", "period": "rpm#2026-12-02T07:05"})
    assert row["expires_at"] == T0 + 60 + 3600  # the TTL attribute: old windows go away


def test_a_day_window_turns_at_midnight_utc(aws):
    midnight = datetime(2026, 12, 3, tzinfo=timezone.utc).timestamp()
    clock = Clock(midnight - 1)
    limiter = RateLimiter(aws["CountersTable"], clock=clock)
    limiter.take("k2", "rpd", 1)
    with pytest.raises(KeyRateLimitedError) as refused:
        limiter.take("k2", "rpd", 1)
    assert refused.value.metadata["reason"] == "rpd" and refused.value.headers["Retry-After"] == "1"
    clock.now = midnight
    assert limiter.take("k2", "rpd", 1).bucket == "rpd#2026-12-03"


# -- leases: two limiters on one table are two processes --

def test_two_processes_never_serve_more_than_the_limit_together(aws):
    clock = Clock(T0 + 1)
    a, b = (RateLimiter(aws["CountersTable"], clock=clock, prefetch=False) for _ in range(2))
    trips_a, trips_b = counted(a), counted(b)
    rng = random.Random(7)
    served = {"a": 0, "b": 0}
    for _ in range(200):
        name, limiter = rng.choice((("a", a), ("b", b)))
        clock.now += 0.01
        try:
            limiter.take("k3", "rpm", 30)
            served[name] += 1
        except KeyRateLimitedError:
            pass
    assert served["a"] + served["b"] == 30 and served["a"] and served["b"]
    assert granted(aws, "k3", "rpm#2026-12-02T07:05") == 30
    # leases: fewer round trips than requests served, and refusals are remembered (a re-check a second at most)
    assert len(trips_a) + len(trips_b) < 30


def test_concurrent_threads_in_two_processes_never_pass_the_limit(aws):
    a, b = RateLimiter(aws["CountersTable"]), RateLimiter(aws["CountersTable"])
    served, lock = [], threading.Lock()

    def burst(limiter: RateLimiter) -> None:
        for _ in range(40):
            try:
                limiter.take("k4", "rpm", 50)
            except KeyRateLimitedError:
                continue
            with lock:
                served.append(1)

    threads = [threading.Thread(target=burst, args=(lim,)) for lim in (a, b) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for limiter in (a, b):  # a prefetch may still be on its way
        if limiter._background is not None:
            limiter._background.shutdown(wait=True)
    name = a._leases[("k4", "rpm")].bucket
    assert len(served) <= 50 and granted(aws, "k4", name) <= 50
    # what was granted and not served is only what the two leases still hold
    left = a._leases[("k4", "rpm")].left + b._leases[("k4", "rpm")].left
    assert len(served) + left == granted(aws, "k4", name)


def test_a_lease_is_served_locally_and_slices_shrink_as_the_window_fills(aws):
    clock = Clock(T0 + 1)
    limiter = RateLimiter(aws["CountersTable"], clock=clock, prefetch=False)
    trips = counted(limiter)
    sizes = []
    for _ in range(100):
        clock.now += 0.001  # a burst: each slice runs out at once, so it is capped by the window's room
        before = len(trips)
        got = limiter.take_local("k5", "rpm", 100) or limiter.take("k5", "rpm", 100)
        if len(trips) > before:
            sizes.append(limiter._leases[("k5", "rpm")].size)
        assert got.amount == 1
    assert granted(aws, "k5", "rpm#2026-12-02T07:05") == 100
    assert sizes[0] == 1 and max(sizes) <= 13  # the first knows no rate; none takes more than 1/8 of the room
    assert sizes[-3:] == [1, 1, 1] and sizes.index(max(sizes)) < 3  # they shrink as the window fills
    assert len(trips) < 40


def test_a_busy_lease_asks_for_its_next_slice_in_the_background(aws):
    clock = Clock(T0 + 1)
    limiter = RateLimiter(aws["CountersTable"], clock=clock)
    by_thread: list[str] = []
    update = limiter.table.update
    limiter.table.update = lambda *a, **k: by_thread.append(threading.current_thread().name) or update(*a, **k)
    for _ in range(1500):
        clock.now += 0.002  # 500 requests a second: slices of ~250 (half a second's)
        limiter.take_local("k11", "rpm", 10_000) or limiter.take("k11", "rpm", 10_000)
    limiter._background.shutdown(wait=True)
    lease = limiter._leases[("k11", "rpm")]
    assert granted(aws, "k11", "rpm#2026-12-02T07:05") - lease.left == 1500
    on_the_request_path = [t for t in by_thread if not t.startswith("rate-leases")]
    assert len(on_the_request_path) <= 3 and len(by_thread) > len(on_the_request_path)  # the rest ahead of need


def test_when_less_than_a_slice_is_left_what_is_left_is_granted(aws):
    clock = Clock(T0 + 1)
    a, b = RateLimiter(aws["CountersTable"], clock=clock), RateLimiter(aws["CountersTable"], clock=clock)
    a.take("k6", "tpm", 1000, 900)
    with pytest.raises(KeyRateLimitedError) as refused:
        b.take("k6", "tpm", 1000, 200)
    assert refused.value.metadata == {**refused.value.metadata, "reason": "tpm", "remaining": 100, "requested": 200}
    got = b.take("k6", "tpm", 1000, 100)  # 100 fits in what a's refusal saw left: asked again
    assert got.amount == 100 and granted(aws, "k6", "tpm#2026-12-02T07:05") == 1000


def test_a_refusal_is_remembered_without_round_trips_until_the_recheck(aws):
    clock = Clock(T0 + 1)
    a, b = (RateLimiter(aws["CountersTable"], clock=clock, prefetch=False) for _ in range(2))
    a.take("k7", "rpm", 1)
    trips = counted(b)
    for _ in range(50):
        with pytest.raises(KeyRateLimitedError):
            b.take_local("k7", "rpm", 1) or b.take("k7", "rpm", 1)
    assert len(trips) == 1
    clock.now += 1.0  # the recheck: one more look at the table
    with pytest.raises(KeyRateLimitedError):
        b.take("k7", "rpm", 1)
    assert len(trips) == 2


def test_unused_tokens_go_back_to_the_lease_then_beyond_a_slice_to_the_table(aws):
    clock = Clock(T0 + 1)
    a, b = (RateLimiter(aws["CountersTable"], clock=clock, prefetch=False) for _ in range(2))
    first = a.take("k8", "tpm", 10_000, 4_000)
    trips = counted(a)
    a.give_back(first, 3_900)  # the call used 100 tokens: the lease keeps them (up to one slice, 4,000)
    again = a.take_local("k8", "tpm", 10_000, 3_900)
    assert again is not None and trips == []
    second = a.take("k8", "tpm", 10_000, 4_000)
    assert len(trips) == 1 and granted(aws, "k8", "tpm#2026-12-02T07:05") == 8_000
    a.give_back(second, 4_000)
    a.give_back(again, 3_900)  # 7,900 unused: one slice stays in the lease, 3,900 go back to the table
    a._background.shutdown(wait=True)
    assert granted(aws, "k8", "tpm#2026-12-02T07:05") == 8_000 - 3_900
    assert a._leases[("k8", "tpm")].left == 4_000
    assert b.take("k8", "tpm", 10_000, 5_000).amount == 5_000  # without the return only 2,000 were left


def test_a_window_that_ended_keeps_what_it_counted(aws):
    clock = Clock(T0 + 59)
    limiter = RateLimiter(aws["CountersTable"], clock=clock)
    taken = limiter.take("k9", "tpm", 1000, 800)
    clock.now = T0 + 61
    limiter.give_back(taken, 800)
    assert limiter.take_local("k9", "tpm", 1000, 800) is None  # the new window's lease is empty
    assert granted(aws, "k9", "tpm#2026-12-02T07:05") == 800


def test_a_call_larger_than_the_limit_is_refused_without_a_round_trip(aws):
    limiter = RateLimiter(aws["CountersTable"])
    trips = counted(limiter)
    with pytest.raises(KeyRateLimitedError) as refused:
        limiter.take("k10", "tpm", 1000, 1001)
    assert "more than this key's limit of 1000" in refused.value.message and trips == []


# -- through the API --

@pytest.fixture
def admin(keys):
    return bearer(keys["admin"])


def new_key(client, admin, **settings):
    response = client.post("/api/v1/keys", headers=admin, json={"name": "rates", **settings})
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["data"]["hash"]


def test_rpm_allows_then_refuses_with_the_headers_and_meters_the_refusal(client, admin, gateway):
    gateway.chat.rates.clock = clock = Clock(T0 + 30)
    token, key_id = new_key(client, admin, rpm=2)
    for remaining in ("1", "0"):
        ok = client.post(CHAT, json=chat(), headers=bearer(token))
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Limit"] == "2" and ok.headers["X-RateLimit-Remaining"] == remaining
    refused = client.post(CHAT, json=chat(), headers=bearer(token))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == 429 and error["metadata"]["reason"] == "rpm"
    assert error["metadata"]["error_type"] == "rate_limit_exceeded"
    assert refused.headers["Retry-After"] == "30" and refused.headers["X-RateLimit-Limit"] == "2"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == str(int((T0 + 60) * 1000))
    gateway.meter.flush()
    record = gateway.usage.get(refused.headers["X-Generation-Id"])
    assert record["status"] == "failed" and record["error_code"] == 429 and record["key_id"] == key_id
    clock.now = T0 + 60
    assert client.post(CHAT, json=chat(), headers=bearer(token)).status_code == 200


def test_rpd_refuses_for_the_rest_of_the_utc_day(client, admin, gateway):
    gateway.chat.rates.clock = Clock(T0)
    token, _ = new_key(client, admin, rpd=1, rpm=100)
    assert client.post(CHAT, json=chat(), headers=bearer(token)).status_code == 200
    refused = client.post(CHAT, json=chat(), headers=bearer(token))
    assert refused.status_code == 429 and refused.json()["error"]["metadata"]["reason"] == "rpd"
    midnight = datetime(2026, 12, 3, tzinfo=timezone.utc).timestamp()
    assert refused.headers["Retry-After"] == str(int(midnight - T0))
    assert refused.headers["X-RateLimit-Reset"] == str(int(midnight * 1000))


def test_tpm_takes_the_worst_case_and_gives_back_what_the_call_did_not_use(client, admin, gateway):
    gateway.chat.rates.clock = Clock(T0 + 5)
    token, key_id = new_key(client, admin, tpm=4200)
    # no max_tokens: the output bound is set (sim/fast's max output, 4096) and taken with the prompt's bound
    first = client.post(CHAT, json=chat(), headers=bearer(token))
    assert first.status_code == 200 and first.json()["usage"]["completion_tokens"] <= 4096
    second = client.post(CHAT, json=chat(), headers=bearer(token))  # the first gave back what it did not use
    assert second.status_code == 200
    used = sum(r.json()["usage"]["total_tokens"] for r in (first, second))
    lease = gateway.chat.rates._leases[(key_id, "tpm")]
    for _ in range(100):  # a prefetch may be in flight on the limiter's background thread: let it land
        held = granted(gateway_aws(gateway), key_id, "tpm#2026-12-02T07:05") - lease.left
        if held == used and not lease.granting:
            break
        time.sleep(0.02)
    assert held == used


def gateway_aws(gateway):
    return {"CountersTable": gateway.settings.counters_table}


def test_tpm_refuses_a_call_whose_worst_case_does_not_fit(client, admin, gateway):
    gateway.chat.rates.clock = Clock(T0 + 5)
    token, _ = new_key(client, admin, tpm=500)
    never = client.post(CHAT, json=chat(max_tokens=600), headers=bearer(token))  # more than the whole minute
    assert never.status_code == 400 and "Retry-After" not in never.headers  # waiting would not help
    error = never.json()["error"]["metadata"]
    assert error["reason"] == "tpm_exceeded_by_request" and error["field"] == "max_tokens"
    assert error["tpm"] == 500 and error["requested"] > 600 and 400 < error["max_tokens_that_fit"] < 500
    ok = client.post(CHAT, json=chat(max_tokens=300), headers=bearer(token))
    assert ok.status_code == 200
    streamed = client.post(CHAT, json=chat(max_tokens=300, stream=True), headers=bearer(token))
    assert streamed.status_code == 200  # the first call gave back what it did not use
    assert b"data: [DONE]" in streamed.content
    refused = client.post(CHAT, json=chat(max_tokens=490), headers=bearer(token))  # 500 minus the two's use
    assert refused.status_code == 429 and refused.json()["error"]["metadata"]["remaining"] < 500
    assert refused.headers["Retry-After"] == "55" and refused.headers["X-RateLimit-Limit"] == "500"
    gateway.meter.flush()
    record = gateway.usage.get(never.headers["X-Generation-Id"])
    assert record["status"] == "failed" and record["error_code"] == 400 and not record.get("attempts")


def test_a_call_without_max_tokens_is_fitted_to_the_minute(client, admin, gateway, monkeypatch):
    """The output bound the gateway sets (the model's max output, 4096 here) is lowered to what the minute
    holds, rather than refusing a call the client never bounded."""
    gateway.chat.rates.clock = Clock(T0 + 5)
    token, _ = new_key(client, admin, tpm=500)
    sent = []
    adapter = type(gateway.chat.route(parse(chat())).adapter)
    complete = adapter.complete

    async def spy(self, request, endpoint):
        sent.append(request.max_tokens)
        return await complete(self, request, endpoint)

    monkeypatch.setattr(adapter, "complete", spy)
    answer = client.post(CHAT, json=chat(), headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert len(sent) == 1 and 400 < sent[0] < 500


def test_a_key_refusal_is_never_retried_nor_held_against_the_provider(client, admin, gateway, monkeypatch):
    from shared.routing.breaker import Breaker

    failures, calls = [], []
    monkeypatch.setattr(Breaker, "failure", lambda self, now=None: failures.append(self))
    adapter = type(gateway.chat.route(parse(chat())).adapter)
    complete = adapter.complete
    monkeypatch.setattr(adapter, "complete", lambda self, *a, **k: calls.append(1) or complete(self, *a, **k))
    gateway.chat.rates.clock = Clock(T0 + 5)
    token, _ = new_key(client, admin, tpm=500, rpm=20)
    for _ in range(10):
        assert client.post(CHAT, json=chat(max_tokens=600), headers=bearer(token)).status_code == 400  # tpm
    for _ in range(10):
        assert client.post(CHAT, json=chat(max_tokens=8), headers=bearer(token)).status_code == 200
    refused = client.post(CHAT, json=chat(max_tokens=8), headers=bearer(token))  # rpm
    assert refused.status_code == 429 and refused.json()["error"]["metadata"]["reason"] == "rpm"
    assert failures == [] and len(calls) == 10  # no refusal reached the provider, none was retried
    assert not KeyRateLimitedError.retryable and issubclass(KeyRateLimitedError, RateLimitedError)


def parse(body):
    import orjson

    from shared.chat.schema import parse_chat_request

    return parse_chat_request(orjson.dumps(body))


def test_keys_without_rate_limits_never_reach_the_limiter(client, keys, gateway):
    def boom(*args, **kwargs):
        raise AssertionError("the limiter was called")

    for name in ("admit", "take", "take_local", "give_back"):
        setattr(gateway.chat.rates, name, boom)
    ok = client.post(CHAT, json=chat(), headers=bearer(keys["dev"]))
    assert ok.status_code == 200 and "X-RateLimit-Limit" not in ok.headers


def test_rpm_and_tpm_together_count_each_and_report_the_one_that_refused(client, admin, gateway):
    gateway.chat.rates.clock = Clock(T0 + 5)
    token, _ = new_key(client, admin, rpm=3, tpm=1000)
    assert client.post(CHAT, json=chat(max_tokens=8), headers=bearer(token)).status_code == 200
    refused = client.post(CHAT, json=chat(max_tokens=2000), headers=bearer(token))
    assert refused.json()["error"]["metadata"]["reason"] == "tpm_exceeded_by_request"
    assert client.post(CHAT, json=chat(max_tokens=8), headers=bearer(token)).status_code == 200
    last = client.post(CHAT, json=chat(max_tokens=8), headers=bearer(token))
    assert last.status_code == 429 and last.json()["error"]["metadata"]["reason"] == "rpm"


def test_concurrent_requests_in_one_process_never_pass_rpm(client, admin, gateway):
    import httpx

    from functions.gateway.app import app

    token, _ = new_key(client, admin, rpm=25)

    async def fire():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            return await asyncio.gather(*(http.post(CHAT, json=chat(), headers=bearer(token)) for _ in range(80)))

    gateway.chat.rates.clock = Clock(T0 + 5)
    answers = asyncio.run(fire())
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 25 and statuses.count(429) == 55
