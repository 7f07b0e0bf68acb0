"""Response Healing against json_repair (PyPI `json-repair`) on the same corpus, and end to end.

    python -m benchmarks.healing

1. Repair rate: the share of tests/healing_corpus.py's cases each engine repairs to the expected value (for
   truncations: a prefix-consistent part of the original, with no number changed).
2. Speed: MB/s over the broken corpus, and over valid documents (where ours takes the orjson fast path).
3. End to end: `python -m infra.local`, the `sim/broken-json` model asked for JSON through the openai SDK, and
   the share of answers a client cannot json.loads with healing off and on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import json_repair
import orjson

from shared.healing import heal
from tests.healing_corpus import BASES, TRUNCATED, cases, prefix_consistent

ROOT = Path(__file__).resolve().parent.parent


def ours(text: str) -> str | None:
    result = heal(text)
    return None if result.status == "failed" else result.text


def theirs(text: str) -> str | None:
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


def rate(engine, corpus) -> tuple[float, list[str]]:
    wrong = [name for name, text, want in corpus if not correct(name, engine(text), want)]
    return 1 - len(wrong) / len(corpus), wrong


def throughput(engine, texts: list[str], rounds: int) -> float:
    size = sum(len(t.encode()) for t in texts) * rounds
    start = time.perf_counter()
    for _ in range(rounds):
        for t in texts:
            engine(t)
    return size / (time.perf_counter() - start) / 1e6


def end_to_end(requests: int = 200) -> dict[str, float]:
    import openai

    from infra.local import free_port

    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="switchyard-heal-"))
    proc = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            env={**os.environ, "PORT": str(port), "SWITCHYARD_STATE_DIR": str(state)})
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
        proc.wait(timeout=30)


def main() -> None:
    corpus = cases()
    broken = [text for _, text, _ in corpus]
    valid = [json.dumps(b, ensure_ascii=False) for b in BASES] + [json.dumps(b, indent=2) for b in BASES]
    our_rate, our_wrong = rate(ours, corpus)
    their_rate, their_wrong = rate(theirs, corpus)
    report = {
        "corpus_cases": len(corpus),
        "repair_rate": {"switchyard": round(our_rate, 4), "json_repair": round(their_rate, 4)},
        "broken_MB_per_s": {"switchyard": round(throughput(ours, broken, 5), 2),
                            "json_repair": round(throughput(theirs, broken, 2), 2)},
        "valid_MB_per_s": {"switchyard": round(throughput(ours, valid, 200), 1),
                           "orjson_loads": round(throughput(orjson.loads, valid, 200), 1),
                           "json_repair": round(throughput(theirs, valid, 20), 2)},
        "json_repair_wrong_kinds": sorted({n.split(":")[1].split("@")[0] for n in their_wrong}),
        "switchyard_wrong": our_wrong[:10],
    }
    report["end_to_end_sim_broken_json"] = end_to_end()
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
