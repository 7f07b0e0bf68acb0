"""The truncation rule (nothing the model wrote is dropped unless the call is known to have been cut) and
closers placed by what follows them."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.healing import heal
from shared.healing.completion import heal_completion
from tests.healing_corpus import misplaced_closers
from tests.test_healing import DUMPS, JSON

LOST = {"value_removed", "document_removed"}


@pytest.mark.parametrize("text, healed", [
    ('{"a": 15', '{"a": 15}'),
    ('{"a": [1, 2, 3', '{"a": [1, 2, 3]}'),
    ('{"a": -0.5e+3', '{"a": -0.5e+3}'),
    ('{"ok": true, "n": nul', '{"ok": true, "n": null}'),
    ('{"name": Ada', '{"name": "Ada"}'),
    ('{"s": "cut here', '{"s": "cut here"}'),
    ('[105,12', '[105,12]'),
])
def test_a_complete_looking_value_at_the_end_is_kept_when_the_call_finished(text, healed):
    result = heal(text)  # the default: not known to be cut (finish_reason "stop")
    assert (result.text, result.status) == (healed, "healed")
    assert not LOST & {r.kind for r in result.repairs}


@pytest.mark.parametrize("text, healed, kind", [
    ('{"a": 15', "{}", "truncated_number_removed"),
    ('{"a": [1, 2, 3', '{"a": [1, 2]}', "truncated_number_removed"),
    ('{"a": 1e', "{}", "truncated_number_removed"),
    ('{"name": Ada', "{}", "truncated_value_removed"),
])
def test_a_call_cut_for_length_drops_the_value_it_cut_and_says_so(text, healed, kind):
    result = heal(text, truncated=True)
    assert (json.loads(result.text), result.status) == (json.loads(healed), "healed")
    removed = next(r for r in result.repairs if r.kind == kind)
    assert removed.removed and removed.removed in text and removed.path.startswith("$")


@pytest.mark.parametrize("text, kind", [
    ("[1,2]\n[3]", "document_removed"),
    ('{"a": 1}\n{"b": 2}', "document_removed"),
    ('Here: {"a": 1} and another one: {"b": 2}', "document_removed"),
    ('```json\n{"a": 1}\n```\nor\n```json\n[1, 2]\n```', "document_removed"),
    ('{"a": 1e}', "value_removed"),  # no exponent, and no reading of it is sure
    ('{"a": 1e', "value_removed"),
])
def test_a_value_that_would_be_lost_fails_the_healing_and_the_audit_names_it(text, kind):
    result = heal(text)
    assert result.status == "failed" and result.text == text  # the original, nothing lost
    assert kind in {r.kind for r in result.repairs}


def test_prose_after_the_document_is_not_a_value():
    result = heal('{"a": 1}\nLet me know if you need {anything} else.')
    assert (result.text, result.status) == ('{"a": 1}', "healed")
    assert [r.kind for r in result.repairs] == ["trailing_text_removed"]


def _closer_cuts(text):
    """Every prefix of `text` that lacks only closing brackets (and whitespace between them)."""
    k = len(text)
    while k > 0 and text[k - 1] in "]} \n":
        k -= 1
        yield text[:k]


@given(JSON.filter(lambda v: isinstance(v, (dict, list))), DUMPS)
@settings(max_examples=300, deadline=None)
def test_a_document_missing_only_closers_is_restored_exactly(value, dumps):
    text = dumps(value)
    for cut in _closer_cuts(text):
        if not cut.strip():
            continue
        result = heal(cut, truncated=False)
        assert result.status == "healed", (cut, result)
        assert json.loads(result.text) == value
        if "\n" not in text:  # no indentation to guess: byte-identical
            assert result.text == text
        assert {r.kind for r in result.repairs} <= {"truncation_closed"}


@given(JSON.filter(lambda v: isinstance(v, (dict, list))), st.sampled_from([
    lambda v: json.dumps(v), lambda v: json.dumps(v, separators=(",", ":"))]))
@settings(max_examples=150, deadline=None)
def test_any_cut_of_a_finished_call_keeps_every_whole_value_or_fails(value, dumps):
    """Not known to be cut: what the model wrote up to the end stays; a value that cannot be read fails."""
    text = dumps(value)
    for k in range(1, len(text)):
        result = heal(text[:k], truncated=False)
        if result.status == "failed":
            assert result.text == text[:k] and LOST & {r.kind for r in result.repairs}
            continue
        got = json.loads(result.text)
        assert result.status in ("healed", "skipped") and isinstance(got, type(value))


def _body(content, finish_reason):
    return {"choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content}}]}


def test_a_completion_heals_by_its_finish_reason():
    stopped = _body('{"total": 15', "stop")
    report = heal_completion(stopped, content=True, tool_arguments=False)
    assert stopped["choices"][0]["message"]["content"] == '{"total": 15}' and report.status == "healed"
    cut = _body('{"total": 15', "length")
    report = heal_completion(cut, content=True, tool_arguments=False)
    assert cut["choices"][0]["message"]["content"] == "{}" and report.status == "healed"
    assert "truncated_number_removed" in {entry["kind"] for entry in report.audit}


# -- structure: closers missing or of the wrong kind in the middle, placed by what follows ----------------------
@pytest.mark.parametrize("text, want", [
    ('{"a": [1, 2, "b": 3}', {"a": [1, 2], "b": 3}),  # a key after a value: the array had ended
    ('{"a": [1, 2}, "b": 3}', {"a": [1, 2], "b": 3}),  # the wrong closer, a key after it
    ('{"a": 1}, "b": 2}', {"a": 1, "b": 2}),  # closed too early: the key after it belongs to it
    ('[{"a": 1], {"b": 2}]', [{"a": 1}, {"b": 2}]),  # the wrong closer, a value after the comma
    ('[{"a": ["x"]]}, {"b": 2}]', [{"a": ["x"]}, {"b": 2}]),  # a doubled closer
    ('[{"a": ["x"]}}, {"b": 2}]', [{"a": ["x"]}, {"b": 2}]),
    ('[{"a": 1, {"b": 2}]', [{"a": 1}, {"b": 2}]),  # an object cannot hold a value where a key goes
])
def test_misplaced_closers_are_placed_by_what_follows(text, want):
    result = heal(text)
    assert result.status == "healed" and json.loads(result.text) == want


def test_every_misplaced_closer_the_text_determines_is_placed_right():
    corpus = misplaced_closers()
    assert len(corpus) >= 50
    for name, text, want in corpus:
        result = heal(text)
        assert result.status == "healed" and json.loads(result.text) == want, (name, text, result.text)


@pytest.mark.parametrize("truncated", [False, True])
def test_a_key_with_no_value_goes_at_the_end_only(truncated):
    end = heal('{"a": 1, "b"', truncated=truncated)
    assert (end.text, end.status) == ('{"a": 1}', "healed")
    assert "dangling_key_removed" in {r.kind for r in end.repairs}
    for text in ('{"a": 1, "b": }', '{"a", "b": 1}', '{"a": 1, "b":, "c": 2}'):
        middle = heal(text, truncated=truncated)  # no cut explains it: the key is kept, the healing fails
        assert (middle.text, middle.status) == (text, "failed") and "value_removed" in {r.kind for r in middle.repairs}
