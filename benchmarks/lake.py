"""The usage lake's figures: export lag on the local stack, lake write throughput, and an analytics query
over 10 M records through the API against DuckDB running the same SQL directly on the same files.

    make bench-lake        (or: python -m benchmarks.lake --records 10000000)

1. Export lag: `python -m infra.local` (moto, its stream, the exporter child); one call at a time through the
   gateway, then the analytics API is polled until the call is counted. Reported: seconds from the answer to
   the row being queryable, p50 / p95 / max over the calls.
2. Write throughput: `Exporter.write_batch` on 1,000-record stream batches (the Lambda's batch size), into a
   local directory and into moto's S3 over HTTP; records per second of one consumer.
3. Query: N records over 30 days written as compacted days in a local lake; the API (`GET /api/v1/analytics
   ?group_by=model` on the local stack with SWITCHYARD_LAKE_URI pointing at it) against `duckdb` reading the
   same files with the same SQL, each timed warm (best of 5) and with peak RSS of the process measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from benchmarks.gateway import bench_stack

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT.parent / "shared" / "bench" / "fake_upstream.py"
DAYS = 30
FIRST = date(2026, 1, 1)


def _get(url: str, key: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def export_lag(calls: int) -> dict[str, float]:
    os.environ["SWITCHYARD_LAKE_EXPORT"] = "1"
    with bench_stack(FAKE, "0") as stack:
        base = f"http://127.0.0.1:{stack.gw_port}/api/v1"
        key, admin = ((stack.state / n).read_text().strip() for n in ("dev-key", "admin-key"))
        lags = []
        body = json.dumps({"model": "bench/model", "messages": [{"role": "user", "content": "hi"}]}).encode()
        for _ in range(calls):
            app = f"lag-{uuid.uuid4().hex[:8]}"
            req = urllib.request.Request(base + "/chat/completions", data=body, method="POST", headers={
                "Authorization": f"Bearer {key}", "Content-Type": "application/json", "X-Title": app})
            urllib.request.urlopen(req, timeout=10).read()
            answered = time.monotonic()
            while not _get(f"{base}/analytics?app={app}", admin)["data"][0]["calls"]:
                time.sleep(0.02)
            lags.append(time.monotonic() - answered)
    os.environ.pop("SWITCHYARD_LAKE_EXPORT")
    lags.sort()
    return {"p50_s": round(statistics.median(lags), 2), "p95_s": round(lags[int(len(lags) * 0.95) - 1], 2),
            "max_s": round(lags[-1], 2), "calls": calls}


def write_throughput(batches: int) -> dict[str, float]:
    from infra import moto_patches
    from shared.lake import schema
    from shared.lake.export import Exporter
    from shared.lake.store import LocalStore, S3Store
    from tests.lake_fixtures import record, stream_batch

    records = [record(i, id=f"gen-{uuid.uuid4().hex}") for i in range(1000)]
    out = {}
    local = Exporter(LocalStore(tempfile.mkdtemp(prefix="switchyard-lake-")), schema.ip_hasher(b"bench"))
    batch_list = [stream_batch(records, 1000 * n) for n in range(batches)]
    start = time.perf_counter()
    for b in batch_list:
        local.write_batch(b)
    out["local_records_per_s"] = round(batches * 1000 / (time.perf_counter() - start))

    from moto.server import ThreadedMotoServer

    from infra.local import free_port

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
    moto_patches.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "b",
                           "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1"})
        from shared.aws import client, reset_clients

        reset_clients()
        client("s3").create_bucket(Bucket="bench")
        s3 = Exporter(S3Store("bench"), schema.ip_hasher(b"bench"))
        start = time.perf_counter()
        for b in batch_list:
            s3.write_batch(b)
        out["moto_s3_records_per_s"] = round(batches * 1000 / (time.perf_counter() - start))
    finally:
        server.stop()
    return out


def build_lake(root: Path, records: int) -> None:
    """N records over DAYS days, one compacted file per day (what the hourly compaction leaves)."""
    import numpy as np
    import pyarrow as pa

    from shared.lake import parts, schema
    from shared.lake.store import LocalStore

    store = LocalStore(root)
    rng = np.random.default_rng(7)
    models = np.array(["anthropic/claude-4-haiku", "meta-llama/llama-3.2-3b-instruct", "nvidia/nemotron-70b",
                       "openai/gpt-4.1-mini", "sim/fast", "mistralai/mistral-small"] * 3 + ["google/gemini-2.5-flash"])
    labs = np.array([m.split("/")[0] for m in models])
    apps = np.array(["support-bot", "external-api", "data-pipeline", None], dtype=object)
    per_day = records // DAYS
    for d in range(DAYS):
        n = per_day + (records - per_day * DAYS if d == DAYS - 1 else 0)
        day = FIRST + timedelta(days=d)
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000
        m = rng.integers(0, len(models), n)
        failed = rng.random(n) < 0.03
        columns = {
            "id": pa.array([f"gen-{d:02d}{i:09d}" for i in range(n)]),
            "created_at": pa.array(np.sort(start + rng.integers(0, 86_400_000, n)).astype("datetime64[ms]"),
                                   pa.timestamp("ms", tz="UTC")),
            "schema_version": pa.array(np.full(n, 1, np.int16)),
            "key_id": pa.array(np.char.add("key", (rng.integers(0, 50, n)).astype(str))),
            "app": pa.array(apps[rng.integers(0, len(apps), n)]),
            "model": pa.array(models[m]), "lab": pa.array(labs[m]), "provider_name": pa.array(labs[m]),
            "status": pa.array(np.where(failed, "failed", "completed")),
            "error_type": pa.array(np.where(failed, "provider_error", None).astype(object)),
            "input_tokens": pa.array(rng.integers(10, 4000, n)), "output_tokens": pa.array(rng.integers(1, 800, n)),
            "cache_read_input_tokens": pa.array(np.zeros(n, np.int64)),
            "reasoning_output_tokens": pa.array(np.zeros(n, np.int64)),
            "usage_estimated": pa.array(np.zeros(n, bool)), "cost_usd": pa.array(rng.random(n) / 1000),
            "latency_ms": pa.array(rng.gamma(2.0, 300.0, n)), "ttft_ms": pa.array(rng.gamma(2.0, 50.0, n)),
            "streamed": pa.array(rng.random(n) < 0.5), "attempts": pa.array(np.ones(n, np.int16)),
            "heal_repairs": pa.array(np.zeros(n, np.int32)),
        }
        table = schema.conform(pa.table(columns))
        store.put(parts.day_prefix(day.isoformat()) + parts.COMPACTED, parts.parquet_bytes(table))


DIRECT = """
import duckdb, json, resource, sys, time
from shared.lake import queries
sql, _ = queries.usage(["model"], None, [])
params = {"from": sys.argv[2], "to": sys.argv[3]}
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE VIEW usage_records AS SELECT * FROM read_parquet('{sys.argv[1]}/usage/*/*.parquet')")
times = []
for _ in range(5):
    t = time.perf_counter()
    rows = con.sql(sql.replace("$from", "$from::TIMESTAMPTZ").replace("$to", "$to::TIMESTAMPTZ"), params=params).fetchall()
    times.append(time.perf_counter() - t)
print(json.dumps({"best_s": min(times), "rows": len(rows), "calls": sum(r[1] for r in rows),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def query_ratio(records: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="switchyard-lake10m-"))
    t = time.perf_counter()
    build_lake(root, records)
    built = time.perf_counter() - t
    frm, to = FIRST.isoformat() + "T00:00:00+00:00", (FIRST + timedelta(days=DAYS)).isoformat() + "T00:00:00+00:00"
    direct = json.loads(subprocess.run([sys.executable, "-c", DIRECT, str(root), frm, to], cwd=ROOT, check=True,
                                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
                        .stdout.strip().splitlines()[-1])
    os.environ["SWITCHYARD_LAKE_URI"] = str(root)
    os.environ["SWITCHYARD_LAKE_EXPORT"] = "0"
    try:
        with bench_stack(FAKE, "0") as stack:
            admin = (stack.state / "admin-key").read_text().strip()
            url = (f"http://127.0.0.1:{stack.gw_port}/api/v1/analytics?group_by=model"
                   f"&from={FIRST.isoformat()}&to={(FIRST + timedelta(days=DAYS - 1)).isoformat()}")
            times = []
            for _ in range(6):
                t = time.perf_counter()
                data = _get(url, admin)["data"]
                times.append(time.perf_counter() - t)
            status = Path(f"/proc/{stack.gateway.pid}/status").read_text()
            peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    finally:
        os.environ.pop("SWITCHYARD_LAKE_URI")
        os.environ.pop("SWITCHYARD_LAKE_EXPORT")
    api = min(times[1:])  # warm, as the direct run
    assert sum(r["calls"] for r in data) == records == direct["calls"], (sum(r["calls"] for r in data), direct)
    return {"records": records, "lake_build_s": round(built, 1), "api_best_s": round(api, 3),
            "api_first_s": round(times[0], 3), "duckdb_best_s": round(direct["best_s"], 3),
            "ratio": round(api / direct["best_s"], 2), "api_peak_rss_mb": round(peak),
            "duckdb_peak_rss_mb": round(direct["peak_rss_mb"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--lag-calls", type=int, default=20)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--only", choices=["lag", "write", "query"])
    args = parser.parse_args()
    if args.only in (None, "lag"):
        print("export lag:", export_lag(args.lag_calls), flush=True)
    if args.only in (None, "write"):
        print("write throughput:", write_throughput(args.batches), flush=True)
    if args.only in (None, "query"):
        print("query:", query_ratio(args.records), flush=True)


if __name__ == "__main__":
    main()
