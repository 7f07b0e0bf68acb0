"""What the gateway adds over a direct call, measured with wrk against the shared fake upstream.

    make bench            (or: python -m benchmarks.gateway --seconds 8)

Starts ../shared/bench/fake_upstream.py, then `python -m infra.local` (auth and metering on, moto embedded)
with an `openai`-kind provider pointing at it, and measures with wrk, one thread, like ../shared/bench/peers.sh:
p50/p99 latency at 1 connection and req/s at 32 connections, direct and through the gateway. Then it checks
that every request served was metered exactly once, and times the Lambda handler's import (cold start).
Last, the same through a key with a spend limit: what holding each call's worst case in DynamoDB costs.
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
def bench_stack(fake: Path, *fake_args: str, root: Path = ROOT) -> Iterator[Stack]:
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
        env = {"SWITCHYARD_LAKE_EXPORT": "0", "SWITCHYARD_FLOWS": "0", **os.environ, "PORT": str(gw_port),
               "SWITCHYARD_STATE_DIR": str(state), "SWITCHYARD_CONFIG": str(config)}
        gw = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=root, env=env, stdout=subprocess.PIPE,
                              text=True)
        procs.append(gw)
        moto_url = re.search(r"moto on (\S+),", gw.stdout.readline())[1]  # type: ignore[union-attr,index]
        wait(f"http://127.0.0.1:{gw_port}/health")
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    if not FAKE.exists():
        sys.exit(f"missing {FAKE}")
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
