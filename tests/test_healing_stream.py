"""Healing streams as they pass: every cut of a document, in any chunking, the defects a few held-back bytes
mend, and through the gateway."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.healing.stream import StreamHealer
from tests.healing_corpus import BASES, TRUNCATED, cases, prefix_consistent
from tests.test_healing_encoding import strict


def run(parts, truncated=True):
    """(what the client received, status, repair kinds, the most characters held back at a delta's end)."""
    healer = StreamHealer()
    sent, held = [], 0
    for part in parts:
        sent.append(healer.feed(part))
        held = max(held, healer.holding)
    suffix, status, repairs = healer.finish(truncated=truncated)
    return "".join(sent) + suffix, status, [r.kind for r in repairs], held


def chunks(text, rng):
    out, i = [], 0
    while i < len(text):
        step = rng.randint(1, 9)
        out.append(text[i:i + step])
        i += step
    return out


@pytest.mark.parametrize("base", range(len(BASES)))
def test_every_cut_of_a_call_stopped_for_length_heals(base):
    value = BASES[base]
    text = json.dumps(value, ensure_ascii=base % 2 == 0)
    rng = random.Random(base)
    for k in range(1, len(text) + 1):
        cut = text[:k]
        sent, status, _, held = run(chunks(cut, rng))
        assert (sent, status) == run([cut])[:2]  # chunking never changes the outcome
        assert status in ("healed", "skipped"), cut
        got = strict(sent)
        assert prefix_consistent(got, value) if status == "healed" else got == value
        assert held <= 40  # a key, a number: never a string's content or a buffered answer


@pytest.mark.parametrize("text, truncated, healed, kind", [
    ('{"a": 1,', True, '{"a": 1}', "trailing_comma_removed"),
    ('{"a": [1, 2, ],}', False, '{"a": [1, 2 ]}', "trailing_comma_removed"),
    ('{"a": 1, "b"', True, '{"a": 1}', "dangling_key_removed"),
    ('Here it is:\n```json\n{"a": 1}\n```\nAnything else?', False, '{"a": 1}\n', "prose_removed"),
    ('{"a": 12', True, "{}", "truncated_number_removed"),
    ('{"a": 12', False, '{"a": 12}', "truncation_closed"),
    ('{"s": "x\\', True, '{"s": "x"}', "truncation_closed"),
    ('{"a": 1} and that is all', False, '{"a": 1} ', "trailing_text_removed"),
    ('{"a": True, "b": None}', False, '{"a": true, "b": null}', "literal_normalized"),
    ('{"a": "x\\q \\ud83d."}', False, '{"a": "x\\\\q \\ufffd."}', "lone_surrogate_replaced"),
    ('{"a": "line\nbreak"}', False, '{"a": "line\\nbreak"}', "control_character_escaped"),
    ('{"a": [1, 2}', False, '{"a": [1, 2]}', "closer_inserted"),
    ('{"a": 1 "b": 2}', False, '{"a": 1 ,"b": 2}', "comma_inserted"),
    ('{"a": tr', True, '{"a": true}', "literal_completed"),
    ("{'a': 'it\\'s \"x\"'}", False, '{"a": "it\'s \\"x\\""}', "quotes_normalized"),
    ('{\u201ca\u201d: \u201cb\u201d}', False, '{"a": "b"}', "quotes_normalized"),
    ('{a: 1, b_2: [1, ...]}', False, '{"a": 1, "b_2": [1 ]}', "key_quoted"),
    ('{"a": 1, // note\n "b": 2 /* x */}', False, '{"a": 1, \n "b": 2 }', "comment_removed"),
])
def test_defects_mended_by_holding_a_few_bytes(text, truncated, healed, kind):
    for parts in ([text], list(text)):  # whole, and one character a delta
        sent, status, kinds, _ = run(parts, truncated)
        assert (sent, status) == (healed, "healed") and kind in kinds, parts


@pytest.mark.parametrize("text", ['{"a": 1 @ 2}', '{"a": 1}\n{"b": 2}', '[1, 2]\n[3]', '{"a": <b>}',
                                  '{"a": 1, "b": }'])  # a key with no value before the end: not dropped
def test_what_it_cannot_mend_passes_as_written_and_fails(text):
    for parts in ([text], list(text)):
        assert run(parts, truncated=False)[:2] == (text, "failed")


def test_a_valid_stream_passes_byte_identical_and_is_skipped():
    for text in ('  {"a": [1, -2.5e3, true, null], "s": "\\ud83d\\ude00 \\" \\\\"}\n', "[]", '"just a string"'):
        sent, status, kinds, _ = run(list(text), truncated=False)
        assert (sent, status, kinds) == (text, "skipped", [])
    assert run([""])[:2] == ("", "skipped")
    assert run(["no json at all"], truncated=False)[:2] == ("no json at all", "failed")


def test_the_corpus_heals_in_streams_too():
    """The share of the non-streamed corpus a stream heals (the benchmark reports it; here, a floor)."""
    rng = random.Random(7)
    corpus = cases()
    healed = 0
    for name, text, want in corpus:
        sent, status, _, _ = run(chunks(text, rng), truncated=want is TRUNCATED)
        if status != "healed":
            continue
        got = json.loads(sent)
        healed += prefix_consistent(got, BASES[int(name.split(":")[0])]) if want is TRUNCATED else got == want
    assert healed / len(corpus) >= 0.6


@given(st.text(max_size=300), st.randoms(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_text_in_any_chunking_heals_to_strict_json_or_fails(text, rng, truncated):
    sent, status, _, _ = run(chunks(text, rng), truncated)
    assert (sent, status) == run([text], truncated)[:2]
    if status in ("healed", "skipped") and sent.strip():
        strict(sent)


def events_of(resp):
    return [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]


def test_streams_through_the_gateway(client, keys):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    outcomes = set()
    for seed in range(12):
        resp = client.post("/api/v1/chat/completions", headers=headers, json={
            "model": "sim/truncating", "stream": True, "seed": seed, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "json please"}]})
        events = events_of(resp)
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
        final = events[-1]
        outcomes.add(final["heal_status"])
        finish_at = next(i for i, c in enumerate(events) if c["choices"] and c["choices"][0]["finish_reason"])
        assert finish_at == len(events) - 2  # the closing delta came before the finish chunk
        if final["heal_status"] == "healed":
            assert isinstance(strict(content), dict)
    assert outcomes == {"healed"}  # cut for length: a number at the end goes with its key
    valid = client.post("/api/v1/chat/completions", headers=headers, json={
        "model": "sim/fast", "stream": True, "seed": 1, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "json please"}]})
    events = events_of(valid)
    assert events[-1]["heal_status"] == "skipped"
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    whole = client.post("/api/v1/chat/completions", headers=headers, json={
        "model": "sim/fast", "seed": 1, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "json please"}]}).json()
    assert streamed == whole["choices"][0]["message"]["content"]  # the exact bytes the model produced


def test_broken_json_streams_through_the_gateway_healed(client, keys):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    healed = 0
    for seed in range(12):
        resp = client.post("/api/v1/chat/completions", headers=headers, json={
            "model": "sim/broken-json", "stream": True, "seed": seed, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "json please"}]})
        events = events_of(resp)
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
        if events[-1]["heal_status"] == "healed":
            strict(content)
            healed += 1
    assert healed >= 6
