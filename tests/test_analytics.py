"""The analytics API over the lake: every group and filter against hand-computed figures, exports that pandas
and `datasets` read, OpenRouter's /activity and /credits, authorization, and 400s for bad parameters.
The lake is the moto stack's data bucket, written by the exporter's own code."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest

from shared.lake import schema
from shared.lake.export import Exporter
from shared.lake.store import S3Store
from tests.lake_fixtures import fixture_records

A, B = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
RANGE = "from=2025-12-01&to=2025-12-03"


@pytest.fixture
def lake(aws, gateway):
    exporter = Exporter(S3Store(aws["DataBucket"]), schema.ip_hasher(b"test-pepper"))
    exporter.write_rows(fixture_records(), tag="fixture")
    return exporter


@pytest.fixture
def admin(keys, lake) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys['admin']}"}


def rows(client, headers, query: str) -> list[dict]:
    r = client.get(f"/api/v1/analytics?{RANGE}&{query}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def by(rows_: list[dict], field: str) -> dict:
    return {r[field]: r for r in rows_}


def test_totals_over_the_range(client, admin):
    (total,) = rows(client, admin, "")
    assert (total["calls"], total["completed"], total["failed"], total["cancelled"]) == (11, 7, 3, 1)
    assert total["prompt_tokens"] == 4 * 10 + 2 * 1000 + 10 + 5
    assert total["completion_tokens"] == 4 * 20 + 2 * 50 + 2 + 5
    assert total["reasoning_tokens"] == 4 and total["total_tokens"] == 2055 + 187
    assert total["cost"] == pytest.approx(4 * 0.001 + 2 * 0.01 + 0.0001 + 0.1)
    assert total["success_rate"] == pytest.approx(7 / 10)


def test_by_model_with_latency_percentiles_and_view_errors(client, admin):
    models = by(rows(client, admin, "group_by=model"), "model")
    assert set(models) == {"sim/fast", "meta-llama/llama-3.2-3b-instruct", "anthropic/claude-4-haiku"}
    fast = models["sim/fast"]
    assert (fast["calls"], fast["completed"], fast["cancelled"]) == (5, 4, 1)
    # completed latencies 10, 20, 30, 40 (the cancelled call's 7 is not among them); linear interpolation
    assert (fast["latency_ms_p50"], fast["latency_ms_p95"], fast["latency_ms_p99"]) == (25.0, 38.5, 39.7)
    assert fast["ttft_ms_p50"] == 5.0 and fast["success_rate"] == 1.0
    llama = models["meta-llama/llama-3.2-3b-instruct"]
    assert (llama["latency_ms_p50"], llama["success_rate"]) == (200.0, pytest.approx(2 / 3))
    assert llama["top_errors"] == [{"error_type": "context_length_exceeded", "count": 1}]
    haiku = models["anthropic/claude-4-haiku"]
    assert haiku["top_errors"] == [{"error_type": "provider_error", "count": 1},
                                   {"error_type": "rate_limit_exceeded", "count": 1}]


@pytest.mark.parametrize("group, expected", [
    ("lab", {"sim": 5, "meta-llama": 3, "anthropic": 3}),
    ("provider", {"sim": 5, "together": 3, "anthropic": 3}),
    ("app", {"support-bot": 4, "data-pipeline": 4, "external-api": 3}),
    ("key", {A: 8, B: 3}),
    ("status", {"completed": 7, "failed": 3, "cancelled": 1}),
    ("error_type", {"": 8, "context_length_exceeded": 1, "provider_error": 1, "rate_limit_exceeded": 1}),
    ("category", {"chat-bot": 4, "support": 4, "batch": 3, "": 4}),
])
def test_every_dimension(client, admin, group, expected):
    assert {k: r["calls"] for k, r in by(rows(client, admin, f"group_by={group}"), group).items()} == expected


def test_cost_share_by_lab_and_two_dimensions_at_once(client, admin):
    labs = by(rows(client, admin, "group_by=lab"), "lab")
    assert labs["anthropic"]["cost"] == pytest.approx(0.1) and labs["meta-llama"]["cost"] == pytest.approx(0.02)
    pairs = {(r["app"], r["model"]): r["calls"] for r in rows(client, admin, "group_by=app,model")}
    assert pairs == {("support-bot", "sim/fast"): 4, ("data-pipeline", "meta-llama/llama-3.2-3b-instruct"): 3,
                     ("data-pipeline", "sim/fast"): 1, ("external-api", "anthropic/claude-4-haiku"): 3}


def test_granularity_buckets_by_hour_and_day(client, admin):
    days = {r["period"]: r["calls"] for r in rows(client, admin, "granularity=day")}
    assert days == {"2025-12-02T00:00:00Z": 8, "2025-12-03T00:00:00Z": 3}
    hours = {r["period"]: r["calls"] for r in rows(client, admin, "granularity=hour&model=meta-llama/llama-3.2-3b-instruct")}
    assert hours == {"2025-12-02T10:00:00Z": 2, "2025-12-02T11:00:00Z": 1}


@pytest.mark.parametrize("query, calls", [
    ("model=sim/fast", 5), ("lab=anthropic", 3), ("provider=together", 3), ("app=support-bot", 4),
    (f"key={B}", 3), ("status=failed", 3), ("error_type=provider_error", 1), ("category=batch", 3),
    ("app=data-pipeline&status=completed", 2),
])
def test_filters(client, admin, query, calls):
    (total,) = rows(client, admin, query)
    assert total["calls"] == calls


def test_time_range_is_from_inclusive_to_exclusive_and_a_bare_to_date_includes_its_day(client, admin):
    r = client.get("/api/v1/analytics?from=2025-12-02T10:00:00Z&to=2025-12-02T10:00:02Z", headers=admin)
    assert r.json()["data"][0]["calls"] == 2  # gen-0000 and gen-0001 at 10:00:00 and 10:00:01
    r = client.get("/api/v1/analytics?from=2025-12-02&to=2025-12-02", headers=admin)
    assert r.json()["data"][0]["calls"] == 8


def test_an_inference_key_sees_only_its_own_calls_in_every_view(client, gateway, lake, keys):
    token, key = gateway.keys.create("b")
    lake.write_rows([{**r, "id": r["id"] + "-b", "key_id": key.key_id} for r in fixture_records()
                     if r["key_id"] == B], tag="b")  # new calls (ids are unique: the lake keeps one row per id)
    mine = {"Authorization": f"Bearer {token}"}
    (total,) = rows(client, mine, "")
    assert total["calls"] == 3
    assert set(by(rows(client, mine, "group_by=key"), "key")) == {key.key_id}
    assert client.get(f"/api/v1/analytics?{RANGE}&key={A}", headers=mine).status_code == 403
    csv = client.get(f"/api/v1/analytics/export?{RANGE}&group_by=key&format=csv", headers=mine).text
    assert A not in csv and B not in csv and key.key_id in csv
    assert client.get(f"/api/v1/activity?api_key_hash={A}", headers=mine).status_code == 403
    dev = {"Authorization": f"Bearer {keys['dev']}"}
    assert rows(client, dev, "")[0]["calls"] == 0  # a key with no calls sees nothing of anyone's


def test_exports_carry_the_same_rows_and_load_in_pandas_and_datasets(client, admin, tmp_path):
    import datasets
    import pandas as pd

    expected = rows(client, admin, "group_by=model,app")
    parquet = client.get(f"/api/v1/analytics/export?{RANGE}&group_by=model,app&format=parquet", headers=admin)
    assert parquet.status_code == 200 and parquet.headers["content-type"] == "application/vnd.apache.parquet"
    path = tmp_path / "usage.parquet"
    path.write_bytes(parquet.content)
    frame = pd.read_parquet(path)
    assert len(frame) == len(expected) == 4
    assert frame["calls"].sum() == 11 and list(frame["model"]) == [r["model"] for r in expected]
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 4 and sum(ds["calls"]) == 11
    csv = client.get(f"/api/v1/analytics/export?{RANGE}&group_by=model,app", headers=admin)
    assert csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(csv.text))
    assert len(table) == 4 and table["prompt_tokens"].sum() == 2055
    assert json.loads(table.loc[table["model"] == "meta-llama/llama-3.2-3b-instruct", "top_errors"].iloc[0]) == [
        {"error_type": "context_length_exceeded", "count": 1}]


def test_activity_is_openrouters_shape_for_the_last_30_completed_days(client, gateway, aws, keys):
    today = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0).timestamp()
    recent = [{**r, "created_at": today - 86400 * (2 if r["key_id"] == B else 1), "day": None}
              for r in fixture_records()]
    recent.append({**recent[0], "id": "gen-today", "created_at": today})  # today is not a completed day
    Exporter(S3Store(aws["DataBucket"]), schema.ip_hasher(b"p")).write_rows(recent, tag="recent")
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    data = client.get("/api/v1/activity", headers=admin).json()["data"]
    assert sum(r["requests"] for r in data) == 11
    row = next(r for r in data if r["model"] == "meta-llama/llama-3.2-3b-instruct")
    assert set(row) == {"date", "model", "model_permaslug", "endpoint_id", "provider_name", "usage",
                        "byok_usage_inference", "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens"}
    assert (row["requests"], row["prompt_tokens"], row["reasoning_tokens"], row["provider_name"]) == (3, 2000, 4,
                                                                                                      "together")
    day = data[-1]["date"]
    one = client.get(f"/api/v1/activity?date={day}", headers=admin).json()["data"]
    assert {r["date"] for r in one} == {day}
    assert client.get("/api/v1/activity?date=1999-01-01", headers=admin).status_code == 400
    assert sum(r["requests"] for r in client.get(f"/api/v1/activity?api_key_hash={B}", headers=admin)
               .json()["data"]) == 3


def test_credits(client, gateway, keys):
    token, key = gateway.keys.create("limited", limit=5.0)
    assert client.get("/api/v1/credits", headers={"Authorization": f"Bearer {token}"}).json() == {
        "data": {"total_credits": 5.0, "total_usage": 0.0}}
    managed = client.get("/api/v1/credits", headers={"Authorization": f"Bearer {keys['admin']}"}).json()["data"]
    assert managed == {"total_credits": 5.0, "total_usage": 0.0}
    assert client.get("/api/v1/credits").status_code == 401


@pytest.mark.parametrize("query", [
    "group_by=colour", "group_by=model,model", "granularity=minute", "from=yesterday", "to=2025-13-01",
    "from=2025-12-03&to=2025-12-01", "from=2020-01-01&to=2025-12-01", "limit=0", "limit=abc", "status=odd",
    "colour=red", "model=a&model=b", "granularity=hour&from=2025-01-01&to=2025-12-01",
])
def test_bad_parameters_are_400_in_the_error_shape(client, admin, query):
    r = client.get(f"/api/v1/analytics?{query}", headers=admin)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == 400 and body["error"]["metadata"]["generation_id"]


def test_export_refuses_an_unknown_format(client, admin):
    r = client.get(f"/api/v1/analytics/export?{RANGE}&format=xlsx", headers=admin)
    assert r.status_code == 400 and r.json()["error"]["metadata"]["parameter"] == "format"


def test_analytics_need_a_key(client, lake):
    assert client.get("/api/v1/analytics").status_code == 401
    assert client.get("/api/v1/analytics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_an_export_has_the_same_columns_whatever_the_data(client, admin):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def columns(query: str) -> pa.Schema:
        r = client.get(f"/api/v1/analytics/export?format=parquet&group_by=model&{query}", headers=admin)
        return pq.read_schema(pa.BufferReader(r.content))

    full, empty = columns(RANGE), columns("from=2024-01-01&to=2024-01-02")  # rows, and none
    assert full == empty and full.field("success_rate").type == pa.float64()
    assert full.field("top_errors").type == pa.list_(pa.struct([("error_type", pa.string()), ("count", pa.int64())]))
