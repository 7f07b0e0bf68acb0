"""The daily rankings' figures (issue 11, point 8): one day of N lake records (default 10 M), generated in the
lake's schema as one compacted file.

    make bench-rankings        (or: python -m benchmarks.rankings --records 10000000)

1. Aggregation: `daily.aggregate(LakeQuery(store), day, settings)` against DuckDB running the same three
   statements (sql.MODELS, APPS, CONCENTRATION, same parameters) on a view straight over
   `read_parquet('<lake>/usage/dt=<day>/*.parquet')`. Each in its own process, one warm-up then best of 3;
   peak RSS from getrusage in that process. Both must give the same rows, and the models' calls must add up
   to the records generated.
2. The whole flow: `python -m pipelines.rankings --date D --lake DIR --out DIR2` as a subprocess (Prefect
   starts its temporary server, whose start-up time and memory are reported apart), and `run_day` without
   Prefect in a subprocess of its own.
3. Athena: the bytes each statement must scan (the compressed size of the column chunks it reads, from the
   Parquet footer; the columns are those DuckDB's plan projects), scaled to 1 B records, at $5 per TB.

The traffic has real work for the anti-gaming filters: a few thousand sources with a skewed share each, one
source flooding one model (a fifth of the day, one key, one app, a few prompts over and over), ~5 % of rows
without an IP (the key stands in), prompt fingerprints mostly distinct with a pool of common ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAY = "2026-12-01"
MODELS = ["anthropic/claude-4-haiku", "meta-llama/llama-3.2-3b-instruct", "nvidia/nemotron-70b",
          "openai/gpt-4.1-mini", "sim/fast", "mistralai/mistral-small", "google/gemini-2.5-flash"]
FLOODED = "nvidia/nemotron-70b"
SOURCES = 3000
KEYS = 200
ATHENA_USD_PER_TB = 5.0
ATHENA_SCAN_GB_PER_S = 1.0  # an assumption, not a measurement (see the README)


def _hex(rng, n: int):
    """n random 32-character hex strings, as a numpy bytes array (no Python string per row)."""
    import numpy as np

    lut = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
    return lut[rng.integers(0, 256, (n, 16), dtype=np.uint8)].view("S32").ravel()


def build_day(root: Path, records: int, day: str = DAY) -> dict[str, int]:
    """N records of one day as the day's compacted file (what the hourly compaction leaves)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from shared.lake import parts, schema
    from shared.lake.store import LocalStore

    rng = np.random.default_rng(11)
    n = records
    flood = rng.random(n) < 0.2
    no_ip = ~flood & (rng.random(n) < 0.05)
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000

    models = np.array(MODELS)
    m = np.where(flood, MODELS.index(FLOODED), rng.integers(0, len(MODELS), n))
    source_pool = _hex(rng, SOURCES + 1)  # the last one floods
    source = np.where(flood, SOURCES, (SOURCES * rng.random(n) ** 3).astype(np.int64))  # skewed: a few large
    key = np.where(flood, KEYS, (source * 7 + rng.integers(0, 3, n)) % KEYS)  # one to three keys a source
    apps = np.array(["support-bot", "external-api", "data-pipeline", "ide-plugin", "", "bulk-eval"])
    app = np.where(flood, len(apps) - 1, rng.integers(0, len(apps) - 1, n))

    common = _hex(rng, 520)  # 500 common prompts, 20 the flooding source cycles through
    kind = rng.random(n)
    fingerprint = _hex(rng, n)
    shared_prompt = ~flood & (kind < 0.08)
    fingerprint[shared_prompt] = common[rng.integers(0, 500, int(shared_prompt.sum()))]
    fingerprint[flood] = common[500 + rng.integers(0, 20, int(flood.sum()))]
    no_fingerprint = ~flood & (kind > 0.98)  # written before fingerprints were recorded

    failed = rng.random(n) < 0.03
    code = np.where(rng.random(n) < 0.7, 500, np.where(rng.random(n) < 0.5, 429, 400))
    ids = pc.binary_join_element_wise("gen-", pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), 10, "0"),
                                      "")
    columns = {
        "id": ids,
        "created_at": pa.array(np.sort(start + rng.integers(0, 86_400_000, n)).astype("datetime64[ms]"),
                               pa.timestamp("ms", tz="UTC")),
        "schema_version": pa.array(np.full(n, 1, np.int16)),
        "key_id": pc.binary_join_element_wise("key", pa.array(key).cast(pa.string()), ""),
        "app": pa.array(apps[app], mask=apps[app] == ""),
        "operation_name": pa.array(np.full(n, "chat")),
        "model": pa.array(models[m]), "request_model": pa.array(models[m]),
        "lab": pa.array(np.array([x.split("/")[0] for x in MODELS])[m]),
        "provider_name": pa.array(np.array([x.split("/")[0] for x in MODELS])[m]),
        "status": pa.array(np.where(failed, "failed", "completed")),
        "error_code": pa.array(code.astype(np.int32), mask=~failed),
        "error_type": pa.array(np.where(failed, "provider_error", None).astype(object)),
        "input_tokens": pa.array(rng.integers(10, 4000, n)),
        "output_tokens": pa.array(rng.integers(1, 800, n)),
        "cache_read_input_tokens": pa.array(np.zeros(n, np.int64)),
        "reasoning_output_tokens": pa.array(np.zeros(n, np.int64)),
        "usage_estimated": pa.array(np.zeros(n, bool)),
        "cost_usd": pa.array(np.round(rng.random(n) / 1000, 12)),  # the lake rounds money to 12 decimals
        "latency_ms": pa.array(rng.gamma(2.0, 300.0, n)), "ttft_ms": pa.array(rng.gamma(2.0, 50.0, n)),
        "streamed": pa.array(rng.random(n) < 0.5), "attempts": pa.array(np.ones(n, np.int16)),
        "heal_repairs": pa.array(np.zeros(n, np.int32)),
        "ip_hash": pa.array(source_pool[source], type=pa.binary(), mask=no_ip).cast(pa.string()),
        "prompt_fingerprint": pa.array(fingerprint, type=pa.binary(), mask=no_fingerprint).cast(pa.string()),
    }
    table = schema.conform(pa.table(columns))
    LocalStore(root).put(parts.day_prefix(day) + parts.COMPACTED, parts.parquet_bytes(table))
    return {"flood": int(flood.sum()), "no_ip": int(no_ip.sum()), "no_fingerprint": int(no_fingerprint.sum())}


# The flow's aggregation and DuckDB direct, each in a child: argv = lake, day, runs; prints one JSON line.
_PARAMS = """
from datetime import datetime, timedelta, timezone
from shared.rankings.daily import RankingSettings
s = RankingSettings()
start = datetime.fromisoformat(sys.argv[2]).replace(tzinfo=timezone.utc)
end = start + timedelta(days=1)
def report(times, rows):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "rows": rows, "peak_rss_mb": rss}, default=float))
"""
FLOW_AGGREGATE = "import json, resource, sys, time\n" + _PARAMS + """
from shared.lake.query import LakeQuery
from shared.lake.store import LocalStore
from shared.rankings import daily
engine = LakeQuery(LocalStore(sys.argv[1]))
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    agg = daily.aggregate(engine, sys.argv[2], s)
    times.append(time.perf_counter() - t)
rows = [[tuple(r.values()) for r in agg.models], [tuple(r.values()) for r in agg.apps],
        [tuple(r.values()) for r in agg.flags]]
report(times, rows)
"""
DIRECT = "import json, resource, sys, time\n" + _PARAMS + """
import duckdb
from shared.rankings import sql
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
files = f"{sys.argv[1]}/usage/dt={sys.argv[2]}/*.parquet"
con.execute(f"CREATE VIEW usage_records AS SELECT * FROM read_parquet('{files}')")
statements = [
    (sql.MODELS, {"from": start, "to": end, "share": s.source_share, "floor": s.source_floor,
                  "repeat": s.repeat_threshold}),
    (sql.APPS, {"from": start, "to": end}),
    (sql.CONCENTRATION, {"from": start, "to": end, "min_calls": s.concentration_min_calls,
                         "concentration": s.concentration_share}),
]
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    rows = [con.execute(q, p).fetchall() for q, p in statements]
    times.append(time.perf_counter() - t)
report(times, rows)
"""
RUN_DAY = "import json, resource, sys, time\n" + _PARAMS + """
from shared.lake.store import LocalStore
from shared.rankings import daily
t = time.perf_counter()
result = daily.run_day(sys.argv[2], LocalStore(sys.argv[1]), LocalStore(sys.argv[3]), s)
print(json.dumps({"run_day_s": time.perf_counter() - t, "models": result["models"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _child(code: str, *args: str) -> dict:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, check=True, capture_output=True,
                         text=True, env=_env())
    result = json.loads(out.stdout.strip().split("\n")[-1])
    result["process_s"] = time.perf_counter() - t
    return result


def _rounded(rows: list) -> list:
    """Rows with floats to 10 significant digits (a float sum's last bits follow its threads' order)."""
    return [[[float(f"{v:.10g}") if isinstance(v, float) else v for v in r] for r in part] for part in rows]


def aggregation(root: Path, records: int, runs: int) -> dict:
    """The flow's aggregate against DuckDB direct, alternated, two processes each (best of the warm runs)."""
    flow_runs, direct_runs = [], []
    for _ in range(2):
        flow_runs.append(_child(FLOW_AGGREGATE, str(root), DAY, str(runs + 1)))
        direct_runs.append(_child(DIRECT, str(root), DAY, str(runs + 1)))
    flow, direct = flow_runs[-1], direct_runs[-1]
    assert _rounded(flow["rows"]) == _rounded(direct["rows"]), "the flow's aggregate and DuckDB's disagree"
    models = flow["rows"][0]
    calls = sum(r[2] for r in models)  # MODELS: model, lab, calls, …
    assert calls == records, (calls, records)
    flow_best = min(t for r in flow_runs for t in r["times"][1:])
    direct_best = min(t for r in direct_runs for t in r["times"][1:])
    return {
        "flow_best_s": round(flow_best, 3), "flow_first_s": round(flow_runs[0]["times"][0], 3),
        "direct_best_s": round(direct_best, 3), "direct_first_s": round(direct_runs[0]["times"][0], 3),
        "ratio": round(flow_best / direct_best, 2),
        "flow_peak_rss_mb": round(max(r["peak_rss_mb"] for r in flow_runs)),
        "direct_peak_rss_mb": round(max(r["peak_rss_mb"] for r in direct_runs)),
        "calls": calls, "models": len(models),
        "removed_source_cap": sum(r[7] for r in models), "removed_repeated_prompt": sum(r[8] for r in models),
        "calls_after_filters": sum(r[6] for r in models), "flags": len(flow["rows"][2]),
        "all_times": {"flow": [r["times"] for r in flow_runs], "direct": [r["times"] for r in direct_runs]},
    }


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out.extend(kids)
                todo.extend(kids)
        except OSError:
            pass
    return out


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return None


def whole_flow(root: Path) -> dict:
    """`python -m pipelines.rankings` with Prefect's temporary server: wall time split by its log lines, peak
    memory of the flow's process and of the server's (sampled from /proc every 50 ms); then `run_day`."""
    out = Path(tempfile.mkdtemp(prefix="switchyard-rankings-out-"))
    home = Path(tempfile.mkdtemp(prefix="switchyard-prefect-home-"))
    env = {**_env(), "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.rankings", "--date", DAY, "--lake", str(root),
                             "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    patterns = {"server_starting": "Starting temporary server", "flow_started": "Beginning flow run",
                "aggregated": "Task run 'aggregate", "flow_finished": "Flow run .* - Finished in state",
                "server_stopping": "Stopping temporary server"}
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            for mark, pattern in patterns.items():
                if mark not in marks and re.search(pattern, line):
                    marks[mark] = time.perf_counter() - t0

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    flow_peak, server_peak = 0.0, 0.0
    while proc.poll() is None:
        flow_peak = max(flow_peak, _hwm_mb(proc.pid) or 0)
        server_peak = max([server_peak] + [_hwm_mb(p) or 0 for p in _descendants(proc.pid)])
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    reader.join()
    if proc.returncode:
        raise RuntimeError("the flow failed:\n" + "".join(lines[-30:]))
    shutil.rmtree(home, ignore_errors=True)
    plain = Path(tempfile.mkdtemp(prefix="switchyard-rankings-plain-"))
    t = time.perf_counter()
    run_day = _child(RUN_DAY, str(root), DAY, str(plain))
    run_day_wall = time.perf_counter() - t
    same = all((out / k).read_bytes() == (plain / k).read_bytes()  # the manifest holds every file's SHA-256
               for k in (f"rankings/dt={DAY}/models.parquet", f"rankings/dt={DAY}/manifest.json"))
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(plain, ignore_errors=True)
    return {
        "flow_wall_s": round(wall, 1),
        "imports_s": round(marks.get("server_starting", 0), 1),
        "server_start_s": round(marks["flow_started"] - marks.get("server_starting", 0), 1),
        "flow_run_s": round(marks["flow_finished"] - marks["flow_started"], 1),
        "aggregate_task_s": round(marks["aggregated"] - marks["flow_started"], 1),
        "server_stop_s": round(wall - marks["flow_finished"], 1),
        "flow_process_peak_rss_mb": round(flow_peak), "prefect_server_peak_rss_mb": round(server_peak),
        "run_day_wall_s": round(run_day_wall, 1), "run_day_s": round(run_day["run_day_s"], 1),
        "run_day_peak_rss_mb": round(run_day["peak_rss_mb"]), "same_files_as_run_day": same,
    }


def _scans(plan: dict) -> list[set[str]]:
    """The columns each Parquet scan of a DuckDB plan reads (projected, or filtered on)."""
    out = []
    if plan.get("name") == "READ_PARQUET":
        info = plan.get("extra_info", {})
        columns = set(info.get("Projections", []))
        columns |= set(re.findall(r"[a-z_]+", str(info.get("Filters", "")))) - {"is", "not", "null", "and"}
        out.append(columns | {"created_at"})  # every statement filters on it
    for child in plan.get("children", []):
        out.extend(_scans(child))
    return out


def athena(root: Path, records: int, target: int = 1_000_000_000) -> dict:
    """Bytes each statement scans (compressed chunks of the columns its scans read), scaled to target."""
    import duckdb
    import pyarrow.parquet as pq

    from shared.rankings import sql

    files = sorted((root / f"usage/dt={DAY}").glob("*.parquet"))
    size: dict[str, int] = {}
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                name = chunk.path_in_schema.split(".")[0]
                size[name] = size.get(name, 0) + chunk.total_compressed_size
    con = duckdb.connect()
    con.execute(f"CREATE VIEW usage_records AS SELECT * FROM read_parquet('{root}/usage/dt={DAY}/*.parquet')")
    start = datetime.fromisoformat(DAY).replace(tzinfo=timezone.utc)
    params = {"from": start, "to": start + timedelta(days=1), "share": 0.5, "floor": 20, "repeat": 50,
              "min_calls": 100, "concentration": 0.95}
    scale = target / records
    out: dict = {"file_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1), "statements": {}}
    per_scan_total, columns_read = 0, set()
    for name in ("MODELS", "APPS", "CONCENTRATION"):
        q = getattr(sql, name)
        plan = json.loads(con.execute("EXPLAIN (FORMAT JSON) " + q,
                                      {k: v for k, v in params.items() if f"${k}" in q}).fetchall()[0][1])[0]
        scans = _scans(plan)
        scanned = sum(size[c] for s in scans for c in s)
        per_scan_total += scanned
        columns_read |= set().union(*scans)
        out["statements"][name] = {"scans": len(scans), "columns": sorted(set().union(*scans)),
                                   "mb": round(scanned / 1e6, 1)}
    once = sum(size[c] for c in columns_read)
    for label, measured in (("per_scan", per_scan_total), ("columns_once", once)):
        tb = measured * scale / 1e12
        out[label] = {"mb_measured": round(measured / 1e6, 1), "gb_at_1b": round(tb * 1e3, 1),
                      "usd_at_1b": round(tb * ATHENA_USD_PER_TB, 2),
                      "scan_s_at_1b_assumed": round(tb * 1e3 / ATHENA_SCAN_GB_PER_S)}
    out["columns_read"] = sorted(columns_read)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up, per process")
    parser.add_argument("--lake", type=Path, help="build the lake here, or reuse the one an earlier run left")
    parser.add_argument("--only", choices=["aggregate", "flow", "athena"])
    args = parser.parse_args()
    root = args.lake or Path(tempfile.mkdtemp(prefix="switchyard-rankings-lake-"))
    if not (root / f"usage/dt={DAY}").exists():
        t = time.perf_counter()
        built = build_day(root, args.records)
        print(f"lake: {root}, {args.records:,} records, built in {time.perf_counter() - t:.1f} s, {built}",
              flush=True)
    print("machine:", os.cpu_count(), "cores,", date.today().isoformat(), flush=True)
    try:
        if args.only in (None, "aggregate"):
            print("aggregation:", json.dumps(aggregation(root, args.records, args.runs)), flush=True)
        if args.only in (None, "flow"):
            print("whole flow:", json.dumps(whole_flow(root)), flush=True)
        if args.only in (None, "athena"):
            print("athena:", json.dumps(athena(root, args.records)), flush=True)
    finally:
        if args.lake is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
