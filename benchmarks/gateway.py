"""What the gateway adds over a direct call, measured with wrk against the shared fake upstream.

    make bench            (or: python -m benchmarks.gateway --seconds 8)

Starts ../shared/bench/fake_upstream.py, then `python -m infra.local` (auth and metering on, moto embedded)
with an `openai`-kind provider pointing at it, and measures with wrk, one thread, like ../shared/bench/peers.sh:
p50/p99 latency at 1 connection and req/s at 32 connections, direct and through the gateway. Then it checks
that every request served was metered exactly once, and times the Lambda handler's import (cold start).
Last, the same through a key with a spend limit: what holding each call's worst case in DynamoDB costs.

    python -m benchmarks.gateway --metrics [--rounds 6 --seconds 5]      (make bench-metrics)

What /metrics costs: two stacks side by side in one run, SWITCHYARD_METRICS on (scraped every second, as an
aggressive Prometheus would) and off, windows of wrk at 32 connections alternated between them (on, off, off,
on, …: drift cancels); req/s and the gateway process's CPU a request (utime + stime from /proc) per window.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT.parent / "shared" / "bench" / "fake_upstream.py"
BODY = '{"model":"%s","messages":[{"role":"user","content":"hi"}]}'


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Stack(NamedTuple):
    up_port: int
    gw_port: int
    state: Path  # the stack's state dir: dev-key, admin-key
    gateway: subprocess.Popen
    moto_url: str


@contextmanager
def bench_stack(fake: Path, *fake_args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
                ready_seconds: float = 60, root: Path = ROOT) -> Iterator[Stack]:
    """A fake upstream (`fake PORT *fake_args`) and `python -m infra.local` (from the tree `root`: this one
    unless comparing with another) with an `openai`-kind provider `bench` pointing at it (model `bench/model`,
    upstream name `bench-model`); both stopped on exit."""
    procs: list[subprocess.Popen] = []
    try:
        up_port, gw_port = free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, str(fake), str(up_port), *fake_args],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        state = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
        config = state / "bench.yaml"
        config.write_text(f"providers: [{{id: bench, kind: openai, base_url: 'http://127.0.0.1:{up_port}/v1'}}]\n"
                          "models: [{id: bench/model, provider: bench, upstream_model: bench-model, "
                          "pricing: {prompt: 1, completion: 2}}]\n")
        # The usage exporter (moto's stream into the lake) and the flows are off unless asked for: the peers export nothing,
        # and on a 2-core machine it competes with the gateway and moto (its cost: benchmarks/README.md, lake).
        environ = {"SWITCHYARD_LAKE_EXPORT": "0", "SWITCHYARD_FLOWS": "0", **os.environ, **(env or {}),
                   "PORT": str(gw_port), "SWITCHYARD_STATE_DIR": str(state), "SWITCHYARD_CONFIG": str(config)}
        gw = subprocess.Popen([*prefix, sys.executable, "-m", "infra.local"], cwd=root, env=environ,
                              stdout=subprocess.PIPE, text=True)
        procs.append(gw)
        moto_url = re.search(r"moto on (\S+),", gw.stdout.readline())[1]  # type: ignore[union-attr,index]
        wait(f"http://127.0.0.1:{gw_port}/health", ready_seconds)
        yield Stack(up_port, gw_port, state, gw, moto_url)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def wrk(url: str, model: str, key: str, connections: int, seconds: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f"wrk.method='POST'\nwrk.body='{BODY % model}'\n"
                      f"wrk.headers['Content-Type']='application/json'\nwrk.headers['Authorization']='Bearer {key}'\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    script.unlink()

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m[1]), m[2]  # type: ignore[index]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {"p50_ms": ms("50"), "p99_ms": ms("99"), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "errors": int(non2xx[1]) if non2xx else 0, "requests": int(total[1]) if total else 0}


def create_limited_key(port: int, admin: str) -> str:
    """An inference key with a spend limit no benchmark reaches: every call holds, none is refused."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/keys", method="POST",
                                     data=json.dumps({"name": "bench-limited", "limit": 1_000_000}).encode(),
                                     headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request).read())["key"]


def import_time(runs: int = 5) -> float:
    """Median import of the Lambda handler in fresh processes, with bytecode compiled (as `make` installs the
    venv and as `sam build` ships the package): compiling from source would be measured otherwise."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "functions", "shared"], cwd=ROOT, check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                   stdout=subprocess.DEVNULL)
    code = ("import time; t = time.perf_counter(); import functions.gateway.handler; "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "SWITCHYARD_PEPPER": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  cwd=ROOT, env=env).stdout) for _ in range(runs)]
    return statistics.median(times)


def usage_records(moto_url: str) -> int:
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    count, kwargs = 0, {"TableName": "switchyard-UsageTable", "Select": "COUNT"}
    while True:
        page = ddb.scan(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scraped_requests(port: int, admin: str) -> float:
    """The sum of switchyard_requests_total of one scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {admin}"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "switchyard_requests"
               for s in f.samples)


def metrics_cost(rounds: int, seconds: int) -> None:
    """/metrics on (scraped every second) against off, side by side, alternating windows."""
    import threading

    with bench_stack(FAKE, "0", env={"SWITCHYARD_METRICS": "true"}) as on, \
            bench_stack(FAKE, "0", env={"SWITCHYARD_METRICS": "false"}) as off:
        stacks = {"on": on, "off": off}
        keys = {n: (s.state / "dev-key").read_text().strip() for n, s in stacks.items()}
        admin = (on.state / "admin-key").read_text().strip()
        url = {n: f"http://127.0.0.1:{s.gw_port}/api/v1/chat/completions" for n, s in stacks.items()}
        warm = {name: wrk(url[name], "bench/model", keys[name], 8, 2) for name in stacks}  # pools and caches
        windows: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        scrapes = 0
        served_on = warm["on"]["requests"]
        for r in range(rounds):
            for name in (("on", "off") if r % 2 == 0 else ("off", "on")):
                stop = threading.Event()

                def scrape() -> None:
                    nonlocal scrapes
                    while not stop.wait(1.0):
                        scraped_requests(on.gw_port, admin)
                        scrapes += 1

                scraper = threading.Thread(target=scrape, daemon=True) if name == "on" else None
                if scraper is not None:
                    scraper.start()
                pid = stacks[name].gateway.pid
                cpu = cpu_seconds(pid)
                result = wrk(url[name], "bench/model", keys[name], 32, seconds)
                cpu = cpu_seconds(pid) - cpu
                stop.set()
                if scraper is not None:
                    scraper.join()
                    served_on += result["requests"]
                windows[name].append({"rps": result["rps"], "cpu_us": cpu / max(result["requests"], 1) * 1e6,
                                      "errors": result["errors"]})
                print(f"round {r + 1} {name:>3}: {result['rps']:,.0f} req/s, "
                      f"{windows[name][-1]['cpu_us']:.1f} µs CPU a request", file=sys.stderr)
        time.sleep(1)
        counted = scraped_requests(on.gw_port, admin)
    median = {n: {k: statistics.median(w[k] for w in ws) for k in ("rps", "cpu_us")} for n, ws in windows.items()}
    report = {
        "windows": windows, "median": median, "scrapes": scrapes,
        "throughput_cost_pct": round((1 - median["on"]["rps"] / median["off"]["rps"]) * 100, 2),
        "cpu_cost_pct": round((median["on"]["cpu_us"] / median["off"]["cpu_us"] - 1) * 100, 2),
        # warm-up (8 connections) + every window's requests + at most one in flight a connection a window
        "counted": {"switchyard_requests_total": counted, "served": served_on, "in_flight_at_most": 8 + 32 * (rounds + 1)},
    }
    print(json.dumps(report, indent=2))
    print(f"\n/metrics on: {median['on']['rps']:,.0f} req/s, {median['on']['cpu_us']:.1f} µs CPU a request; off: "
          f"{median['off']['rps']:,.0f} req/s, {median['off']['cpu_us']:.1f} µs. Cost: {report['throughput_cost_pct']}% "
          f"of throughput, {report['cpu_cost_pct']}% CPU a request (target ≤ 3%); {scrapes} scrapes")


def metrics_instructions(requests: int, scrape_every: int) -> None:
    """The gateway's instructions a request under callgrind, metrics on (scraped once every `scrape_every`
    requests) against off: both stacks under valgrind at once and the calls interleaved, one to each in turn,
    so that what a process does by the clock (key and catalog refreshes, timers), slowed ~50 × by valgrind, is
    the same for both and the difference is the metrics' own."""
    import http.client
    from http.client import HTTPConnection

    outs = {n: Path(tempfile.mkdtemp(prefix=f"switchyard-callgrind-{n}-")) / "callgrind.out" for n in ("on", "off")}

    def under_valgrind(name: str):
        return bench_stack(FAKE, "0", env={"SWITCHYARD_METRICS": "true" if name == "on" else "false"},
                           prefix=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                   f"--callgrind-out-file={outs[name]}"), ready_seconds=900)

    with under_valgrind("on") as on, under_valgrind("off") as off:
        stacks = {"on": on, "off": off}
        admin = (on.state / "admin-key").read_text().strip()
        body = (BODY % "bench/model").encode()
        conns = {n: HTTPConnection("127.0.0.1", s.gw_port, timeout=120) for n, s in stacks.items()}
        headers = {n: {"Authorization": f"Bearer {(s.state / 'dev-key').read_text().strip()}",
                       "Content-Type": "application/json"} for n, s in stacks.items()}

        def call(name: str) -> None:
            for attempt in (1, 2):  # the server closes a connection idle past its keep-alive (5 s, slow valgrind)
                try:
                    conns[name].request("POST", "/api/v1/chat/completions", body=body, headers=headers[name])
                    response = conns[name].getresponse()
                    response.read()
                    break
                except (ConnectionError, http.client.RemoteDisconnected):
                    conns[name].close()
                    if attempt == 2:
                        raise
            assert response.status == 200, response.status

        for _ in range(300):
            call("on")
            call("off")
        scraped_requests(on.gw_port, admin)  # the first scrape imports prometheus-client
        for s in stacks.values():
            subprocess.run(["callgrind_control", "-i", "on", str(s.gateway.pid)], check=True, capture_output=True)
        for i in range(requests):
            call("on")
            call("off")
            if (i + 1) % scrape_every == 0:
                scraped_requests(on.gw_port, admin)
        time.sleep(0.5)  # the last records' flush
        for s in stacks.values():
            subprocess.run(["callgrind_control", "-d", str(s.gateway.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-i", "off", str(s.gateway.pid)], check=True, capture_output=True)
    figures = {}
    for name, out in outs.items():
        (dump,) = [f for f in out.parent.iterdir() if f.name.startswith("callgrind.out.")]
        totals = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
        figures[name] = int(totals[1]) / requests  # type: ignore[index]
    cost = (figures["on"] / figures["off"] - 1) * 100
    print(json.dumps({"instructions_a_request": figures, "requests": requests, "scrape_every": scrape_every,
                      "cost_pct": round(cost, 2)}, indent=2))
    print(f"\n/metrics on: {figures['on']:,.0f} instructions a request, off: {figures['off']:,.0f}: "
          f"{cost:+.2f}% (target ≤ 3%), a scrape every {scrape_every} requests")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--metrics", action="store_true", help="what /metrics costs: on against off, alternated")
    parser.add_argument("--rounds", type=int, default=6, help="with --metrics: windows of each")
    parser.add_argument("--callgrind", type=int, metavar="REQUESTS",
                        help="with --metrics: count instructions a request under valgrind instead (e.g. 3000)")
    parser.add_argument("--scrape-every", type=int, default=1000, help="with --callgrind: requests a scrape")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    if not FAKE.exists():
        sys.exit(f"missing {FAKE}")
    if args.metrics and args.callgrind:
        return metrics_instructions(args.callgrind, args.scrape_every)
    if args.metrics:
        return metrics_cost(args.rounds, args.seconds)
    with bench_stack(FAKE, "0") as stack:
        gw_port, up_port, state, moto_url = stack.gw_port, stack.up_port, stack.state, stack.moto_url
        key = (state / "dev-key").read_text().strip()
        direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
        gw_url = f"http://127.0.0.1:{gw_port}/api/v1/chat/completions"
        warm = wrk(gw_url, "bench/model", key, 8, 2)  # warm up pools and caches
        results = {}
        for name, url, model in (("direct", direct_url, "bench-model"), ("gateway", gw_url, "bench/model")):
            one = wrk(url, model, key, 1, args.seconds)
            many = wrk(url, model, key, 32, args.seconds)
            results[name] = {"p50_ms": one["p50_ms"], "p99_ms": one["p99_ms"], "rps_32": many["rps"],
                             "errors": one["errors"] + many["errors"],
                             "requests": one["requests"] + many["requests"]}
        limited_key = create_limited_key(gw_port, (state / "admin-key").read_text().strip())
        one = wrk(gw_url, "bench/model", limited_key, 1, args.seconds)
        many = wrk(gw_url, "bench/model", limited_key, 32, args.seconds)
        results["limited"] = {"p50_ms": one["p50_ms"], "p99_ms": one["p99_ms"], "rps_32": many["rps"],
                              "errors": one["errors"] + many["errors"], "requests": one["requests"] + many["requests"]}
        served = warm["requests"] + results["gateway"]["requests"] + results["limited"]["requests"]
        in_flight = 8 + 2 * (1 + 32)  # wrk stops with up to one request per connection unanswered (served, uncounted)
        deadline = time.monotonic() + 600  # moto absorbs ~1,000 records a second on this machine
        while time.monotonic() < deadline:
            backlog = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/health").read())["metering_backlog"]
            if backlog == 0:
                break
            time.sleep(0.2)
        metered = usage_records(moto_url)
        d, g = results["direct"], results["gateway"]
        report = {
            "direct": d, "gateway": g,
            "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 3),
            "added_p99_ms": round(g["p99_ms"] - d["p99_ms"], 3),
            "limited": results["limited"],
            "hold_p50_ms": round(results["limited"]["p50_ms"] - g["p50_ms"], 3),
            "metering": {"served": served, "usage_records": metered,
                         "exactly_once": served <= metered <= served + in_flight},
            "handler_import_s": round(import_time(), 3),
        }
        print(json.dumps(report, indent=2))
        print(f"\nadded p50 {report['added_p50_ms']} ms (target ≤ 0.5); gateway {g['rps_32']:.0f} req/s at 32 "
              f"connections (target ≥ 2,670 = 1.5 × Portkey's 1,780); handler import "
              f"{report['handler_import_s']} s (target ≤ 0.5); {metered} usage records for {served} answered "
              f"requests (+ at most {in_flight} that wrk abandoned in flight); a limited key adds "
              f"{report['hold_p50_ms']} ms p50 and serves {results['limited']['rps_32']:.0f} req/s")


if __name__ == "__main__":
    main()
