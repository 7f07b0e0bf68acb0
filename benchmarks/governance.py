"""Key governance under load, through TWO gateway processes on ONE local stack (issue 13's acceptance figures).

    make bench-governance      (or: python -m benchmarks.governance [--only rpm spend latency] [--json FILE])

One moto (infra/moto_process.py, in a child that also counts the DynamoDB requests it serves, by operation)
and two `python -m infra.local` processes attached to it (SWITCHYARD_MOTO_ENDPOINT), all on loopback, the
`sim` vendor behind them:

  rpm      RPM = 60 under 500 requests/s split between both processes until a whole UTC minute was covered
           (60-120 s): served per minute window, by the window each answer names (X-RateLimit-Reset).
  spend    `limit: 1` (USD) under 200 concurrent calls split between both: settled spend and the share used.
  latency  a key with every restriction set against an unrestricted key, alternating on one connection: p50/p99
           a request and the difference; then DynamoDB round trips a request for each, from moto's count.

Run on demand, never in tests (speed and figures are measured here, not asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
CHAT = "/api/v1/chat/completions"
ORIGIN = "https://bench.example"
CONFIG = """
models:
  - {id: bench/priced, provider: sim, upstream_model: priced, context_length: 32768, max_output: 4096,
     pricing: {prompt: 100, completion: 300}, sim: {}}
"""
# What moto counts, by where it comes from: the request path (auth, holds, leases) or metering (in background).
REQUEST_PATH = ("GetItem", "BatchGetItem", "UpdateItem", "Query")
METERING = ("TransactWriteItems", "BatchWriteItem", "PutItem")


# -- the counting moto (a child process) ----------------------------------------------------------------------
def counting_moto() -> None:
    """infra.moto_process, with every DynamoDB request counted by its X-Amz-Target; GET /_counts answers them."""
    from moto.moto_server import threaded_moto_server

    counts: Counter[str] = Counter()
    base = threaded_moto_server.DomainDispatcherApplication

    class Counting(base):  # type: ignore[misc, valid-type]
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == "/_counts":
                start_response("200 OK", [("Content-Type", "application/json")])
                return [json.dumps(counts).encode()]
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if target.startswith("DynamoDB_"):
                counts[target.split(".", 1)[1]] += 1
            return super().__call__(environ, start_response)

    threaded_moto_server.DomainDispatcherApplication = Counting
    from infra import moto_process

    moto_process.main()


class Stack:
    """The counting moto and two gateway processes attached to it, sharing one state dir (keys, pepper)."""

    def __init__(self, state: Path) -> None:
        from infra.local import free_port

        self.state = state
        (state / "config.yaml").write_text(CONFIG)
        self.moto_port = free_port()
        self.env = {**os.environ, "SWITCHYARD_LAKE_EXPORT": "0", "SWITCHYARD_FLOWS": "0",
                    "SWITCHYARD_STATE_DIR": str(state), "SWITCHYARD_CONFIG": str(state / "config.yaml"),
                    "SWITCHYARD_MOTO_ENDPOINT": f"http://127.0.0.1:{self.moto_port}"}
        self.env.pop("SWITCHYARD_PEPPER", None)
        self.ports = [free_port(), free_port()]
        self.procs: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> "Stack":
        log = (self.state / "stack.log").open("ab")
        moto = subprocess.Popen([sys.executable, "-m", "benchmarks.governance", "moto", str(self.moto_port),
                                 str(self.state)], cwd=ROOT, env=self.env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(moto)
        assert moto.stdout is not None and moto.stdout.readline().strip() == "ready", "moto did not start"
        for port in self.ports:  # one after the other: the first writes the keys the second reuses
            proc = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT,
                                    env={**self.env, "PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT)
            self.procs.append(proc)
            self._wait(port, proc)
        self.admin = (self.state / "admin-key").read_text().strip()
        self.dev = (self.state / "dev-key").read_text().strip()
        return self

    @staticmethod
    def _wait(port: int, proc: subprocess.Popen[Any]) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the gateway on port {port} did not start")

    def __exit__(self, *_: object) -> None:
        moto, *gateways = self.procs
        for proc in gateways:
            proc.send_signal(2)
        for proc in gateways:
            proc.wait(60)
        assert moto.stdin is not None
        moto.stdin.close()
        moto.wait(60)

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) each process of the stack, and this client, has used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, proc in zip(("moto", "gateway 0", "gateway 1"), self.procs):
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        usage = os.times()
        out["client"] = usage.user + usage.system
        return out

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def counts(self) -> Counter[str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.moto_port}/_counts", timeout=10) as r:
            return Counter(json.loads(r.read()))

    def api(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        from tests.support import api

        return api(self.url(0), method, path, key or self.admin, body)

    def new_key(self, **settings: Any) -> tuple[str, str]:
        status, body = self.api("POST", "/api/v1/keys", {"name": "bench", **settings})
        assert status == 201, body
        return body["key"], body["data"]["hash"]


def chat_body(model: str = "sim/fast", max_tokens: int = 8) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hello there"}],
                       "max_tokens": max_tokens}).encode()


# -- a: RPM = 60 under 500 requests/s ---------------------------------------------------------------------------
class Connection:
    """One keep-alive HTTP/1.1 connection, as little client as a flood needs (httpx cost ~3.7 ms of CPU a
    request here, more than the gateway and moto together)."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port, self.request = port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self) -> tuple[int, int | None]:
        """The answer's status and X-RateLimit-Reset (epoch ms)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status, length, reset, close = int(lines[0].split()[1]), 0, None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"x-ratelimit-reset":
                reset = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status, reset


async def rpm_flood(stack: Stack, rate: float, limit: int, seconds: float | None = None) -> dict[str, Any]:
    token, _ = stack.new_key(name="rpm-flood", rpm=limit)
    body = chat_body()
    request = (f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    start = time.time()
    first_full = (int(start) // 60 + 1) * 60
    end = first_full + 60.5 if seconds is None else start + seconds  # by default, one whole UTC minute at least
    answers: list[tuple[float, int, int | None, int]] = []  # sent at, status, window reset (ms), process
    errors = Counter[str]()
    tickets: asyncio.Queue[float | None] = asyncio.Queue()
    per_gateway = 48

    async def worker(i: int) -> None:
        conn = Connection(stack.ports[i % 2], request)
        while (due := await tickets.get()) is not None:
            try:
                status, reset = await conn.call()
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                errors[type(e).__name__] += 1
                conn.writer = None
                continue
            answers.append((due, status, reset, i % 2))

    workers = [asyncio.ensure_future(worker(i)) for i in range(2 * per_gateway)]
    cpu_before = stack.cpu()
    n = 0
    while (now := time.time()) < end:
        due = start + n / rate
        if due > now:
            await asyncio.sleep(due - now)
        if tickets.qsize() < 1000:  # an overloaded stack shows as a lower achieved rate, not a growing queue
            tickets.put_nowait(due)
        else:
            errors["not sent (1,000 queued)"] += 1
        n += 1
    for _ in workers:
        tickets.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.time() - start
    cpu = {k: round(v - cpu_before[k], 1) for k, v in stack.cpu().items()}
    windows: dict[int, Counter[str]] = defaultdict(Counter)
    for sent, status, reset, who in answers:
        windows[reset or 0][f"{status}"] += 1
        if status == 200:
            windows[reset or 0][f"served by process {who}"] += 1
    rows = []
    for reset in sorted(windows):
        window_start = reset / 1000 - 60
        full = window_start >= start and reset / 1000 <= end
        label = datetime.fromtimestamp(window_start, timezone.utc).strftime("%H:%M") if reset else "?"
        rows.append({"window": label, "full": full, "served": windows[reset]["200"],
                     "refused": windows[reset]["429"], "by_process": [windows[reset]["served by process 0"],
                                                                       windows[reset]["served by process 1"]],
                     "other": {k: v for k, v in windows[reset].items() if k not in ("200", "429")
                               and not k.startswith("served")}})
    return {"limit": limit, "offered_rps": rate, "sent": len(answers), "seconds": round(elapsed, 1),
            "achieved_rps": round(len(answers) / elapsed, 1), "client_errors": dict(errors), "windows": rows,
            "cpu_seconds": cpu, "cpu_ms_per_request": {k: round(v * 1000 / max(len(answers), 1), 3)
                                                       for k, v in cpu.items()},
            "every_full_window_exact": all(r["served"] == limit for r in rows if r["full"])}


# -- b: a $1 limit under 200 concurrent calls -------------------------------------------------------------------
async def spend_burst(stack: Stack, calls: int) -> dict[str, Any]:
    import httpx

    token, key_id = stack.new_key(name="spend-burst", limit=1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = chat_body("bench/priced", 64)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=calls)) as client:
        answers = await asyncio.gather(*(client.post(stack.url(i % 2) + CHAT, content=body, headers=headers)
                                         for i in range(calls)))
    statuses = Counter(a.status_code for a in answers)
    answered_cost = sum(a.json()["usage"]["cost"] for a in answers if a.status_code == 200)
    settled = None
    for _ in range(60):  # the meters flush within ~50 ms; moto may be behind
        time.sleep(0.5)
        status, key = stack.api("GET", f"/api/v1/keys/{key_id}")
        settled = key["data"]["usage"]
        if abs(settled - answered_cost) < 1e-9:
            break
    return {"calls": calls, "statuses": dict(statuses), "served": statuses[200], "answered_cost": answered_cost,
            "settled_usd": settled, "share_used": round(settled / 1, 4), "within_limit": settled <= 1}


# -- c: added latency and round trips of every restriction ------------------------------------------------------
def restricted_key(stack: Stack) -> str:
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat(timespec="seconds").replace("+00:00", "Z")
    token, _ = stack.new_key(name="every-restriction", allowed_models=["sim/*"], allowed_ips=["127.0.0.1/32"],
                             allowed_origins=[ORIGIN], rpm=1_000_000, rpd=100_000_000, tpm=1_000_000_000,
                             limit=1000, limit_reset="monthly", expires_at=expires)
    return token


def timed(conn: http.client.HTTPConnection, token: str, body: bytes, origin: bool) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if origin:
        headers["Origin"] = ORIGIN
    started = time.perf_counter()
    conn.request("POST", CHAT, body=body, headers=headers)
    r = conn.getresponse()
    r.read()
    took = time.perf_counter() - started
    assert r.status == 200, r.status
    return took * 1000


def latency(stack: Stack, n: int, block: int, which: tuple[str, ...] = ()) -> dict[str, Any]:
    rates_only, _ = stack.new_key(name="rate-limits-only", rpm=1_000_000, rpd=100_000_000, tpm=1_000_000_000)
    keys = tuple(k for k in (("unrestricted", stack.dev, False), ("every restriction", restricted_key(stack), True),
                             ("rpm + rpd + tpm only", rates_only, False)) if not which or k[0] in which)
    body = chat_body()
    conn = http.client.HTTPConnection("127.0.0.1", stack.ports[0], timeout=60)
    for _ in range(50):  # warm: keys cached, leases granted, connections open
        for _, token, origin in keys:
            timed(conn, token, body, origin)
    times: dict[str, list[float]] = {name: [] for name, _, _ in keys}
    for _ in range(n):  # side by side: in turn on one connection
        for name, token, origin in keys:
            times[name].append(timed(conn, token, body, origin))
    out: dict[str, Any] = {}
    for name, ms in times.items():
        ms.sort()
        out[name] = {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(len(ms) * 0.99)], 3)}
        if name != "unrestricted":
            out[name]["added_p50_ms"] = round(out[name]["p50_ms"] - out["unrestricted"]["p50_ms"], 3)
            out[name]["added_p99_ms"] = round(out[name]["p99_ms"] - out["unrestricted"]["p99_ms"], 3)
    for name, token, origin in keys:
        time.sleep(1.0)  # the previous block's metering lands first
        before = stack.counts()
        for _ in range(block):
            timed(conn, token, body, origin)
        time.sleep(1.0)
        delta = stack.counts() - before
        out[name]["round_trips_per_request"] = {
            "request path": round(sum(delta[o] for o in REQUEST_PATH) / block, 3),
            "metering (batched, in background)": round(sum(delta[o] for o in METERING) / block, 3),
            "by operation": {o: round(c / block, 3) for o, c in sorted(delta.items())}}
    conn.close()
    return {"requests_each": n, "counted_block": block, **out}


def lifecycle(stack: Stack, grace: float = 5.0, poll: float = 0.05) -> dict[str, Any]:
    """Revocation and rotation bounds across processes: a change made through process 0, watched from process 1
    (whose key cache holds the key from before it)."""
    from tests.support import api

    def status(token: str, i: int = 1) -> int:
        code, _ = api(stack.url(i), "POST", "/api/v1/chat/completions", token,
                      {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        return code

    def until(predicate: Callable[[], bool], limit: float = 60.0) -> float:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > limit:
                return float("inf")
            time.sleep(poll)
        return round(time.monotonic() - start, 3)

    out: dict[str, Any] = {"key_cache_seconds": 10.0, "poll_seconds": poll}
    token, key_hash = stack.new_key()
    assert status(token) == 200  # process 1 caches it
    code, _ = stack.api("PATCH", f"/api/v1/keys/{key_hash}", {"disabled": True})
    assert code == 200
    assert status(token, 0) == 401  # the process that disabled it: at once
    out["disabled_refused_on_the_other_process_after_s"] = until(lambda: status(token) == 401)

    token, key_hash = stack.new_key()
    assert status(token) == 200
    code, rotated = stack.api("POST", f"/api/v1/keys/{key_hash}/rotate", {"grace_seconds": grace})
    assert code == 200, rotated
    rotated_at = time.monotonic()
    new = rotated["key"]
    out["rotation_grace_seconds"] = grace
    out["stated_bound_seconds"] = rotated["old_secret_refused_within_seconds"]
    out["new_secret_accepted_on_the_other_process_after_s"] = until(lambda: status(new) == 200)
    out["old_secret_still_accepted_within_grace"] = status(token) == 200
    until(lambda: status(token) == 401)
    out["old_secret_refused_on_the_other_process_after_s"] = round(time.monotonic() - rotated_at, 3)
    return out


def main() -> None:
    if sys.argv[1:2] == ["moto"]:
        sys.argv = [sys.argv[0], *sys.argv[2:]]
        return counting_moto()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=("rpm", "spend", "latency", "lifecycle"), default=None)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--requests", type=int, default=2000, help="latency: requests a key, alternating")
    parser.add_argument("--seconds", type=float, default=None, help="rpm: flood this long (default: until a "
                        "whole UTC minute window was covered, 60-120 s)")
    parser.add_argument("--latency-keys", nargs="*", default=(), help="latency: only these of 'unrestricted', "
                        "'every restriction', 'rpm + rpd + tpm only' (default: all three, in turn)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    only = set(args.only or ("lifecycle", "latency", "spend", "rpm"))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="governance-") as tmp, Stack(Path(tmp)) as stack:
        if "lifecycle" in only:
            results["lifecycle"] = lifecycle(stack)
            print(json.dumps({"lifecycle": results["lifecycle"]}, indent=2), flush=True)
        if "latency" in only:
            results["latency"] = latency(stack, args.requests, 500, tuple(args.latency_keys))
            print(json.dumps({"latency": results["latency"]}, indent=2), flush=True)
        if "spend" in only:
            results["spend"] = asyncio.run(spend_burst(stack, 200))
            print(json.dumps({"spend": results["spend"]}, indent=2), flush=True)
        if "rpm" in only:
            results["rpm"] = asyncio.run(rpm_flood(stack, args.rate, 60, args.seconds))
            print(json.dumps({"rpm": results["rpm"]}, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
