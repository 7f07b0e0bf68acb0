"""Healing streams by appending only: every cut of a document, in any chunking, and through the gateway."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.healing.stream import StreamHealer
from tests.healing_corpus import BASES, prefix_consistent


def run(parts, truncated=True):
    healer = StreamHealer()
    for part in parts:
        healer.feed(part)
    return healer.finish(truncated=truncated)


def chunks(text, rng):
    out, i = [], 0
    while i < len(text):
        step = rng.randint(1, 9)
        out.append(text[i:i + step])
        i += step
    return out


@pytest.mark.parametrize("base", range(len(BASES)))
def test_every_cut_is_closed_by_appending_or_reported_failed(base):
    value = BASES[base]
    text = json.dumps(value, ensure_ascii=base % 2 == 0)
    rng = random.Random(base)
    healed = 0
    for k in range(1, len(text) + 1):
        cut = text[:k]
        suffix, status, _ = run(chunks(cut, rng))
        assert (suffix, status) == run([cut])[:2]  # chunking never changes the outcome
        if status == "failed":
            assert suffix == ""
            continue
        got = json.loads(cut + suffix)
        assert prefix_consistent(got, value) if status == "healed" else got == value
        healed += status == "healed"
    assert healed >= 1  # at the least the cut right after the opening bracket


def test_what_cannot_be_healed_after_sending_fails_honestly():
    for text in ('{"a": 1,', '{"a"', '{"a":', "Here it is: {", "{'a': 1}", '{"a": 12', '{"s": "x\\', '{"a": 1} and'):
        assert run([text])[:2] == ("", "failed"), text
    assert run(['{"a": 12'], truncated=False)[:2] == ("}", "healed")  # finished on its own: the number is whole
    assert run(['{"a": tr'])[:2] == ("ue}", "healed")
    assert run(['{"s": "x\\\\'])[:2] == ('"}', "healed")  # an escaped backslash is a whole escape
    assert run(['{"a": 1}'])[:2] == ("", "skipped") and run([""])[:2] == ("", "skipped")


@given(st.text(max_size=300), st.randoms())
@settings(max_examples=200, deadline=None)
def test_the_suffix_always_completes_valid_json(text, rng):
    suffix, status, _ = run(chunks(text, rng))
    if status == "healed":
        json.loads(text + suffix)


def test_streams_through_the_gateway(client, keys):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    outcomes = set()
    for seed in range(12):
        resp = client.post("/api/v1/chat/completions", headers=headers, json={
            "model": "sim/truncating", "stream": True, "seed": seed, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "json please"}]})
        events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
        final = events[-1]
        outcomes.add(final["heal_status"])
        finish_at = next(i for i, c in enumerate(events) if c["choices"] and c["choices"][0]["finish_reason"])
        assert finish_at == len(events) - 2  # the closing delta came before the finish chunk
        if final["heal_status"] == "healed":
            assert isinstance(json.loads(content), dict)
    assert "healed" in outcomes and outcomes <= {"healed", "failed"}
    valid = client.post("/api/v1/chat/completions", headers=headers, json={
        "model": "sim/fast", "stream": True, "seed": 1, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "json please"}]})
    events = [json.loads(line[6:]) for line in valid.text.splitlines() if line.startswith("data: {")]
    assert events[-1]["heal_status"] == "skipped"
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    whole = client.post("/api/v1/chat/completions", headers=headers, json={
        "model": "sim/fast", "seed": 1, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "json please"}]}).json()
    assert streamed == whole["choices"][0]["message"]["content"]  # the exact bytes the model produced
