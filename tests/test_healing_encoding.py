"""Encoding defects, judged by strict parsers (orjson, and pydantic-core's Rust parser), not only Python's json."""

import json
import logging
import random
import string

import orjson
import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.healing import heal


def strict(text: str) -> object:
    """What a strict parser in another language makes of `text` (both must agree it is JSON)."""
    value = orjson.loads(text)
    pydantic_core.from_json(text, allow_inf_nan=False)  # (its numbers past 64 bits differ: ints, not floats)
    return value


@pytest.mark.parametrize("text, want, kind", [
    # a lone surrogate has no character to keep: U+FFFD, as UTF-8 decoders do; a pair is kept as written
    ('{"a": "\\ud83d end"}', {"a": "\ufffd end"}, "lone_surrogate_replaced"),
    ('{"a": "x\\ude00"}', {"a": "x\ufffd"}, "lone_surrogate_replaced"),
    ('{"\\ud800": 1}', {"\ufffd": 1}, "lone_surrogate_replaced"),
    # an escape JSON does not have: the backslash becomes text, the characters stay as written
    ('{"a": "\\x41"}', {"a": "\\x41"}, "escape_fixed"),
    ('{"a": "\\q"}', {"a": "\\q"}, "escape_fixed"),
    # raw control characters: escaped inside strings (same character), removed between tokens
    ('{"a": "tab\there\x01"}', {"a": "tab\there\x01"}, "control_character_escaped"),
    ('{"a":\x00 1}', {"a": 1}, "character_removed"),
    ('\ufeff{"a": 1}', {"a": 1}, "bom_removed"),
    # a whole document escaped once more
    ('{\\"a\\": \\"b \\\\\\"q\\\\\\"\\"}', {"a": 'b "q"'}, "double_escape_removed"),
])
def test_encoding_defects_are_repaired_and_named(text, want, kind):
    result = heal(text)
    assert result.status == "healed" and strict(result.text) == want
    assert kind in {r.kind for r in result.repairs}


def test_valid_escapes_and_a_bom_inside_a_string_are_left_alone():
    for text in ('{"a": "\\ud83d\\ude00 \\u00e9 \\n \\/"}', '{"a": "\ufeff"}', '["\\\\x41"]'):
        assert heal(text).status == "skipped" and heal(text).text == text


def test_a_lone_surrogate_is_no_longer_taken_for_valid():
    text = '["\\ud83d end"]'
    json.loads(text)  # Python's json takes it
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)  # strict parsers do not
    assert heal(text).status == "healed"


def test_a_pair_cut_by_the_end_of_the_input_is_trimmed_not_replaced():
    for text in ('{"a": "x\\ud83d', '{"a": "x\\ud83d\\u', '{"a": "x\\ud83d\\ude0'):
        result = heal(text, truncated=True)
        assert strict(result.text) == {"a": "x"}, text


@given(st.text(alphabet=string.printable + "\ufeff\x00\x01“”中😀\\", max_size=200))
@settings(max_examples=300, deadline=None)
def test_whatever_heals_is_strict_json(text):
    result = heal(text)
    if result.status != "failed":
        strict(result.text)
    else:
        assert result.text == text


@given(st.lists(st.sampled_from(["\\ud83d", "\\ude00", "\\u00e9", "x", "\\n", "\\x41", "\\", "\x02"]), max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_mix_of_escapes_inside_a_string_heals_to_strict_json(parts):
    text = '{"s": "' + "".join(parts) + '"}'
    result = heal(text)
    assert result.status in ("healed", "skipped")
    assert isinstance(strict(result.text)["s"], str)


def test_no_input_reaches_the_last_resort(caplog):
    """`heal` never raises: a bug costs a healing, logged. None of these may get that far."""
    rng = random.Random(15)
    alphabet = '{}[]",:\\ \n\tabcdefnrtu0123456789.-+eE\'“”\ufeff\x00/*#`…'
    texts = ["", " ", "{", "[", '"', "\\", "```", "\ufeff"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(5000)]
    with caplog.at_level(logging.ERROR, logger="switchyard.healing"):
        for text in texts:
            for truncated in (False, True):
                heal(text, truncated=truncated)
    assert not caplog.records, caplog.records[0].getMessage()
