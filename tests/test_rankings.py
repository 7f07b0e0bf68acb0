"""Rankings: the formula against hand-computed figures, each anti-gaming filter, byte-identical re-runs, an
empty day and a one-model day, the Prefect flow (under prefect_test_harness, against moto's S3) giving the
same files as the plain functions, and the API."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.lake import schema
from shared.lake.export import Exporter
from shared.lake.store import LocalStore
from shared.rankings import formula
from shared.rankings.daily import RankingSettings, run_day
from tests.lake_fixtures import DAY1, fixture_records, record

DAY = "2025-12-02"


def model_row(model: str, completed: int, failed: int, p95: float, price: float) -> dict:
    return {"model": model, "completed": completed, "failed": failed, "p95_latency_ms": p95,
            "cost_per_1k_tokens": price}


def test_wilson_lower_bound_matches_the_published_values():
    assert formula.wilson_lower(9, 10) == pytest.approx(0.5958, abs=1e-4)
    assert formula.wilson_lower(3, 3) == pytest.approx(0.4385, abs=1e-4)
    assert formula.wilson_lower(95, 100) == pytest.approx(0.8883, abs=1e-4)
    assert formula.wilson_lower(0, 0) == 0.0


def test_the_score_against_a_hand_computed_cohort():
    rows = [model_row("a/fast", 95, 5, 100.0, 0.01), model_row("b/slow", 100, 0, 1000.0, 0.001),
            model_row("c/middle", 90, 10, 316.227766, 0.00316227766), model_row("d/tiny", 3, 0, 10.0, 0.0001)]
    formula.score_cohort(rows, min_calls=10)
    a, b, c, d = rows
    # speed: ln-scaled between 100 (1) and 1000 (0); price between 0.001 (1) and 0.01 (0)
    assert (a["term_speed"], b["term_speed"], c["term_speed"]) == (1.0, 0.0, pytest.approx(0.5, abs=1e-6))
    assert (a["term_price"], b["term_price"], c["term_price"]) == (0.0, 1.0, pytest.approx(0.5, abs=1e-6))
    assert a["term_success"] == pytest.approx(0.888247, abs=1e-5)  # Wilson 95/100
    assert b["term_success"] == pytest.approx(0.963005, abs=1e-5)  # Wilson 100/100
    assert a["score"] == pytest.approx(0.4 * 0.888247 + 0.3, abs=1e-5)
    assert b["score"] == pytest.approx(0.4 * 0.963005 + 0.3, abs=1e-5)
    for r in (a, b, c):  # anyone can check the arithmetic from the published terms
        assert r["score"] == pytest.approx(0.4 * r["term_success"] + 0.3 * r["term_speed"] + 0.3 * r["term_price"],
                                           abs=1e-6)
    assert (b["rank"], a["rank"], c["rank"]) == (1, 2, 3)
    assert d["status"] == "insufficient_data" and d["rank"] is None and d["score"] is None  # 3 calls: not ranked


def test_three_perfect_calls_cannot_top_the_board():
    rows = [model_row("x/lucky", 3, 0, 50.0, 0.001), model_row("y/steady", 190, 10, 50.0, 0.001)]
    formula.score_cohort(rows, min_calls=3)
    assert rows[1]["rank"] == 1 and rows[0]["rank"] == 2


@pytest.fixture
def stores(tmp_path):
    lake, out = LocalStore(tmp_path / "lake"), LocalStore(tmp_path / "out")
    return lake, out, Exporter(lake, schema.ip_hasher(b"test-pepper"))


def models_of(out, day=DAY) -> dict[str, dict]:
    table = pq.read_table(pa.BufferReader(out.get(f"rankings/dt={day}/models.parquet")))
    return {r["model"]: r for r in table.to_pylist()}


def traffic(n: int, start: int, **fields) -> list[dict]:
    return [record(start + i, id=f"gen-{start + i:06d}", created_at=DAY1 + 3600 * 9 + start + i,
                   prompt_fingerprint=f"fp-{start + i}", **fields) for i in range(n)]


def test_a_flooding_source_is_capped_at_its_share_and_counted(stores):
    lake, out, exporter = stores
    normal = traffic(30, 0, client_ip="198.51.100.1")
    flood = traffic(200, 1000, client_ip="198.51.100.66")
    exporter.write_rows(normal + flood, tag="t")
    run_day(DAY, lake, out, RankingSettings(source_share=0.5, source_floor=5))
    m = models_of(out)["sim/fast"]
    # the flood keeps max(floor(0.5 · 30 / 0.5), 5) = 30 calls: half of what is counted
    assert (m["calls"], m["calls_after_filters"], m["removed_source_cap"]) == (230, 60, 170)
    assert m["total_tokens"] == 230 * 30 and m["tokens_after_filters"] == 60 * 30  # totals as sent, and as ranked
    summary = json.loads(out.get(f"rankings/dt={DAY}/summary.json"))
    assert summary["filters"]["removed_source_cap"] == 170


def test_a_lone_source_keeps_its_floor(stores):
    lake, out, exporter = stores
    exporter.write_rows(traffic(50, 0, client_ip="198.51.100.1"), tag="t")
    run_day(DAY, lake, out, RankingSettings(source_floor=20))
    m = models_of(out)["sim/fast"]
    assert (m["calls_after_filters"], m["removed_source_cap"], m["status"]) == (20, 30, "ranked")


def test_one_prompt_repeated_beyond_the_threshold_counts_once_an_hour(stores):
    lake, out, exporter = stores
    same = [dict(r, prompt_fingerprint="the-same") for r in traffic(40, 0, client_ip="198.51.100.1")]
    exporter.write_rows(same + traffic(12, 500, client_ip="198.51.100.2"), tag="t")
    run_day(DAY, lake, out, RankingSettings(repeat_threshold=10, source_floor=1000))
    m = models_of(out)["sim/fast"]
    assert (m["removed_repeated_prompt"], m["calls_after_filters"]) == (39, 13)


def test_a_key_sending_almost_everything_to_one_model_is_flagged_not_removed(stores):
    lake, out, exporter = stores
    exporter.write_rows(traffic(120, 0, key_id="cccccccccccc", app="bot-farm"), tag="t")
    run_day(DAY, lake, out, RankingSettings(concentration_min_calls=100, source_floor=1000))
    summary = json.loads(out.get(f"rankings/dt={DAY}/summary.json"))
    assert summary["filters"]["flagged_keys"] == 1 and summary["filters"]["flagged_apps"] == 1  # a count: apps are not named
    assert models_of(out)["sim/fast"]["calls_after_filters"] == 120


def test_labs_apps_and_client_errors(stores):
    lake, out, exporter = stores
    exporter.write_rows(fixture_records(), tag="t")
    run_day(DAY, lake, out, RankingSettings(min_calls=2, app_min_calls=1))
    models = models_of(out)
    llama = models["meta-llama/llama-3.2-3b-instruct"]
    assert (llama["completed"], llama["failed"]) == (2, 0)  # a context_length_exceeded (400) is the client's
    labs = pq.read_table(pa.BufferReader(out.get(f"rankings/dt={DAY}/labs.parquet"))).to_pylist()
    assert {r["lab"] for r in labs} == {"sim", "meta-llama"}
    assert sum(r["token_share"] for r in labs) == pytest.approx(1.0)
    apps = pq.read_table(pa.BufferReader(out.get(f"rankings/dt={DAY}/apps.parquet"))).to_pylist()
    assert [(a["rank"], a["app"]) for a in apps] == [(1, "data-pipeline"), (2, "support-bot")]


def test_a_rerun_gives_byte_identical_files_and_a_manifest_that_checks_them(stores):
    import hashlib

    lake, out, exporter = stores
    exporter.write_rows(fixture_records() + traffic(40, 0), tag="t")
    first = run_day(DAY, lake, out)
    before = {k: out.get(k) for k in first["files"]}
    run_day(DAY, lake, out)
    assert {k: out.get(k) for k in first["files"]} == before
    manifest = json.loads(out.get(f"rankings/dt={DAY}/manifest.json"))
    assert manifest["as_of"] == "2025-12-03T00:00:00Z"
    for key, meta in manifest["files"].items():
        assert hashlib.sha256(out.get(key)).hexdigest() == meta["sha256"]
    assert out.get("rankings/latest/models.parquet") == out.get(f"rankings/dt={DAY}/models.parquet")


def test_money_is_summed_exactly_so_the_order_of_duckdbs_threads_cannot_change_a_file():
    import duckdb

    from shared.rankings import sql

    con = duckdb.connect()
    con.execute("CREATE TABLE usage_records AS SELECT 0.1::DOUBLE AS cost_usd FROM range(10)")
    assert con.execute("SELECT sum(cost_usd) FROM usage_records").fetchone()[0] != 1.0  # a float sum drifts
    assert con.execute(f"SELECT {sql.COST} FROM usage_records").fetchone()[0] == 1.0


def test_an_empty_day_and_a_one_model_day(stores):
    lake, out, exporter = stores
    result = run_day("2025-11-30", lake, out)
    assert (result["models"], result["ranked"]) == (0, 0)
    assert json.loads(out.get("rankings/dt=2025-11-30/summary.json"))["calls"] == 0
    exporter.write_rows(traffic(15, 0), tag="t")
    run_day(DAY, lake, out)
    (only,) = models_of(out).values()
    assert (only["rank"], only["term_speed"], only["term_price"]) == (1, 1.0, 1.0)


def test_week_over_week_change(stores):
    lake, out, exporter = stores
    week_later = [dict(r, id=r["id"] + "-w", created_at=r["created_at"] + 7 * 86400, day=None)
                  for r in traffic(30, 0)]
    exporter.write_rows(traffic(30, 0) + week_later, tag="t")
    run_day(DAY, lake, out)
    run_day("2025-12-09", lake, out)
    m = models_of(out, "2025-12-09")["sim/fast"]
    assert m["rank_change_wow"] == 0 and m["score_change_wow"] == 0.0


def test_the_published_dataset_loads_with_datasets(stores, tmp_path):
    import datasets

    lake, out, exporter = stores
    exporter.write_rows(fixture_records() + traffic(20, 0), tag="t")
    run_day(DAY, lake, out)
    card = out.get("datasets/rankings-daily/README.md").decode()
    assert "license: cc-by-4.0" in card
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "out/datasets/rankings-daily/dt=*/data.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 2 and set(ds["model_permaslug"]) == {"sim/fast", "meta-llama/llama-3.2-3b-instruct"}
    for name in ("models", "labs", "apps"):
        path = tmp_path / f"out/rankings/dt={DAY}/{name}.parquet"
        assert datasets.load_dataset("parquet", data_files=str(path), split="train",
                                     cache_dir=str(tmp_path / "hf")).num_rows >= 1


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def test_the_prefect_flow_publishes_what_the_plain_functions_do_and_backfills(prefect_harness, aws):
    from pipelines.rankings import backfill, rankings
    from shared.lake.store import S3Store

    bucket = aws["DataBucket"]
    exporter = Exporter(S3Store(bucket), schema.ip_hasher(b"test-pepper"))
    exporter.write_rows(fixture_records() + traffic(30, 0), tag="t")
    steps: list[str] = []
    result = rankings(DAY, lake=f"s3://{bucket}", out=f"s3://{bucket}/flow", on_step=steps.append)
    assert result["ranked"] >= 1
    assert steps == ["aggregate", "score", "build", "publish"]  # what the CLI's progress bar counts
    run_day(DAY, S3Store(bucket), S3Store(bucket, "plain"), RankingSettings.from_env())
    for key in result["files"]:
        assert S3Store(bucket, "flow").get(key) == S3Store(bucket, "plain").get(key), key
    done: list[str] = []
    days = backfill("2025-12-01", "2025-12-03", lake=f"s3://{bucket}", out=f"s3://{bucket}/backfill",
                    on_day=done.append)
    assert [d["date"] for d in days] == ["2025-12-01", "2025-12-02", "2025-12-03"] == done
    assert S3Store(bucket, "backfill").get(f"rankings/dt={DAY}/models.parquet") == \
        S3Store(bucket, "plain").get(f"rankings/dt={DAY}/models.parquet")


@pytest.fixture
def published(client, aws, keys):
    from shared.lake.store import S3Store

    Exporter(S3Store(aws["DataBucket"]), schema.ip_hasher(b"test-pepper")).write_rows(
        fixture_records() + traffic(30, 0), tag="t")
    r = client.post("/api/v1/rankings/runs", json={"date": DAY}, headers={"Authorization": f"Bearer {keys['admin']}"})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_run_through_the_api_then_the_public_rankings(client, published, keys):
    assert published["status"] == "completed" and published["date"] == DAY and published["id"].startswith("run-")
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    followed = client.get(f"/api/v1/rankings/runs/{published['id']}", headers=admin).json()["data"]
    assert followed == published
    assert client.get("/api/v1/rankings/runs/run-0000000000000000", headers=admin).status_code == 404
    assert client.get(f"/api/v1/rankings/runs/{published['id']}").status_code == 401
    r = client.get(f"/api/v1/rankings?date={DAY}")  # public: no key
    assert r.status_code == 200
    body = r.json()
    assert body["meta"]["formula"]["version"] == formula.VERSION and body["meta"]["as_of"] == "2025-12-03T00:00:00Z"
    top = body["data"][0]
    assert top["rank"] == 1 and top["score"] == pytest.approx(
        0.4 * top["term_success"] + 0.3 * top["term_speed"] + 0.3 * top["term_price"], abs=1e-6)
    assert client.get("/api/v1/rankings").json()["data"] == body["data"]  # latest by default
    assert {r["lab"] for r in client.get("/api/v1/rankings?by=lab").json()["data"]} == {"sim", "meta-llama"}
    apps = client.get("/api/v1/rankings?by=app").json()["data"]
    # support-bot's 34 calls name it; data-pipeline's 4 (under 10) go into the unnamed row with the rest
    assert [(a["rank"], a["app"], a["calls"]) for a in apps] == [(1, "support-bot", 34), (None, "", 4)]


@pytest.mark.parametrize("query, status", [("by=colour", 400), ("date=yesterday", 400), ("when=now", 400),
                                           ("date=2020-01-01", 404)])
def test_rankings_refuse_bad_parameters(client, published, query, status):
    r = client.get(f"/api/v1/rankings?{query}")
    assert r.status_code == status and r.json()["error"]["code"] == status


def test_rankings_daily_in_openrouters_shape(client, published, monkeypatch):
    from functions.gateway.routes import rankings as route

    monkeypatch.setattr(route, "DAILY_TOP", 1)
    body = client.get(f"/api/v1/datasets/rankings-daily?start_date=2025-12-01&end_date={DAY}").json()
    assert body["meta"] == {"as_of": "2025-12-03T00:00:00Z", "start_date": "2025-12-01", "end_date": DAY,
                            "version": "v1"}
    assert [(r["date"], r["model_permaslug"]) for r in body["data"]] == [
        (DAY, "meta-llama/llama-3.2-3b-instruct"), (DAY, "other")]
    # llama: 2 × (1000 + 50); the rest (sim/fast): 34 calls of 10 + 20, and the cancelled one's 10 + 2
    assert body["data"][0]["total_tokens"] == "2100" and body["data"][1]["total_tokens"] == str(34 * 30 + 12)
    assert client.get("/api/v1/datasets/rankings-daily?start_date=2025-12-05&end_date=2025-12-01").status_code == 400


def test_running_rankings_needs_a_management_key(client, keys):
    assert client.post("/api/v1/rankings/runs", json={"date": DAY}).status_code == 401
    dev = {"Authorization": f"Bearer {keys['dev']}"}
    assert client.post("/api/v1/rankings/runs", json={"date": DAY}, headers=dev).status_code == 403
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert client.post("/api/v1/rankings/runs", json={"date": "2999-01-01"}, headers=admin).status_code == 400
    assert client.post("/api/v1/rankings/runs", json={"day": DAY}, headers=admin).status_code == 400
    assert client.post("/api/v1/rankings/runs", json={"date": "0001-01-01"}, headers=admin).status_code == 400


def test_on_aws_a_run_is_handed_to_the_rankings_function(client, keys, monkeypatch):
    from functions.gateway.routes import rankings as route

    sent = []
    monkeypatch.setenv("SWITCHYARD_RANKINGS_FUNCTION", "switchyard-RankingsFunction")
    monkeypatch.setattr(route, "_invoke", lambda function, run: sent.append((function, run)))
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    r = client.post("/api/v1/rankings/runs", json={"date": DAY}, headers=admin)
    assert r.status_code == 202 and r.json()["data"]["status"] == "queued"
    ((function, run),) = sent
    assert function == "switchyard-RankingsFunction" and run["id"] == r.json()["data"]["id"]
    assert client.get(f"/api/v1/rankings/runs/{run['id']}", headers=admin).json()["data"]["status"] == "queued"
    from functions.rankings.handler import handler

    done = handler({"run": run})  # what RankingsFunction does with it
    assert done["status"] == "completed"
    assert client.get(f"/api/v1/rankings/runs/{run['id']}", headers=admin).json()["data"]["status"] == "completed"


def test_one_prompt_from_many_sources_is_caught_too(stores):
    lake, out, exporter = stores
    spread = [dict(r, prompt_fingerprint="fixed", client_ip=f"198.51.100.{i}") for i, r in enumerate(traffic(40, 0))]
    exporter.write_rows(spread + traffic(12, 500, client_ip="203.0.113.9"), tag="t")
    run_day(DAY, lake, out, RankingSettings(repeat_threshold=10))
    m = models_of(out)["sim/fast"]
    assert (m["removed_repeated_prompt"], m["calls_after_filters"]) == (39, 13)
