"""Response Healing against json_repair (PyPI `json-repair`), per corpus, for streams, and end to end.

    python -m benchmarks.healing [--no-e2e]

1. Per corpus, side by side: the share of cases each engine repairs to the expected value, and MB/s over the
   broken inputs (median of 5 timed runs, in process CPU time). Corpora: tests/healing_corpus.py's (ours:
   truncations are judged prefix-consistent, and `heal` is told `truncated=` as the gateway is, from
   finish_reason; json_repair has no such input); json_repair's own test vectors, fetched from PyPI now (benchmarks/healing_corpora.py: which,
   and why); misplaced closers whose repair the text determines (tests/healing_corpus.py).
2. Valid input: MB/s (ours is one orjson parse).
3. Streams: the share of each corpus a `StreamHealer` heals when the text comes in deltas of 1-9 characters,
   the characters held back at a delta's end (the delay: they go out with a later delta), and µs per delta.
4. End to end: `python -m infra.local`, the `sim/broken-json` model asked for JSON through the openai SDK, and
   the share of answers a client cannot json.loads with healing off and on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import json_repair
import orjson

from benchmarks.healing_corpora import JSON_REPAIR_TESTS, json_repair_vectors
from shared.healing import heal
from shared.healing.stream import StreamHealer
from tests.healing_corpus import BASES, TRUNCATED, cases, misplaced_closers, prefix_consistent

ROOT = Path(__file__).resolve().parent.parent


Engine = Callable[[str, bool], "str | None"]


def ours(text: str, truncated: bool = False) -> str | None:
    result = heal(text, truncated=truncated)
    return None if result.status == "failed" else result.text


def theirs(text: str, truncated: bool = False) -> str | None:  # json_repair cannot be told of a truncation
    try:
        return json_repair.repair_json(text, skip_json_loads=False)
    except Exception:  # it can raise (e.g. RecursionError); count that as a failed repair
        return None


def correct(name: str, text: str | None, want: object) -> bool:
    if text is None:
        return False
    try:
        got = json.loads(text)
    except (ValueError, RecursionError):
        return False
    if want is TRUNCATED:
        return prefix_consistent(got, BASES[int(name.split(":")[0])])
    return got == want


def rate(engine: Engine, corpus: list[tuple[str, str, Any]]) -> tuple[float, list[str]]:
    wrong = [name for name, text, want in corpus if not correct(name, engine(text, want is TRUNCATED), want)]
    return 1 - len(wrong) / len(corpus), wrong


def throughput(engine: Engine, corpus: list[tuple[str, str, Any]], runs: int = 5) -> float:
    """MB/s: the median of `runs` timed passes over the corpus (each repeated to last at least 0.2 s), timed in
    this process's CPU time, so that other work on a shared machine does not count against either engine."""
    work = [(text, want is TRUNCATED) for _, text, want in corpus]
    size = sum(len(text.encode()) for text, _ in work)
    start, repeat = time.process_time(), 0
    while time.process_time() - start < 0.05 or repeat == 0:
        for text, truncated in work:
            engine(text, truncated)
        repeat += 1
    repeat = max(1, int(repeat * 0.2 / max(time.process_time() - start, 1e-9)))
    speeds = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(repeat):
            for text, truncated in work:
                engine(text, truncated)
        speeds.append(size * repeat / (time.process_time() - start) / 1e6)
    return statistics.median(speeds)


def corpora() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {
        "switchyard (tests/healing_corpus.py)": {"cases": cases()},
        "misplaced closers, determined (tests/healing_corpus.py)": {"cases": misplaced_closers()},
    }
    name = f"json_repair {JSON_REPAIR_TESTS} test vectors (PyPI sdist, fetched now)"
    try:
        vectors, left_out = json_repair_vectors()
        found[name] = {"cases": vectors, "left_out": left_out}
    except OSError as e:  # no network: say so, and measure the rest
        found[name] = {"cases": [], "unavailable": f"PyPI could not be reached ({e}); not measured"}
    return found


def compare(corpus: list[tuple[str, str, Any]]) -> dict[str, Any]:
    our_rate, our_wrong = rate(ours, corpus)
    their_rate, _ = rate(theirs, corpus)
    our_speed, their_speed = throughput(ours, corpus), throughput(theirs, corpus)
    return {
        "cases": len(corpus),
        "repair_rate": {"switchyard": round(our_rate, 4), "json_repair": round(their_rate, 4)},
        "broken_MB_per_s": {"switchyard": round(our_speed, 2), "json_repair": round(their_speed, 2),
                            "ratio": round(our_speed / their_speed, 2)},
        "switchyard_wrong": our_wrong[:8],
    }


def streamed(corpus: list[tuple[str, str, Any]], seed: int = 7) -> dict[str, Any]:
    """Each case fed to a StreamHealer in deltas of 1-9 characters: the share healed to the expected value, the
    characters held back at a delta's end, and the time a delta takes."""
    rng = random.Random(seed)
    healed, held, deltas, elapsed = 0, [], 0, 0.0
    for name, text, want in corpus:
        parts, i = [], 0
        while i < len(text):
            step = rng.randint(1, 9)
            parts.append(text[i:i + step])
            i += step
        healer, sent = StreamHealer(), []
        start = time.perf_counter()
        for part in parts:
            sent.append(healer.feed(part))
            held.append(healer.holding)
        suffix, status, _ = healer.finish(truncated=want is TRUNCATED)
        elapsed += time.perf_counter() - start
        deltas += len(parts)
        healed += status == "healed" and correct(name, "".join(sent) + suffix, want)
    held.sort()
    return {"healed_share": round(healed / len(corpus), 4),
            "held_chars_at_a_delta_end": {"median": held[len(held) // 2], "p99": held[int(len(held) * 0.99)],
                                          "max": held[-1]},
            "us_per_delta": round(elapsed / deltas * 1e6, 2)}


def end_to_end(requests: int = 200) -> dict[str, float]:
    import openai

    from infra.local import free_port

    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="switchyard-heal-"))
    proc = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            env={**os.environ, "PORT": str(port), "SWITCHYARD_STATE_DIR": str(state),
                                 "SWITCHYARD_FLOWS": "0", "SWITCHYARD_LAKE_EXPORT": "0"})  # the gateway alone
    try:
        for _ in range(300):
            try:
                import urllib.request
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/api/v1",
                               api_key=(state / "dev-key").read_text().strip(), max_retries=0)
        out = {}
        for label, heal_json in (("healing_off", False), ("healing_on", True)):
            failures = 0
            for seed in range(requests):
                answer = client.chat.completions.create(
                    model="sim/broken-json", seed=seed, response_format={"type": "json_object"},
                    messages=[{"role": "user", "content": "Give me the answer as JSON"}],
                    extra_body={"heal_json": heal_json})
                try:
                    json.loads(answer.choices[0].message.content)
                except ValueError:
                    failures += 1
            out[f"{label}_unparseable"] = failures / requests
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run through infra.local")
    args = parser.parse_args()
    report: dict[str, Any] = {"corpora": {}, "streams": {}}
    for name, corpus in corpora().items():
        if not corpus["cases"]:
            report["corpora"][name] = corpus["unavailable"]
            continue
        report["corpora"][name] = {**compare(corpus["cases"]), **({"left_out": corpus["left_out"]}
                                                                   if "left_out" in corpus else {})}
        report["streams"][name] = streamed(corpus["cases"])
    valid = [(f"valid:{k}", json.dumps(b, ensure_ascii=False), b) for k, b in enumerate(BASES)] + \
        [(f"valid-indented:{k}", json.dumps(b, indent=2), b) for k, b in enumerate(BASES)]
    report["valid_MB_per_s"] = {"switchyard": round(throughput(ours, valid), 1),
                                "orjson_loads": round(throughput(lambda t, _: orjson.loads(t), valid), 1),
                                "json_repair": round(throughput(theirs, valid), 2)}
    if not args.no_e2e:
        report["end_to_end_sim_broken_json"] = end_to_end()
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
