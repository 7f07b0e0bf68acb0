"""How fast the dashboard is on the local stack over a lake of 1 M usage records, in headless Chromium.

    make bench-dashboard        (or: python -m benchmarks.dashboard --records 1000000 --days 7)

1. A lake of N records over the last D days (default: all 1 M inside the page's default 7-day range, so that
   the first view reads every one of them), one compacted file per day as the hourly compaction leaves it;
   models of several labs, four apps, 4% failures of four error types (context_length_exceeded among them).
2. `python -m infra.local` with SWITCHYARD_LAKE_URI pointing at it (the exporter off), and the day's rankings
   run once over it (POST /api/v1/rankings/runs).
3. Debian's Chromium through Playwright: the page's first contentful paint (the sign-in form); then signed in,
   each view from the moment it is asked for (the hash changes) to the moment it is drawn (`view:<name>`, the
   mark app.js sets once the view's API calls are answered and its DOM is in place), first visit and warm
   (median of 5); and the slowest of the view's API calls (Resource Timing, end to end in the browser).
   A reload with the key in sessionStorage gives the signed-in first paint: navigation start to the analytics
   view drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks.gateway import free_port, wait

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
MODELS = [("google/gemini-2.0-flash", 6), ("anthropic/claude-4-haiku", 3), ("meta-llama/llama-3.2-90b-instruct", 2),
          ("meta-llama/llama-3.2-3b-instruct", 2), ("nvidia/nemotron-70b", 1), ("openai/gpt-4.1-mini", 2),
          ("mistralai/mistral-small", 1), ("sim/fast", 1)]
APPS = ["Customer Support Bot", "external-api", "data-pipeline", None]
ERRORS = ["context_length_exceeded", "provider_error", "rate_limit_exceeded", "timeout"]
VIEWS = ["analytics", "errors/google%2Fgemini-2.0-flash", "errors", "rankings", "routing", "keys", "audit", "jobs",
         "key"]


def build_lake(root: Path, records: int, days: int, now: datetime) -> None:
    """N records spread over the `days` days up to `now` (the last one partial), a compacted file a day."""
    import numpy as np
    import pyarrow as pa

    from shared.lake import parts, schema
    from shared.lake.store import LocalStore

    store = LocalStore(root)
    rng = np.random.default_rng(14)
    ids = np.array([m for m, w in MODELS for _ in range(w)])
    labs = np.array([m.split("/")[0] for m in ids])
    apps = np.array(APPS, dtype=object)
    errors = np.array(ERRORS, dtype=object)
    start = now - timedelta(days=days)
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    spans = []
    day = first
    while day < now:
        low, high = max(day, start), min(day + timedelta(days=1), now)
        spans.append((day, low, high))
        day += timedelta(days=1)
    total = sum((h - lo).total_seconds() for _, lo, h in spans)
    made = 0
    for n_day, (day, low, high) in enumerate(spans):
        n = records - made if n_day == len(spans) - 1 else round(records * (high - low).total_seconds() / total)
        made += n
        m = rng.integers(0, len(ids), n)
        failed = rng.random(n) < 0.04
        t0 = low.timestamp() * 1000
        columns = {
            "id": pa.array([f"gen-{n_day:02d}{i:09d}" for i in range(n)]),
            "created_at": pa.array(np.sort(t0 + rng.integers(0, int((high - low).total_seconds() * 1000), n))
                                   .astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC")),
            "schema_version": pa.array(np.full(n, 2, np.int16)),
            "key_id": pa.array(np.char.add("key0000000", (rng.integers(10, 60, n)).astype(str))),
            "app": pa.array(apps[rng.integers(0, len(apps), n)]),
            "model": pa.array(ids[m]), "lab": pa.array(labs[m]), "provider_name": pa.array(labs[m]),
            "status": pa.array(np.where(failed, "failed", "completed")),
            "error_type": pa.array(np.where(failed, errors[rng.integers(0, len(errors), n)], None).astype(object)),
            "input_tokens": pa.array(rng.integers(10, 4000, n)), "output_tokens": pa.array(rng.integers(1, 800, n)),
            "cache_read_input_tokens": pa.array(np.zeros(n, np.int64)),
            "reasoning_output_tokens": pa.array(np.zeros(n, np.int64)),
            "usage_estimated": pa.array(np.zeros(n, bool)), "cost_usd": pa.array(rng.random(n) / 1000),
            "latency_ms": pa.array(rng.gamma(2.0, 300.0, n)), "ttft_ms": pa.array(rng.gamma(2.0, 50.0, n)),
            "streamed": pa.array(rng.random(n) < 0.5), "attempts": pa.array(np.ones(n, np.int16)),
            "heal_repairs": pa.array(np.zeros(n, np.int32)),
        }
        table = schema.conform(pa.table(columns))
        store.put(parts.day_prefix(day.date().isoformat()) + parts.COMPACTED, parts.parquet_bytes(table))


def _post(url: str, key: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


DIRECT = """
import duckdb, json, sys, time
from datetime import datetime, timedelta, timezone
from shared.lake import queries
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"CREATE VIEW usage_records AS SELECT * FROM read_parquet('{sys.argv[1]}/usage/*/*.parquet')")
params = {"from": datetime.now(timezone.utc) - timedelta(days=7), "to": datetime.now(timezone.utc)}
out = {}
for name, group_by, granularity in (("model,lab", ["model", "lab"], None), ("app", ["app"], None),
                                    ("hour", [], "hour")):
    sql, _ = queries.usage(group_by, granularity, [])
    times = []
    for _ in range(5):
        t = time.perf_counter()
        con.sql(sql, params=params).fetchall()
        times.append(time.perf_counter() - t)
    out[name] = round(min(times) * 1000, 1)
print(json.dumps(out))
"""


def direct(root: Path) -> dict:
    """The analytics view's three queries in DuckDB directly on the same files (best of 5, one at a time)."""
    run = subprocess.run([sys.executable, "-c", DIRECT, str(root)], cwd=ROOT, check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure(url: str, key: str, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/dashboard")
        page.wait_for_selector("#key-input")
        out["first_contentful_paint_ms"] = page.evaluate(
            "() => new Promise(done => new PerformanceObserver((list, o) => { o.disconnect();"
            " done(list.getEntries()[0].startTime); }).observe({type: 'paint', buffered: true}))")
        page.fill("#key-input", key)
        t = time.perf_counter()
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("body[data-ready='analytics']", state="attached", timeout=120_000)
        out["sign_in_to_analytics_ms"] = round((time.perf_counter() - t) * 1000, 1)
        views: dict = {}
        for view in VIEWS:
            samples, slowest, firsts = [], [], []
            for _ in range(rounds + 1):
                page.evaluate("() => { performance.clearResourceTimings(); performance.clearMarks(); }")
                # a new hash, or the same one again (app.js renders the view anew on each hashchange event)
                page.evaluate("h => { document.body.dataset.ready = ''; window.__t0 = performance.now();"
                              " if (location.hash === h) dispatchEvent(new HashChangeEvent('hashchange'));"
                              " else location.hash = h; }", f"#/{view}")
                name = view.split("/")[0]
                page.wait_for_selector(f"body[data-ready='{name}']", state="attached", timeout=120_000)
                samples.append(page.evaluate(f"() => performance.getEntriesByName('view:{name}').pop().startTime"
                                             " - window.__t0"))
                firsts.append(page.evaluate(f"() => (performance.getEntriesByName('paint:{name}').pop()"
                                            f" || performance.getEntriesByName('view:{name}').pop()).startTime"
                                            " - window.__t0"))
                slowest.append(page.evaluate("() => Math.max(0, ...performance.getEntriesByType('resource')"
                                             ".filter(e => e.name.includes('/api/v1/')).map(e => e.duration))"))
            views[view] = {"first_ms": round(samples[0], 1), "warm_median_ms": round(statistics.median(samples[1:]), 1),
                           "warm_max_ms": round(max(samples[1:]), 1),
                           "first_data_warm_median_ms": round(statistics.median(firsts[1:]), 1),
                           "slowest_api_call_median_ms": round(statistics.median(slowest[1:]), 1)}
            print(view, views[view], flush=True)
        out["views"] = views
        reloads = []
        page.evaluate("() => { document.body.dataset.ready = ''; location.hash = '#/analytics'; }")
        page.wait_for_selector("body[data-ready='analytics']", state="attached", timeout=120_000)
        for _ in range(rounds):
            page.reload()  # the key is in sessionStorage: straight to the view
            page.wait_for_selector("body[data-ready='analytics']", state="attached", timeout=120_000)
            reloads.append(page.evaluate("() => performance.getEntriesByName('view:analytics').pop().startTime"))
        out["signed_in_reload_to_analytics_median_ms"] = round(statistics.median(reloads), 1)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    root = Path(tempfile.mkdtemp(prefix="switchyard-dashboard-lake-"))
    t = time.perf_counter()
    build_lake(root, args.records, args.days, now)
    print(f"lake: {args.records:,} records over {args.days} days in {time.perf_counter() - t:.1f} s ({root})", flush=True)
    state = Path(tempfile.mkdtemp(prefix="switchyard-dashboard-state-"))
    port = free_port()
    env = {**os.environ, "PORT": str(port), "SWITCHYARD_STATE_DIR": str(state), "SWITCHYARD_LAKE_URI": str(root),
           "SWITCHYARD_LAKE_EXPORT": "0", "SWITCHYARD_FLOWS": "0"}
    stack = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait(f"{url}/health", timeout=120)
        admin = (state / "admin-key").read_text().strip()
        t = time.perf_counter()
        run = _post(f"{url}/api/v1/rankings/runs", admin, {"date": (now - timedelta(days=1)).date().isoformat()})
        print(f"rankings over the lake's yesterday: {run['data']['status']} in {time.perf_counter() - t:.1f} s",
              flush=True)
        load = os.getloadavg()[0]
        result = measure(url, admin, args.rounds)
        baseline = direct(root)
        print(json.dumps({"records": args.records, "days": args.days, "load_average_1m": [round(load, 1),
                          round(os.getloadavg()[0], 1)], "duckdb_direct_best_ms": baseline, **result}, indent=1))
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
