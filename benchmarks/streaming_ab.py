"""The streaming benchmark for two trees side by side, in alternated windows (a shared machine drifts by ±15%
between minutes, so a figure is only compared with one measured in the window next to it).

    python -m benchmarks.streaming_ab --base /tmp/base-tree [--rounds 6] [--seconds 4]

`--base` is another checkout (e.g. `git archive <commit> | tar -x -C DIR`), run with this tree's venv. Both
stacks are started once (benchmarks/streaming.py's: the shared fake streaming upstream behind
`python -m infra.local`); each round measures, for each tree in turn (the order swapped every round), chunks in
bulk and one by one at 32 concurrent streams and the added time to first chunk. Prints each tree's median and
range of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from contextlib import ExitStack
from pathlib import Path

from benchmarks.gateway import ROOT, bench_stack, wait
from benchmarks.streaming import CHUNKS, FAKE, configure, measure, request_bytes, run_for


def ttft_ms(port: int, payload: bytes, seconds: float) -> float:
    return statistics.median(r[0] for r in asyncio.run(run_for(port, payload, 1, seconds))) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    trees = {"base": args.base.resolve(), "this": ROOT}
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    with ExitStack() as stacks:
        running = {}
        for name, root in trees.items():
            stack = stacks.enter_context(bench_stack(FAKE, "0", str(CHUNKS), root=root))
            wait(f"http://127.0.0.1:{stack.up_port}/health")
            key = (stack.state / "dev-key").read_text().strip()
            running[name] = (stack, request_bytes("/api/v1/chat/completions", "bench/model", key, stack.gw_port),
                             request_bytes("/v1/chat/completions", "bench-model", "x", stack.up_port))
            configure(stack.up_port, 0)
            asyncio.run(run_for(stack.gw_port, running[name][1], 8, 1.5))  # warm up
        order = list(trees)
        for round_ in range(args.rounds):
            for name in order:
                stack, through, direct = running[name]
                add = figures[name].setdefault
                configure(stack.up_port, 0)
                bulk = measure(stack.gateway.pid, stack.gw_port, through, 32, args.seconds)
                configure(stack.up_port, 1)
                one = measure(stack.gateway.pid, stack.gw_port, through, 32, args.seconds)
                configure(stack.up_port, 0)
                added = ttft_ms(stack.gw_port, through, 1.5) - ttft_ms(stack.up_port, direct, 1.5)
                add("bulk_us_per_chunk", []).append(bulk["gateway_cpu_us_per_chunk"])
                add("one_by_one_us_per_chunk", []).append(one["gateway_cpu_us_per_chunk"])
                add("one_by_one_user_us", []).append(one["user_us_per_chunk"])
                add("one_by_one_system_us", []).append(one["system_us_per_chunk"])
                add("bulk_streams_per_s", []).append(bulk["streams_per_s"])
                add("added_ttft_ms", []).append(round(added, 3))
                add("incomplete", []).append(bulk["incomplete"] + one["incomplete"])
                print(f"round {round_ + 1} {name}: bulk {bulk['gateway_cpu_us_per_chunk']} µs, one by one "
                      f"{one['gateway_cpu_us_per_chunk']} µs ({one['user_us_per_chunk']} user), "
                      f"{bulk['streams_per_s']} streams/s, +{added:.3f} ms", flush=True)
            order.reverse()
    summary = {name: {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} if k != "incomplete"
                      else sum(v) for k, v in values.items()} for name, values in figures.items()}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
