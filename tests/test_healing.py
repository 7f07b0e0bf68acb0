"""Response Healing: the corpus, the invariants, and properties over every valid value and every cut of it."""

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.healing import heal
from shared.healing import repair as engine
from tests.healing_corpus import BASES, TRUNCATED, cases, prefix_consistent

CASES = cases()


def test_the_corpus_is_large_and_covers_every_kind():
    kinds = {name.split(":")[1].split("@")[0].split("+")[0] for name, _, _ in CASES}
    assert len(CASES) >= 300
    assert {"single_quotes", "curly_quotes", "unquoted_keys", "python_literals", "trailing_commas",
            "missing_commas", "comments", "raw_control_characters", "ellipsis", "fence_only", "prose_only",
            "extra_closer", "missing_bracket", "truncated", "x41", "short_u"} <= kinds


@pytest.mark.parametrize("name, text, want", CASES, ids=[c[0] for c in CASES])
def test_corpus_case(name, text, want):
    result = heal(text, truncated=want is TRUNCATED)  # the corpus's cuts stand for calls stopped for length
    assert result.status == "healed", (result.status, result.text[:200])
    got = json.loads(result.text)
    if want is TRUNCATED:
        assert prefix_consistent(got, BASES[int(name.split(":")[0])])
    else:
        assert got == want
    assert result.repairs and all(r.kind and r.offset >= 0 and r.path.startswith("$") for r in result.repairs)


# -- invariants -------------------------------------------------------------------------------------------
def test_valid_json_comes_back_byte_identical_without_running_the_repair_pass(monkeypatch):
    def boom(self):
        raise AssertionError("the repair pass ran on valid JSON")

    monkeypatch.setattr(engine._Repairer, "run", boom)
    for text in ('{"a": 1}', '  [1, 2.50, 1e+10]  ', '"\\ud83d\\ude00"', '{\n  "中文": "😀"\n}', "null", "-0.0"):
        result = heal(text)
        assert (result.text, result.status, len(result.repairs)) == (text, "skipped", 0)


def test_numbers_and_string_contents_are_copied_verbatim():
    text = '{"n": 1e+10, "m": -2.50E-3, "big": 12345678901234567890, "s": "\\ud83d\\ude00 中文 😀 \\u00e9", "t": 1,}'
    result = heal(text)
    assert result.status == "healed"
    for token in ("1e+10", "-2.50E-3", "12345678901234567890", '"\\ud83d\\ude00 中文 😀 \\u00e9"'):
        assert token in result.text


def test_no_key_is_invented_and_every_drop_is_reported():
    result = heal('{"a": 1, "b": {"c": 2, "d"', truncated=True)
    assert json.loads(result.text) == {"a": 1, "b": {"c": 2}}
    drops = [r for r in result.repairs if r.kind == "dangling_key_removed"]
    assert drops and drops[0].removed == '"d"' and drops[0].path == "$.b.d"


def test_value_types_never_change():
    result = heal("{'count': 3, 'ratio': .5, 'ok': True, 'none': None, 'name': 'x',}")
    assert json.loads(result.text) == {"count": 3, "ratio": 0.5, "ok": True, "none": None, "name": "x"}


def test_pathological_inputs_end_without_a_crash():
    deep = "[" * 10_000
    assert heal(deep).status == "failed" and heal(deep).text == deep  # deeper than MAX_DEPTH: refused
    long_string = '{"a": "' + "x," * 15_000
    result = heal(long_string)
    assert result.status == "healed" and json.loads(result.text)["a"] == "x," * 15_000
    fragments = "[" + "x," * 15_000
    assert heal(fragments).status == "healed"


@pytest.mark.parametrize("text", ["", "   ", "no json at all", "```\n```", "}}}", ":", "\x00\x01", "@#$%"])
def test_hopeless_input_fails_with_the_original_text(text):
    result = heal(text)
    assert result.status == "failed" and result.text == text


@given(st.text(alphabet=string.printable + "“”‘’中😀", max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_text_heals_or_fails_and_never_raises(text):
    result = heal(text)
    assert result.status in ("healed", "skipped", "failed")
    if result.status != "failed":
        json.loads(result.text)
    else:
        assert result.text == text


# -- properties -------------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
DUMPS = st.sampled_from([
    lambda v: json.dumps(v), lambda v: json.dumps(v, ensure_ascii=False), lambda v: json.dumps(v, indent=2),
    lambda v: json.dumps(v, separators=(",", ":")),
])


@given(JSON, DUMPS)
@settings(max_examples=300, deadline=None)
def test_valid_json_is_returned_unchanged(value, dumps):
    text = dumps(value)
    result = heal(text)
    assert result.text == text and result.status == "skipped"


@given(JSON.filter(lambda v: isinstance(v, (dict, list))), DUMPS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
def test_every_cut_heals_to_a_prefix_consistent_part(value, dumps):
    text = dumps(value)
    for k in range(1, len(text)):
        result = heal(text[:k], truncated=True)
        assert result.status in ("healed", "skipped"), (text[:k], result.status)
        assert prefix_consistent(json.loads(result.text), value), (text[:k], result.text)
