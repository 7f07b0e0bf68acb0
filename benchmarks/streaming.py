"""What relaying a stream costs the gateway, per chunk, against the shared fake streaming upstream.

    make bench            (or: python -m benchmarks.streaming --seconds 8)

Starts ../shared/bench/fake_stream_upstream.py (100 content chunks, a finish chunk, a usage chunk, [DONE]) and
`python -m infra.local` (auth and metering on) with an `openai`-kind provider pointing at it. A small client on
raw asyncio sockets (uvloop) runs 32 concurrent streams for a while and checks every stream arrives whole and in
order. Three cases: chunks in bulk (0 ms between them: the relay's CPU cost when reads carry many events), chunks
one by one (1 ms apart: one read, one frame each), and the time to first chunk at 1 connection, direct and
through the gateway. CPU is the gateway process's own (utime + stime from /proc), per relayed chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.gateway import bench_stack, wait

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT.parent / "shared" / "bench" / "fake_stream_upstream.py"
CHUNKS = 100
_CONTENT = re.compile(rb'"content":"tok(\d+) ')
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def request_bytes(path: str, model: str, key: str, port: int) -> bytes:
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def one_stream(port: int, payload: bytes) -> tuple[float, float, bool]:
    """(seconds to the first data line, seconds to [DONE], whole and in order) over a fresh connection."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    first, buffer = None, b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if first is None and b"data: {" in data:
            first = time.perf_counter() - start
        buffer += data
        if b"data: [DONE]" in buffer:
            break
    done = time.perf_counter() - start
    writer.close()
    ordered = [int(n) for n in _CONTENT.findall(buffer)] == list(range(CHUNKS))
    return first or done, done, ordered


async def run_for(port: int, payload: bytes, concurrency: int, seconds: float) -> list[tuple[float, float, bool]]:
    results: list[tuple[float, float, bool]] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            results.append(await one_stream(port, payload))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def configure(up_port: int, delay_ms: float) -> None:
    urllib.request.urlopen(f"http://127.0.0.1:{up_port}/_config?delay_ms={delay_ms}&chunks={CHUNKS}").read()


def measure(gw_pid: int, port: int, payload: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    (user, system), wall = cpu_times(gw_pid), time.perf_counter()
    results = asyncio.run(run_for(port, payload, concurrency, seconds))
    after, wall = cpu_times(gw_pid), time.perf_counter() - wall
    user, system = after[0] - user, after[1] - system
    cpu, chunks = user + system, max(len(results) * CHUNKS, 1)
    streams = len(results)
    return {"streams_per_s": round(streams / wall, 1), "chunks_per_s": round(streams * CHUNKS / wall),
            "gateway_cpu_us_per_chunk": round(cpu / chunks * 1e6, 1),
            "user_us_per_chunk": round(user / chunks * 1e6, 1), "system_us_per_chunk": round(system / chunks * 1e6, 1),
            "gateway_cpu_share": round(cpu / wall, 2), "p50_s": round(statistics.median(r[1] for r in results), 4),
            "incomplete": sum(1 for r in results if not r[2])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    if not FAKE.exists():
        sys.exit(f"missing {FAKE}")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    with bench_stack(FAKE, "0", str(CHUNKS)) as stack:
        up_port, gw_port, state, gw = stack.up_port, stack.gw_port, stack.state, stack.gateway
        wait(f"http://127.0.0.1:{up_port}/health")
        key = (state / "dev-key").read_text().strip()
        through = request_bytes("/api/v1/chat/completions", "bench/model", key, gw_port)
        direct = request_bytes("/v1/chat/completions", "bench-model", "x", up_port)
        configure(up_port, 0)
        asyncio.run(run_for(gw_port, through, 8, 1.5))  # warm up
        report: dict[str, object] = {"bulk": measure(gw.pid, gw_port, through, 32, args.seconds)}
        configure(up_port, 1)
        report["one_by_one"] = measure(gw.pid, gw_port, through, 32, args.seconds)
        configure(up_port, 0)
        ttft = {}
        for name, port, payload in (("direct", up_port, direct), ("gateway", gw_port, through)):
            results = asyncio.run(run_for(port, payload, 1, min(args.seconds, 4)))
            ttft[name] = statistics.median(r[0] for r in results) * 1000
        report["added_ttft_ms"] = round(ttft["gateway"] - ttft["direct"], 3)
        print(json.dumps(report, indent=2))
        b, o = report["bulk"], report["one_by_one"]
        print(f"\n32 concurrent streams of {CHUNKS} chunks: {b['streams_per_s']} streams/s in bulk at "  # type: ignore[index]
              f"{b['gateway_cpu_us_per_chunk']} µs a chunk; one by one {o['gateway_cpu_us_per_chunk']} µs a "  # type: ignore[index]
              f"chunk (target ≤ 15); added time to first chunk {report['added_ttft_ms']} ms; "
              f"{b['incomplete'] + o['incomplete']} streams incomplete")  # type: ignore[index]


if __name__ == "__main__":
    main()
