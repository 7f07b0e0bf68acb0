"""Reliability: the trust failures of issue 9, reproduced against the local stack, with a figure for each.

    make reliability     (or: python -m benchmarks.reliability [--only SCENARIO ...] [--json FILE])

Each scenario starts its own `python -m infra.local` (what `make run` starts) in a new session, with its own
state dir and port, on loopback only, so one scenario's failure cannot colour another's figures. Prints a
table of figures against their targets, then every figure as JSON on stdout (`--json FILE` also writes it).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHAT = "/api/v1/chat/completions"
PROMPT = " ".join(["metering"] * 80)  # 87 prompt tokens: each ordinary call costs over 1e-4 USD (see poison)
ORDINARY = {"model": "sim/fast", "messages": [{"role": "user", "content": PROMPT}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Stack:
    """`python -m infra.local` in a new session, so that a signal can reach its whole process group."""

    def __init__(self, state: Path, env: dict[str, str] | None = None) -> None:
        from infra.local import free_port

        state.mkdir(parents=True, exist_ok=True)
        self.state, self.port = state, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {}), "PORT": str(self.port), "SWITCHYARD_STATE_DIR": str(state)}
        self.env.pop("SWITCHYARD_PEPPER", None)
        # A connection per request: uvicorn drops a connection after an internal error, and reusing it would
        # race that close (what keep-alive does after a bad input is measured on purpose, in bad_inputs).
        self.http = httpx.Client(base_url=self.url, timeout=120,
                                 limits=httpx.Limits(max_keepalive_connections=0))

    def __enter__(self) -> "Stack":
        with (self.state / "stack.log").open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.http.get("/health", timeout=1).status_code == 200:
                    self.dev = (self.state / "dev-key").read_text().strip()
                    self.admin = (self.state / "admin-key").read_text().strip()
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        tail = (self.state / "stack.log").read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"the local stack did not start: {' | '.join(tail)}")

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C: what `make run` is stopped with
            self.wait_gone()

    def wait_gone(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until every process of the group has exited (SIGKILL after `timeout`)."""
        started, killed = time.monotonic(), False
        while time.monotonic() - started < timeout + 5:
            self.proc.poll()
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() - started > timeout and not killed:
                os.killpg(self.proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        seconds = round(time.monotonic() - started, 2)
        return {"exit_code": self.proc.wait(), "exit_s": seconds, "killed": killed}

    def chat(self, token: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(CHAT, json=body, headers=bearer(token))

    def settle(self, timeout: float = 15) -> dict[str, Any]:
        """/health once the metering backlog is 0, or when `timeout` is up."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.http.get("/health").json()
            if health.get("metering_backlog") == 0 or time.monotonic() > deadline:
                return health
            time.sleep(0.2)

    def new_key(self, name: str, limit: float | None = None) -> tuple[str, str]:
        """A fresh inference key through the management API: (secret, hash)."""
        r = self.http.post("/api/v1/keys", json={"name": name, "limit": limit}, headers=bearer(self.admin))
        r.raise_for_status()
        return r.json()["key"], r.json()["data"]["hash"]

    def key_data(self, token: str, key_hash: str) -> dict[str, Any]:
        """The key as `GET /key` shows it, or through the management API when the key itself is refused."""
        r = self.http.get("/api/v1/key", headers=bearer(token))
        if r.status_code != 200:
            r = self.http.get(f"/api/v1/keys/{key_hash}", headers=bearer(self.admin))
        return (r.json().get("data") or {}) if r.status_code == 200 else {}

    def recorded_cost(self, token: str, response: httpx.Response) -> float | str:
        """The call's cost in its generation record, or why that cannot be read."""
        body = response.json()
        gen = response.headers.get("x-generation-id") or body.get("id") or \
            ((body.get("error") or {}).get("metadata") or {}).get("generation_id")
        if not gen:
            return "no generation id"
        r = self.http.get("/api/v1/generation", params={"id": gen}, headers=bearer(token))
        return r.json()["data"]["total_cost"] if r.status_code == 200 else f"HTTP {r.status_code}"


async def fire(url: str, token: str, body: dict[str, Any], calls: int, concurrency: int,
               then: Callable[[], object] = lambda: None) -> list[httpx.Response]:
    """`calls` chat calls, `concurrency` at a time; `then()` runs the moment the last one is answered."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=bearer(token)) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> httpx.Response:
            async with gate:
                return await client.post(CHAT, json=body)

        responses = await asyncio.gather(*(one() for _ in range(calls)))
        then()
        return responses


def cost_of(response: httpx.Response) -> float:
    return ((response.json().get("usage") or {}).get("cost") or 0) if response.status_code == 200 else 0


# -- 1. one cheap call stalls metering -----------------------------------------------------------------------
def poison(tmp: Path) -> dict[str, Any]:
    """One key's 7e-06 call, then 50 ordinary calls by another key. (More calls by the poison key in the same
    batch would add up to a spend over 1e-4, which no longer trips the bug.)"""
    with Stack(tmp / "poison") as s:
        other, other_hash = s.new_key("reliability-other-user")
        first = s.chat(s.dev, {"model": "sim/fast", "max_tokens": 1,
                               "messages": [{"role": "user", "content": "a b c d"}]})
        ordinary = [s.chat(other, ORDINARY) for _ in range(50)]
        health = s.settle(15)
        other_usage = s.key_data(other, other_hash).get("usage")
    return {"poison_status": first.status_code, "poison_cost": cost_of(first),
            "ordinary_answered": sum(r.status_code == 200 for r in ordinary),
            "backlog_after_15s": health.get("metering_backlog"),
            "dead_letters": health.get("metering_dead_letters"), "other_key_usage": other_usage,
            "other_key_answered_cost": round(sum(cost_of(r) for r in ordinary), 8)}


# -- 2. spend limits under concurrency, and one call far over its limit --------------------------------------
def overshoot(tmp: Path) -> dict[str, Any]:
    """200 concurrent calls of sim/chat (250 ms to first token) on a key whose limit fits 20 of them."""
    body = {"model": "sim/chat", "max_tokens": 16, "messages": [{"role": "user", "content": PROMPT}]}
    with Stack(tmp / "overshoot") as s:
        one = cost_of(s.chat(s.dev, body))
        limit = round(20 * one, 8)
        token, key_hash = s.new_key("reliability-limited", limit)
        statuses = [r.status_code for r in asyncio.run(fire(s.url, token, body, 200, 200))]
        s.settle(15)
        usage = s.key_data(token, key_hash).get("usage") or 0
        small, small_hash = s.new_key("reliability-one-call", 0.01)
        schema = {"type": "array", "items": {"type": "string"}, "minItems": 300000}
        big = s.chat(small, {"model": "sim/fast", "messages": [{"role": "user", "content": "list"}],
                             "response_format": {"type": "json_schema",
                                                 "json_schema": {"name": "l", "schema": schema}}})
        s.settle(15)
        small_usage = s.key_data(small, small_hash).get("usage") or 0
    return {"one_call_cost": one, "limit": limit, "calls_that_fit": int(limit / one + 1e-9),
            "served": statuses.count(200), "refused_402": statuses.count(402),
            "other": len(statuses) - statuses.count(200) - statuses.count(402),
            "usage": usage, "overshoot": round(usage / limit, 2),
            "single_call": {"status": big.status_code, "bytes": len(big.content), "cost": cost_of(big),
                            "key_usage": small_usage,
                            "overshoot": round(max(cost_of(big), small_usage) / 0.01, 2)}}


# -- 3. an upstream that lies about usage --------------------------------------------------------------------
LIES: dict[str, Any] = {"negative": -1_000_000, "huge": 10**40, "text": "abc"}  # 10**40 has 41 digits


class LyingUpstream(BaseHTTPRequestHandler):
    """OpenAI-compatible; its usage block says `prompt_tokens: LIES[the upstream model asked for]`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        model = json.loads(self.rfile.read(int(self.headers["Content-Length"]))).get("model")
        lie = LIES.get(model, 1)
        answer = {"role": "assistant", "content": "fine"}
        body = json.dumps({"id": "chatcmpl-liar", "object": "chat.completion", "created": int(time.time()),
                           "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                                        "message": answer}],
                           "usage": {"prompt_tokens": lie, "completion_tokens": 1, "total_tokens": lie}})
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def upstream(tmp: Path) -> dict[str, Any]:
    """A call per lie, each on a fresh key with a $10 limit; then that key is read, changed and used again."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), LyingUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp / "liar.yaml"
    base_url = f"http://127.0.0.1:{server.server_port}/v1"
    models = "".join(f"  - {{id: liar/{lie}, provider: liar, upstream_model: {lie}, "
                     "pricing: {prompt: 1, completion: 2}}\n" for lie in LIES)
    config.write_text(f"providers: [{{id: liar, kind: openai, base_url: '{base_url}'}}]\nmodels:\n{models}")
    results: dict[str, Any] = {}
    try:
        with Stack(tmp / "upstream", {"SWITCHYARD_CONFIG": str(config)}) as s:
            calls = {lie: s.new_key(f"reliability-{lie}", 10) for lie in LIES}
            hi = [{"role": "user", "content": "hi"}]
            answers = {lie: s.chat(token, {"model": f"liar/{lie}", "messages": hi})
                       for lie, (token, _) in calls.items()}
            s.settle(15)
            admin = bearer(s.admin)
            for lie, (token, key_hash) in calls.items():
                read = s.http.get(f"/api/v1/keys/{key_hash}", headers=admin)
                results[lie] = {
                    "status": answers[lie].status_code, "cost": s.recorded_cost(token, answers[lie]),
                    "key_usage": read.json()["data"]["usage"] if read.status_code == 200 else None,
                    "get_key": s.http.get("/api/v1/key", headers=bearer(token)).status_code,
                    "admin_get": read.status_code,
                    "admin_patch": s.http.patch(f"/api/v1/keys/{key_hash}", json={"name": "renamed"},
                                                headers=admin).status_code,
                    "next_call": s.chat(token, ORDINARY).status_code}
    finally:
        server.shutdown()
    return results


def charged_sanely(r: dict[str, Any]) -> bool:
    """No internal error, and the key charged nothing absurd (neither a refund nor a fortune)."""
    return r["status"] != 500 and r["key_usage"] is not None and 0 <= r["key_usage"] < 1


# -- 4. bad inputs on one keep-alive connection --------------------------------------------------------------
def _chat(**fields: Any) -> bytes:
    hi = [{"role": "user", "content": "hi"}]
    return json.dumps({"model": "sim/fast", "messages": hi, **fields}).encode()


def _schema(schema: Any) -> bytes:
    return _chat(response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})


def _tool(parameters: Any) -> bytes:
    return _chat(tools=[{"type": "function", "function": {"name": "f", "parameters": parameters}}],
                 tool_choice={"type": "function", "function": {"name": "f"}})


def _raw(fields: str) -> bytes:
    """A chat body with fields spliced in as raw JSON text (for what json.dumps cannot write)."""
    return _chat()[:-1] + b", " + fields.encode() + b"}"


NESTED = '{"type":"object","properties":{"a":' * 480 + '{"type":"string"}' + "}}" * 480
BAD_INPUTS: list[tuple[str, bytes, dict[str, str]]] = [  # (name, body, headers): POSTs to CHAT
    ("malformed JSON", b'{"model": "sim/fast", "messages": [', {}),
    ("not an object", b"[1, 2, 3]", {}),
    ("not UTF-8", b'{"model": "\xff\xfe"}', {}),
    ("messages a string", b'{"model": "sim/fast", "messages": "hi"}', {}),
    ("model a number", _chat(model=5), {}),
    ("max_tokens a string", _chat(max_tokens="ten"), {}),
    ("temperature an object", _chat(temperature={"a": 1}), {}),
    ("stream a string", _chat(stream="yes"), {}),
    ("no messages", _chat(messages=[]), {}),
    ("unknown role", _chat(messages=[{"role": "wizard", "content": "hi"}]), {}),
    ("content part of unknown type", _chat(messages=[{"role": "user", "content": [{"type": "x"}]}]), {}),
    ("schema minimum > maximum", _schema({"type": "integer", "minimum": 10, "maximum": 1}), {}),
    ("schema minimum a string", _schema({"minimum": "abc"}), {}),
    ("schema type a number", _schema({"type": 5}), {}),
    ("schema properties a list", _schema({"properties": [1, 2]}), {}),
    ("schema enum an object", _schema({"enum": {"a": 1}}), {}),
    ("schema nested 480 levels", _raw('"response_format": {"type": "json_schema", "json_schema": '
                                      f'{{"name": "s", "schema": {NESTED}}}}}'), {}),
    ("schema a list", _schema([1, 2]), {}),
    ("json_schema missing", _chat(response_format={"type": "json_schema"}), {}),
    ("tool minimum > maximum", _tool({"type": "object", "required": ["n"], "properties":
                                      {"n": {"type": "integer", "minimum": 10, "maximum": 1}}}), {}),
    ("tool items a string", _tool({"type": "object", "required": ["l"],
                                   "properties": {"l": {"type": "array", "items": "x"}}}), {}),
    ("tool parameters a list", _tool([1]), {}),
    ("max_tokens 41 digits", _chat(max_tokens=10**40), {}),
    ("seed 41 digits", _chat(seed=10**40), {}),
    ("temperature 1e400", _raw('"temperature": 1e400'), {}),
    ("integer of 5,000 digits", _raw('"seed": ' + "9" * 5000), {}),
    ("top_p -1e308", _chat(top_p=-1e308), {}),
    ("unknown model", _chat(model="nobody/nothing"), {}),
    ("empty model", _chat(model=""), {}),
    ("provider order a string", _chat(provider={"order": "sim"}), {}),
    ("provider order numbers", _chat(provider={"order": [5]}), {}),
    ("provider sort unknown", _chat(provider={"sort": "random"}), {}),
    ("provider max_price negative", _chat(provider={"max_price": {"prompt": -1}}), {}),
    ("provider max_price a string", _chat(provider={"max_price": {"prompt": "cheap"}}), {}),
    ("provider only an empty name", _chat(provider={"only": [""]}), {}),
    ("models a string", _chat(models="sim/fast"), {}),
    ("Content-Length abc", _chat(), {"Content-Length": "abc"}),
    ("Content-Length negative", _chat(), {"Content-Length": "-5"}),
    ("Content-Length twice", _chat(), {"Content-Length": "1, 2"}),
    ("text/plain body", _chat(), {"Content-Type": "text/plain"}),
    ("Bearer with a control character", _chat(), {"Authorization": "Bearer sk-sy-\x7f"}),
]
ADMIN_INPUTS = [  # (name, method, path, body): with the management key
    ("key limit a string", "POST", "/api/v1/keys", b'{"name": "x", "limit": "abc"}'),
    ("key limit 1e999", "POST", "/api/v1/keys", b'{"name": "x", "limit": 1e999}'),
    ("key name a number", "POST", "/api/v1/keys", b'{"name": 5}'),
    ("key hash malformed", "GET", "/api/v1/keys/zzz", b""),
    ("generation id empty", "GET", "/api/v1/generation?id=", b""),
    ("generation id unknown", "GET", "/api/v1/generation?id=gen-nothing", b""),
]


def bad_inputs(tmp: Path) -> dict[str, Any]:
    """Each request on the same keep-alive connection. A reset (no answer at all) is put down to the request
    before it, whose answer left the connection dead; the request is then sent again on a new connection."""
    with Stack(tmp / "bad-inputs") as s:
        requests = [(name, "POST", CHAT, body, {**bearer(s.dev), **headers})
                    for name, body, headers in BAD_INPUTS]
        requests += [(name, method, path, body, bearer(s.admin if "keys" in path else s.dev))
                     for name, method, path, body in ADMIN_INPUTS]
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        statuses: dict[str, int | str] = {}
        resets, previous = [], "(none)"
        for name, method, path, body, headers in requests:
            for attempt in (1, 2):
                try:
                    conn.request(method, path, body=body or None, headers={"Content-Type": "application/json",
                                                                           **headers})
                    r = conn.getresponse()
                    r.read()
                    statuses[name] = r.status
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    statuses[name] = type(e).__name__
                    if attempt == 1:
                        resets.append(f"after {previous}: {type(e).__name__}")
            previous = name
        conn.close()
        alive = s.chat(s.dev, ORDINARY).status_code
    over_500 = [f"{name}: {st}" for name, st in statuses.items() if not isinstance(st, int) or st >= 500]
    return {"requests": len(requests), "responses_5xx": len(over_500), "connection_resets": len(resets),
            "ordinary_call_after": alive, "5xx": over_500, "resets": resets, "statuses": statuses}


# -- 5. records lost when the stack is stopped by a signal ---------------------------------------------------
def lost_on(sig: signal.Signals, state: Path, calls: int = 300) -> dict[str, Any]:
    """`calls` answered calls (16 at a time), `sig` to the process group the moment the last is answered, then
    a restart on the same state dir and a look-up of every answered call's generation id."""
    with Stack(state) as s:
        kill = lambda: os.killpg(s.proc.pid, sig)  # noqa: E731
        ids = [r.json()["id"] for r in asyncio.run(fire(s.url, s.dev, ORDINARY, calls, 16, then=kill))
               if r.status_code == 200]
        stopped = s.wait_gone()
    with Stack(state) as s:
        found = sum(s.http.get("/api/v1/generation", params={"id": i}, headers=bearer(s.dev)).is_success
                    for i in ids)
    return {"answered": len(ids), "found_after_restart": found, "lost": len(ids) - found, **stopped}


def signals(tmp: Path) -> dict[str, Any]:
    return {sig.name: lost_on(sig, tmp / sig.name.lower()) for sig in (signal.SIGTERM, signal.SIGINT)}


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "poison": poison, "overshoot": overshoot, "upstream": upstream, "bad_inputs": bad_inputs,
    "signals": signals}


def summary(report: dict[str, Any]) -> list[tuple[str, Any, str, bool | None]]:
    """(figure, measured, target, met) for the table; met is None for a figure shown for information."""
    rows: list[tuple[str, Any, str, bool | None]] = []
    for name, r in report.items():
        if "error" in r:
            rows.append((f"{name}: did not run", r["error"], "runs", False))
        elif name == "poison":
            rows.append(("metering backlog 15 s after a 7e-06 call + 50", r["backlog_after_15s"], "0",
                         r["backlog_after_15s"] == 0))
            rows.append(("  dead letters (/health, if it reports them)", r["dead_letters"], "", None))
        elif name == "overshoot":
            rows.append(("spend overshoot, 200 concurrent, 20-call limit", r["overshoot"], "≤ 1.0",
                         r["overshoot"] <= 1.0))
            served = f"{r['served']} / {r['refused_402']} / {r['other']}"
            rows.append(("  served / refused 402 / other", served, f"≥ {r['calls_that_fit'] // 2} served "
                         f"({r['calls_that_fit']} fit)", r["served"] >= r["calls_that_fit"] // 2))
            one = r["single_call"]
            rows.append(("  one schema call's cost / its $0.01 limit", one["overshoot"], "≤ 1.0",
                         one["overshoot"] <= 1.0))
        elif name == "upstream":
            for lie, x in r.items():
                measured = f"{x['status']}, {x['cost']}, {x['key_usage']}"
                rows.append((f"upstream usage {lie}: status, cost, key use", measured, "no 500, 0 ≤ use < 1",
                             charged_sanely(x)))
                reads = (x["get_key"], x["admin_get"], x["admin_patch"], x["next_call"])
                rows.append(("  then GET /key, admin GET, PATCH, a call", " ".join(map(str, reads)),
                             "200 200 200 200", reads == (200,) * 4))
        elif name == "bad_inputs":
            rows.append((f"{r['requests']} bad inputs: responses ≥ 500", r["responses_5xx"], "0",
                         r["responses_5xx"] == 0))
            rows.append(("  connection resets", r["connection_resets"], "0", r["connection_resets"] == 0))
        elif name == "signals":
            for sig, x in r.items():
                rows.append((f"records lost on {sig} after {x['answered']} answered", x["lost"], "0",
                             x["lost"] == 0 and not x["killed"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SCENARIOS, action="append",
                        help="run this scenario only (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="switchyard-reliability-") as tmp:
        for name in args.only or SCENARIOS:
            print(f"{name}…", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                report[name] = SCENARIOS[name](Path(tmp))
            except Exception as e:  # one broken scenario must not hide the others' figures
                report[name] = {"error": f"{type(e).__name__}: {e}"}
            seconds[name] = round(time.monotonic() - started, 1)
    rows = [(figure, str(value), target, {True: "✓", False: "✗", None: ""}[met])
            for figure, value, target, met in summary(report)]
    widths = [max(len(row[i]) for row in rows + [("figure", "measured", "target", "")]) + 2 for i in range(3)]
    for row in [("figure", "measured", "target", "")] + rows:
        print("".join(cell.ljust(width) for cell, width in zip(row, widths)) + row[3])
    text = json.dumps({**report, "seconds": seconds}, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
