"""Zero-log keys end to end: their calls → usage records → the lake (through the stream export) → the rankings'
apps. Tokens, cost, model, status and timing all the way; no app, categories, IP, user agent or fingerprint."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.lake import schema
from shared.lake.export import Exporter
from shared.lake.parts import read_day
from shared.lake.store import LocalStore
from shared.rankings.daily import RankingSettings, run_day
from tests.lake_fixtures import record, stream_batch

CHAT = "/api/v1/chat/completions"
IDENTITY = ("app", "app_title", "app_referer", "categories", "ip_hash", "prompt_fingerprint")


@pytest.fixture
def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def new_key(client, admin, **settings):
    response = client.post("/api/v1/keys", headers=admin, json={"name": "lake", **settings})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def calls(client, token, n, app):
    headers = {"Authorization": f"Bearer {token}", "X-Title": app, "HTTP-Referer": "https://my-app.example/x",
               "X-OpenRouter-Categories": "support", "User-Agent": "secret-agent/1.0"}
    ids = []
    for i in range(n):
        answer = client.post(CHAT, headers=headers, json={"model": "sim/fast" if i % 3 else "sim/chat",
                                                          "messages": [{"role": "user", "content": "the same"}]})
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["id"])
    return ids


def test_a_zero_log_key_s_calls_reach_the_lake_and_rankings_without_identity(client, admin, gateway, tmp_path):
    plain, anonymous = new_key(client, admin), new_key(client, admin, zero_log=True)
    seen, hidden = calls(client, plain, 12, "Named App"), calls(client, anonymous, 15, "Hidden App")
    gateway.meter.flush()
    records = [gateway.usage.get(i) for i in seen + hidden]
    assert all(r is not None for r in records)
    for r in records[12:]:  # the usage records: what happened, not who asked
        assert r["zero_log"] is True and r["prompt_tokens"] > 0 and r["cost"] > 0 and r["status"] == "completed"
        assert not {"app", "app_title", "app_referer", "categories", "client_ip", "user_agent",
                    "prompt_fingerprint"} & set(r)
    # the lake, as the stream consumer writes it (functions/usage_export)
    lake, out = LocalStore(tmp_path / "lake"), LocalStore(tmp_path / "out")
    result = Exporter(lake, schema.ip_hasher(b"test-pepper")).write_batch(stream_batch(records, 1))
    assert result == {"batchItemFailures": []}
    day = datetime.fromtimestamp(records[0]["created_at"], timezone.utc).strftime("%Y-%m-%d")
    rows = {r["id"]: r for r in read_day(lake, day).to_pylist()}
    assert len(rows) == 27
    for i in hidden:
        row = rows[i]
        assert all(row[c] is None for c in IDENTITY), {c: row[c] for c in IDENTITY}
        assert row["input_tokens"] > 0 and row["cost_usd"] > 0 and row["model"] in ("sim/fast", "sim/chat")
    for i in seen:  # the same calls from an ordinary key keep their attribution (so the test can fail)
        assert rows[i]["app"] == "Named App" and rows[i]["ip_hash"] and rows[i]["prompt_fingerprint"]
    # the rankings: the anonymous calls count for their models, and for no app
    run_day(day, lake, out, RankingSettings(app_min_calls=10))
    apps = {r["app"]: r for r in pq.read_table(pa.BufferReader(out.get(f"rankings/dt={day}/apps.parquet"))).to_pylist()}
    assert set(apps) == {"Named App", ""} and apps["Named App"]["calls"] == 12 and apps[""]["calls"] == 15
    models = {r["model"]: r for r in pq.read_table(pa.BufferReader(out.get(f"rankings/dt={day}/models.parquet")))
              .to_pylist()}
    assert models["sim/fast"]["calls"] + models["sim/chat"]["calls"] == 27
    assert "Hidden App" not in out.get(f"rankings/dt={day}/summary.json").decode()


def test_a_record_marked_zero_log_loses_its_identity_in_the_lake_whatever_it_holds():
    """A second lock: a record that says zero_log but carries an app or an IP (an older writer, a hand-made
    record) still reaches the lake without them."""
    marked = record(1, zero_log=True, categories=["support"], prompt_fingerprint="fp", app_referer="https://x.example")
    row = schema.row(marked, schema.ip_hasher(b"p"))
    assert all(row[c] is None for c in IDENTITY)
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"], row["model"]) == (10, 20, 0.001, "sim/fast")
    ordinary = schema.row(record(1, prompt_fingerprint="fp"), schema.ip_hasher(b"p"))
    assert ordinary["app"] == "support-bot" and ordinary["ip_hash"] and ordinary["prompt_fingerprint"] == "fp"
