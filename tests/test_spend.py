"""Spend limits hold: a call's worst case is held atomically before it runs and settled to its real cost."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.aws.dynamodb import Table
from shared.errors import InsufficientCreditsError
from shared.keys.spend import SpendGuard
from shared.metering import UsageEvent

CHAT = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}


def total_row(gateway, key_id: str) -> dict:
    return Table(gateway.settings.counters_table).get({"pk": f"key#{key_id}", "period": "total"}) or {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_concurrent_holds_never_commit_more_than_the_limit(gateway):
    _, key = gateway.keys.create("tight", limit=1.0)
    guard = gateway.chat.spend

    def hold(i: int) -> bool:
        try:
            guard.hold(key.key_id, 1.0, f"gen-{i}", 0.05)
            return True
        except InsufficientCreditsError:
            return False

    with ThreadPoolExecutor(32) as pool:
        granted = sum(pool.map(hold, range(200)))
    row = total_row(gateway, key.key_id)
    assert granted == 20 and row["committed"] == pytest.approx(1.0) and len(row["holds"]) == 20


def test_a_hold_is_settled_to_the_real_cost_by_the_usage_record(gateway):
    _, key = gateway.keys.create("settle", limit=1.0)
    gateway.chat.spend.hold(key.key_id, 1.0, "gen-a", 0.4)
    gateway.chat.spend.hold(key.key_id, 1.0, "gen-a", 0.6, already=0.4)  # raised for a pricier fallback
    assert total_row(gateway, key.key_id)["committed"] == pytest.approx(0.6)
    gateway.meter.record(UsageEvent(id="gen-a", key_id=key.key_id, created_at=time.time(), model="sim/fast",
                                    lab="sim", cost=0.01, reserved=0.6))
    assert gateway.meter.flush() == 1
    row = total_row(gateway, key.key_id)
    assert row["committed"] == pytest.approx(0.01) and row["cost"] == pytest.approx(0.01) and row["holds"] == {}


def test_a_hold_left_by_a_dead_call_is_released_when_it_would_refuse_one(gateway):
    _, key = gateway.keys.create("orphan", limit=1.0)
    SpendGuard(gateway.settings.counters_table, stale_after=0.0).hold(key.key_id, 1.0, "gen-dead", 0.9)
    fresh = SpendGuard(gateway.settings.counters_table, stale_after=3600)
    with pytest.raises(InsufficientCreditsError) as refused:
        fresh.hold(key.key_id, 1.0, "gen-next", 0.5)  # the hold is young: it stands
    assert refused.value.metadata["limit_remaining"] == pytest.approx(0.1)
    time.sleep(0.01)
    SpendGuard(gateway.settings.counters_table, stale_after=0.001).hold(key.key_id, 1.0, "gen-next", 0.5)
    row = total_row(gateway, key.key_id)
    assert set(row["holds"]) == {"gen-next"} and row["committed"] == pytest.approx(0.5)
    # The dead call's record arriving late settles as unreserved: its hold is not released twice.
    gateway.meter.record(UsageEvent(id="gen-dead", key_id=key.key_id, created_at=time.time(), model="sim/fast",
                                    lab="sim", cost=0.02, reserved=0.9))
    assert gateway.meter.flush() == 1
    assert total_row(gateway, key.key_id)["committed"] == pytest.approx(0.52)


def test_a_limit_set_later_counts_what_was_spent_without_one(client, keys, gateway):
    token, key = gateway.keys.create("grown")
    for _ in range(3):
        assert client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(token)).status_code == 200
    gateway.meter.flush()
    spent = total_row(gateway, key.key_id)["cost"]
    client.patch(f"/api/v1/keys/{key.key_id}", json={"limit": spent * 1.01}, headers=bearer(keys["admin"]))
    gateway.auth.forget(key.key_id)
    refused = client.post("/api/v1/chat/completions", json={**CHAT, "max_tokens": 16}, headers=bearer(token))
    assert refused.status_code == 402 and total_row(gateway, key.key_id)["committed"] == pytest.approx(spent)


async def _fire(app, token: str, body: dict, n: int) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        answers = await asyncio.gather(*(http.post("/api/v1/chat/completions", json=body, headers=bearer(token))
                                         for _ in range(n)))
    return [a.status_code for a in answers]


@pytest.mark.parametrize("stream", [False, True])
def test_200_concurrent_calls_on_a_limited_key_never_spend_past_the_limit(client, gateway, stream):
    from functions.gateway.app import app

    body = {**CHAT, "max_tokens": 64, "stream": stream}
    worst = (16 + 64) * 1.5e-6  # sim/fast: prompt bound 3 + 4 + 2 bytes... well under 16 tokens; 64 out
    limit = round(20 * worst, 9)
    token, key = gateway.keys.create("burst", limit=limit)
    statuses = asyncio.run(_fire(app, token, body, 200))
    gateway.meter.flush()
    row = total_row(gateway, key.key_id)
    served = statuses.count(200)
    assert set(statuses) <= {200, 402} and served >= 20  # everything whose worst case fits is served
    assert row["cost"] <= limit and row["committed"] == pytest.approx(row["cost"]) and row["holds"] == {}
    assert row["requests"] == 200  # refused calls are metered too, at no cost


def test_one_call_cannot_overshoot_a_small_limit(client, gateway):
    token, key = gateway.keys.create("small", limit=0.01)
    body = {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "many", "schema": {
        "type": "array", "items": {"type": "string"}, "minItems": 300000}}}}
    resp = client.post("/api/v1/chat/completions", json=body, headers=bearer(token))
    assert resp.status_code == 200
    usage = resp.json()["usage"]
    assert usage["completion_tokens"] <= 4096 and usage["cost"] <= 0.01  # sim/fast's max output
    assert resp.json()["choices"][0]["finish_reason"] == "length"


def test_a_spent_key_reads_its_usage_and_generations_but_cannot_call(client, gateway):
    token, key = gateway.keys.create("spent", limit=0.00002)
    ok = client.post("/api/v1/chat/completions", json={**CHAT, "max_tokens": 4}, headers=bearer(token))
    assert ok.status_code == 200
    gateway.meter.flush()
    refused = client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(token))
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["metadata"]["limit"] == 0.00002 and error["metadata"]["required"] > error["metadata"]["limit_remaining"]
    assert client.get("/api/v1/key", headers=bearer(token)).status_code == 200
    assert client.get(f"/api/v1/generation?id={ok.json()['id']}", headers=bearer(token)).status_code == 200


def test_unlimited_keys_make_no_hold(client, keys, gateway):
    calls = []
    original = gateway.chat.spend.hold
    gateway.chat.spend.hold = lambda *a, **k: calls.append(a) or original(*a, **k)
    assert client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(keys["dev"])).status_code == 200
    assert calls == []


def test_max_tokens_above_the_models_max_output_is_capped(client, keys):
    resp = client.post("/api/v1/chat/completions", headers=bearer(keys["dev"]), json={
        **CHAT, "max_tokens": 1_000_000, "response_format": {"type": "json_schema", "json_schema": {
            "name": "many", "schema": {"type": "array", "items": {"type": "string"}, "minItems": 20000}}}})
    assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] <= 4096


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=4))
def test_the_prompt_bound_is_never_below_what_is_billed(texts):
    from shared.chat.budget import prompt_bound
    from shared.chat.schema import parse_chat_request
    from shared.providers.sim import prompt_tokens as sim_bills
    from shared.tokenizer import count_messages

    request = parse_chat_request(orjson.dumps({"model": "sim/fast",
                                               "messages": [{"role": "user", "content": t} for t in texts]}))
    openai_bills = count_messages(((m.role, m.text(), m.name) for m in request.messages), "gpt-4o")
    assert prompt_bound(request, "o200k_base") >= openai_bills
    assert prompt_bound(request, "bytes") >= openai_bills  # a byte-level BPE token is at least a byte
    assert prompt_bound(request, "sim") == sim_bills(request.messages)
