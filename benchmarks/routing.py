"""Routing costs (numbers in benchmarks/README.md):

    python -m benchmarks.routing

1. The routing decision with 100 rules loaded (keywords, regexes, token counts, apps, key tags, model globs;
   none matches, so every rule is considered): building a call's plan (policy lookup, rules, the default's
   chain, the first candidate with its breaker check), for prompts of 0.5, 2 and 20 KB. Target ≤ 50 µs.
2. What a fallback adds: calls in-process against the fake OpenAI-compatible upstream on loopback. The time of
   (a failing model, then a working one) against the failing call alone plus the working call alone. Target:
   the fallback adds ≤ 1 ms beyond the failed attempt's own time.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from shared.catalog import load_catalog
from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.config import Settings
from shared.routing.plan import Plan

WORDS = ("the quarterly report shows revenue growth across every region while costs stayed flat and the team "
         "expects the new product line to ship before the end of the year ").split()


def _policy_yaml(rules: int) -> str:
    """`rules` rules of every kind, none of which matches the benchmark request."""
    lines = ["routes:", "  - id: bench/router", "    rules:"]
    for i in range(rules):
        kind = i % 6
        when = {
            0: f'{{keywords: [alpha{i}, beta{i}, "gamma delta {i}"]}}',
            1: f'{{regex: "(?i)\\\\bzeta{i}\\\\b"}}',
            2: f'{{prompt_tokens: "> {100_000 + i}"}}',
            3: f'{{app: [App {i}]}}',
            4: f'{{key_tag: [tag{i}], keywords: [omega{i}]}}',
            5: f'{{model: ["nobody/m{i}*"]}}',
        }[kind]
        lines.append(f"      - {{name: r{i}, when: {when}, then: {{model: sim/chat}}}}")
    lines.append("    default: {split: [{model: sim/fast, weight: 90}, {model: sim/chat, weight: 10}], "
                 "fallbacks: [sim/long-context]}")
    return "\n".join(lines) + "\n"


def decision(rules: int = 100, n: int = 5_000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(_policy_yaml(rules))
        service = ChatService(load_catalog(path), None, Settings())  # type: ignore[arg-type]
    assert len(service.catalog.policies.by_id["bench/router"].rules) == rules
    ctx = CallContext(key_id="k", key_tags=("team-a",), app_title="Bench")
    out = {}
    for label, words, model in (("plain model, no policy", 340, "sim/fast"), ("100 rules, 0.5 KB prompt", 85, None),
                                ("100 rules, 2 KB prompt", 340, None), ("100 rules, 20 KB prompt", 3400, None)):
        text = " ".join(WORDS[i % len(WORDS)] for i in range(words))
        body = orjson.dumps({"model": model or "bench/router", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})
        samples = []
        for _ in range(5):
            requests = [parse_chat_request(body) for _ in range(n)]  # fresh: nothing cached on them between runs
            start = time.perf_counter()
            for r in requests:
                Plan(service.routing, r, ctx).first()
            samples.append((time.perf_counter() - start) / n * 1e6)
        out[f"plan: {label} (µs)"] = round(statistics.median(samples), 2)
    return out


async def _fallback(n: int = 2000) -> dict[str, float]:
    from tests.fakes.openai_upstream import FakeUpstream
    from shared.providers import http

    with FakeUpstream() as fake, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(fake.catalog_yaml())
        import os
        os.environ["FAKE_VENDOR_KEY"] = "k"
        # breakers would open on the failing endpoint and shed it (which is faster still): keep them closed
        service = ChatService(load_catalog(path), _Discard(), Settings(max_retries=0, breaker_consecutive_failures=10**9,
                                                                         breaker_min_calls=10**9))

        def request(model: str, models: list[str] | None = None):
            return parse_chat_request(orjson.dumps({"model": model, "models": models or [],
                                                    "messages": [{"role": "user", "content": "hi"}]}))

        async def once(r) -> float:
            start = time.perf_counter()
            try:
                await service.complete(r, CallContext(key_id="k"))
            except Exception:
                pass
            return (time.perf_counter() - start) * 1000

        kinds = {"fail": ("fake/error-500", None), "ok": ("fake/ok", None), "both": ("fake/error-500", ["fake/ok"])}
        samples: dict[str, list[float]] = {k: [] for k in kinds}
        for i in range(n + 50):  # interleaved, so that drift hits the three alike; the first 50 warm up
            for k in (list(kinds) if i % 2 else list(reversed(kinds))):
                took = await once(request(*kinds[k]))
                if i >= 50:
                    samples[k].append(took)
        failed, ok, both = (statistics.median(samples[k]) for k in kinds)
        await http.close()
    return {"failing call alone (ms)": round(failed, 3), "working call alone (ms)": round(ok, 3),
            "fail, then fall back (ms)": round(both, 3),
            "added by the fallback (ms)": round(both - failed - ok, 3)}


class _Discard:
    def record(self, event) -> None:
        pass


def main() -> None:
    for name, value in {**decision(), **asyncio.run(_fallback())}.items():
        print(f"{name:42} {value}")


if __name__ == "__main__":
    main()
