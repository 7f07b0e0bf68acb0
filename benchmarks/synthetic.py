"""The synthetic-data engine's speed and memory (issue 12, point 8).

    python -m benchmarks.synthetic            (make bench-synthetic; about 2 minutes)

1. Throughput through the gateway: `python -m infra.local` with a sim model answering after 50 ms, a job of
   one sampler and one llm-text column with max_parallel_requests 64, made by the engine in this process
   over HTTP to the gateway. The concurrency bound is 64 / 0.05 s = 1,280 LLM cells a second; the target is
   80% of it (≥ 1,000). Every call is metered by the gateway as usual (moto, one request at a time).
2. The engine's own CPU a cell: this process's CPU time (user + system, the HTTP client included) over the
   cells it made in run 1; and without HTTP, the same spec against an in-process client that answers at once.
3. Memory over 100,000 rows (the in-process client): this process's peak RSS after 10 k, 50 k and 100 k
   rows, written as row groups to a directory store; flat means the rows are not kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gateway import free_port, wait

ROOT = Path(__file__).resolve().parent.parent


def spec(n: int, model: str, parallel: int, buffer: int = 256) -> dict[str, Any]:
    return {"name": "bench", "num_records": n, "seed": 1, "buffer_size": buffer,
            "model_configs": [{"alias": "m", "model": model,
                               "inference_parameters": {"max_tokens": 16, "max_parallel_requests": parallel}}],
            "columns": [{"name": "topic", "column_type": "sampler", "sampler_type": "category",
                         "params": {"values": ["tax", "leases", "wills", "patents"]}},
                        {"name": "note", "column_type": "llm-text", "model_alias": "m",
                         "prompt": "Write one line about {{ topic }} law."}]}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class InstantClient:
    """Answers every call at once, in-process: the engine alone."""

    calls = 0

    async def complete(self, body: dict[str, Any], window: Any, timeout: float | None = None) -> Any:
        from shared.synthetic.client import Answer

        async with window:
            self.calls += 1
            await asyncio.sleep(0)
        return Answer(content=f"A line about {body['messages'][-1]['content'][-12:]}", model=body["model"],
                      provider="sim", request_id=f"gen-{self.calls}", prompt_tokens=12, completion_tokens=8,
                      cost=1e-6, finish_reason="stop", heal_status=None)

    def close(self) -> None:
        pass


def prepared(data: dict[str, Any]) -> Any:
    from shared.synthetic import jobs

    return jobs.prepare(data, reader=jobs.SeedReader(None), known_models=None)


async def through_gateway(url: str, key: str, n: int, parallel: int, out: Path) -> dict[str, Any]:
    from shared.lake.store import LocalStore
    from shared.synthetic import jobs
    from shared.synthetic.client import GatewayClient

    job = prepared(spec(n, "sim/bench-50ms", parallel))
    store = LocalStore(out)
    jobs.Outputs(store, job.id).put_json("metadata.json", jobs.new_metadata(job, execution="bench"))
    client = GatewayClient(url, key, job.id)
    c0, t0 = cpu(), time.monotonic()
    engine = await jobs.run_groups(job, store, client)
    wall, used = time.monotonic() - t0, cpu() - c0
    client.close()
    cells = engine.progress.rows_done
    return {"cells": cells, "failed_attempts": engine.progress.rows_failed, "seconds": round(wall, 2),
            "cells_per_s": round(cells / wall), "bound_per_s": round(parallel / 0.05),
            "share_of_bound": round(cells / wall / (parallel / 0.05), 3),
            "engine_cpu_us_per_cell": round(used / cells * 1e6, 1), "retries": client.retried}


async def in_process(n: int, out: Path, marks: tuple[int, ...] = ()) -> dict[str, Any]:
    from shared.lake.store import LocalStore
    from shared.synthetic import jobs

    job = prepared(spec(n, "sim/fast", 64, buffer=1000))
    store = LocalStore(out)
    jobs.Outputs(store, job.id).put_json("metadata.json", jobs.new_metadata(job, execution="bench"))
    rss: dict[str, float] = {}
    client = InstantClient()

    def progress(engine: Any) -> None:
        done = engine.progress.rows_done
        for mark in marks:
            if done >= mark and str(mark) not in rss:
                rss[str(mark)] = round(rss_mb(), 1)

    c0, t0 = cpu(), time.monotonic()
    engine = await jobs.run_groups(job, store, client, on_progress=progress)  # type: ignore[arg-type]
    wall, used = time.monotonic() - t0, cpu() - c0
    rows = jobs.read_rows(store, job.id).num_rows
    return {"rows": rows, "seconds": round(wall, 2), "engine_cpu_us_per_cell": round(used / client.calls * 1e6, 1),
            "rss_mb_at_rows": rss, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rows_written": rows == n and engine.progress.rows_done == n}


def main() -> None:
    from shared.synthetic.client import run_loop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=8000)
    parser.add_argument("--parallel", type=int, default=64)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="switchyard-synth-bench-"))
    config = work / "bench.yaml"
    config.write_text("models: [{id: sim/bench-50ms, provider: sim, context_length: 8192, max_output: 64, "
                      "pricing: {prompt: 1, completion: 2}, sim: {latency_ms: 50, reply_tokens: 8}}]\n")
    port = free_port()
    env = {**os.environ, "SWITCHYARD_LAKE_EXPORT": "0", "SWITCHYARD_FLOWS": "0", "PORT": str(port),
           "SWITCHYARD_STATE_DIR": str(work / "state"), "SWITCHYARD_CONFIG": str(config)}
    gw = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait(f"http://127.0.0.1:{port}/health")
        key = (work / "state" / "dev-key").read_text().strip()
        url = f"http://127.0.0.1:{port}/api/v1"
        run_loop(through_gateway(url, key, 500, args.parallel, work / "warm"))  # warm up both sides
        gateway = run_loop(through_gateway(url, key, args.cells, args.parallel, work / "out"))
    finally:
        gw.send_signal(2)
        gw.wait(timeout=30)
    alone = run_loop(in_process(args.rows, work / "mem", marks=(10_000, 50_000, 100_000)))
    report = {"through_gateway": gateway, "engine_alone": alone}
    print(json.dumps(report, indent=2))
    print(f"\n{gateway['cells_per_s']} LLM cells/s through the gateway at {args.parallel} parallel, 50 ms a call "
          f"({gateway['share_of_bound']:.0%} of the {gateway['bound_per_s']}/s bound; target ≥ 80%); engine CPU "
          f"{gateway['engine_cpu_us_per_cell']} µs a cell with HTTP, {alone['engine_cpu_us_per_cell']} µs alone "
          f"(Data Designer: ~3,000); RSS at 10k/50k/100k rows: {alone['rss_mb_at_rows']} MB")


if __name__ == "__main__":
    main()
