"""The relay's cost a chunk in instructions (callgrind), which a shared machine's load does not move.

    python -m benchmarks.stream_instructions [--streams 10] [--chunks 100] [--delay-ms 5] [--concurrency 1] [--root DIR]

The same stack as benchmarks/streaming.py (../shared/bench/fake_stream_upstream.py behind `python -m infra.local`,
auth and metering on), with the gateway process run under `valgrind --tool=callgrind`, instrumentation switched on
only after start-up and a warm-up. Then `--streams` streams of `--chunks` chunks, `--delay-ms` apart (one by
one: one upstream read and one frame a chunk), `--concurrency` at a time; instrumentation off, and the counts
of each thread read back. Prints user-space instructions a relayed chunk: the gateway's main thread and all
its threads (the metering thread writes the usage records). Kernel time is not counted: see streaming.py for
CPU. Repeat runs agree within ~2%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gateway import free_port, wait
import urllib.request

from benchmarks.streaming import FAKE, one_stream, request_bytes, run_for

ROOT = Path(__file__).resolve().parent.parent


def thread_totals(out_dir: Path, pid: int) -> dict[str, int]:
    """Instructions counted per thread in the dumps callgrind wrote for `pid`."""
    totals: dict[str, int] = {}
    for path in out_dir.glob(f"callgrind.out.{pid}*"):
        text = path.read_text(errors="replace")
        thread = re.search(r"^thread: (\d+)", text, re.M)
        counts = [int(n) for n in re.findall(r"^(?:summary|totals): (\d+)", text, re.M)]
        if counts:
            name = thread[1] if thread else "1"
            totals[name] = totals.get(name, 0) + max(counts)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--plain", type=int, default=0, metavar="N",
                        help="instead: N non-streamed calls on one keep-alive connection (instructions a call)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree to run (another checkout, this venv)")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind files (for callgrind_annotate)")
    args = parser.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="switchyard-callgrind-"))
    up_port, gw_port = free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    config = state / "bench.yaml"
    config.write_text(f"providers: [{{id: bench, kind: openai, base_url: 'http://127.0.0.1:{up_port}/v1'}}]\n"
                      "models: [{id: bench/model, provider: bench, upstream_model: bench-model, "
                      "pricing: {prompt: 1, completion: 2}}]\n")
    env = {"SWITCHYARD_LAKE_EXPORT": "0", "SWITCHYARD_FLOWS": "0", **os.environ, "PORT": str(gw_port),
           "SWITCHYARD_STATE_DIR": str(state), "SWITCHYARD_CONFIG": str(config)}
    fake = subprocess.Popen([sys.executable, str(FAKE), str(up_port), "0", str(args.chunks)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gw = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
                           f"--callgrind-out-file={out_dir}/callgrind.out.%p", sys.executable, "-m", "infra.local"],
                          cwd=args.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    try:
        wait(f"http://127.0.0.1:{up_port}/health")
        wait(f"http://127.0.0.1:{gw_port}/health", timeout=600)
        key = (state / "dev-key").read_text().strip()
        payload = request_bytes("/api/v1/chat/completions", "bench/model", key, gw_port)
        def configure(delay_ms: float) -> None:
            urllib.request.urlopen(f"http://127.0.0.1:{up_port}/_config?delay_ms={delay_ms}&chunks={args.chunks}").read()

        configure(0)
        asyncio.run(run_for(gw_port, payload, 2, 20))  # warm up (slow under valgrind)
        configure(args.delay_ms)
        time.sleep(1)
        subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
        done: list[tuple[float, float, bool]] = []

        async def streams() -> None:
            left = args.streams

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    done.append(await one_stream(gw_port, payload))

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))

        if args.plain:
            from http.client import HTTPConnection
            conn = HTTPConnection("127.0.0.1", gw_port, timeout=60)
            body = json.dumps({"model": "bench/model", "messages": [{"role": "user", "content": "hi"}]})
            for _ in range(args.plain):
                conn.request("POST", "/api/v1/chat/completions", body=body,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                conn.getresponse().read()
            conn.close()
        else:
            asyncio.run(streams())
        time.sleep(1)  # the usage records' writes, on the metering thread
        subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
        totals = thread_totals(out_dir, gw.pid)
        chunks = args.plain or args.streams * args.chunks  # (calls, with --plain)
        main_thread = totals.get("1", 0)
        report = {"streams": args.streams, "chunks": args.chunks, "delay_ms": args.delay_ms,
                  "incomplete": sum(1 for r in done if not r[2]) if args.chunks == 100 else None,
                  "instructions_per_chunk_main": round(main_thread / chunks),
                  "instructions_per_chunk_all": round(sum(totals.values()) / chunks),
                  "per_thread": totals, "files": str(out_dir)}
        print(json.dumps(report, indent=2))
    finally:
        os.killpg(gw.pid, signal.SIGINT)
        fake.send_signal(signal.SIGINT)
        try:
            gw.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(gw.pid, signal.SIGKILL)
        fake.wait(timeout=10)
        if not args.keep:
            for path in out_dir.glob("*"):
                path.unlink()
            out_dir.rmdir()


if __name__ == "__main__":
    main()
