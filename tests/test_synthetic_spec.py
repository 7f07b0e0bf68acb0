"""The job spec, the column DAG and the samplers (no gateway needed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from shared.errors import BadRequestError
from shared.synthetic import templates
from shared.synthetic.plan import Plan
from shared.synthetic.samplers import SAMPLERS, cell_rng
from shared.synthetic.spec import load, parse

FIXTURES = Path(__file__).parent / "fixtures" / "synthetic"


def spec(*columns, **extra):
    return {"model_configs": [{"alias": "m", "model": "sim/fast"}], "columns": list(columns), **extra}


def cat(name, values=("a", "b")):
    return {"name": name, "column_type": "sampler", "sampler_type": "category", "params": {"values": list(values)}}


def text(name, prompt):
    return {"name": name, "column_type": "llm-text", "model_alias": "m", "prompt": prompt}


def test_the_dag_orders_columns_by_their_references_whatever_the_declaration_order():
    s = parse(spec(text("summary", "Sum up {{ story }}"), text("story", "A story about {{ topic }}"), cat("topic")))
    levels = [[c.name for c in level] for level in Plan(s).levels]
    assert levels == [["topic"], ["story"], ["summary"]]


def test_independent_llm_columns_share_a_level():
    s = parse(spec(cat("topic"), text("a", "{{ topic }}"), text("b", "{{ topic }} again")))
    assert [[c.name for c in level] for level in Plan(s).levels] == [["topic"], ["a", "b"]]


def test_a_cycle_is_refused_naming_its_columns():
    s = parse(spec(text("a", "{{ b }}"), text("b", "{{ c }}"), text("c", "{{ a }}"), cat("topic")))
    with pytest.raises(BadRequestError) as e:
        Plan(s)
    assert "cycle" in e.value.message and {"a", "b", "c"} <= set(e.value.metadata["cycle"])
    assert e.value.metadata["cycle"][0] == e.value.metadata["cycle"][-1]


def test_a_reference_to_no_column_is_refused_naming_it():
    s = parse(spec(text("story", "About {{ topik }}"), cat("topic")))
    with pytest.raises(BadRequestError) as e:
        Plan(s)
    assert e.value.metadata == {"error_type": "invalid_request", "column": "story", "reference": "topik"}


def test_a_subcategory_depends_on_its_parent():
    sub = {"name": "sub", "column_type": "sampler", "sampler_type": "subcategory",
           "params": {"category": "topic", "values": {"a": ["a1"], "b": ["b1", "b2"]}}}
    s = parse(spec(sub, cat("topic")))
    assert [[c.name for c in level] for level in Plan(s).levels] == [["topic"], ["sub"]]


@pytest.mark.parametrize("bad, field", [
    ({"columns": []}, "columns"),
    (spec(text("x", "hi"), text("x", "again")), "declared twice"),
    (spec({**text("x", "hi"), "model_alias": "nobody"}), "nobody"),
    (spec({"name": "x", "column_type": "sampler", "sampler_type": "zipf", "params": {}}), "zipf"),
    (spec({"name": "x", "column_type": "sampler", "sampler_type": "uniform", "params": {"low": 2, "high": 1}}), "low"),
    (spec({"name": "x", "column_type": "llm-structured", "model_alias": "m", "prompt": "p",
           "output_format": {"type": 5}}), "output_format"),
    (spec({"name": "j", "column_type": "llm-judge", "model_alias": "m", "prompt": "p",
           "scores": [{"name": "s", "options": {"1": "bad", "2": "good"}}], "threshold": {"other": 1}}), "other"),
    (spec(text("x", "hi"), constraints=[{"target_column": "x"}]), "constraints"),
    (spec({**text("x", "hi"), "multi_modal_context": [{"modality": "image"}]}), "multi_modal_context"),
    (spec(text("x", "hi"), num_records=0), "num_records"),
])
def test_a_bad_spec_is_a_400_naming_the_problem(bad, field):
    with pytest.raises(BadRequestError) as e:
        parse(bad)
    assert field in e.value.message


def test_a_template_syntax_error_is_a_400_naming_the_column():
    s = parse(spec(text("story", "About {{ topic ")))
    with pytest.raises(BadRequestError) as e:
        Plan(s)
    assert "story" in e.value.message


def test_samplers_are_deterministic_per_cell_and_differ_between_cells():
    s = parse(spec(cat("topic", values=list("abcdefghij")), text("t", "{{ topic }}")))
    column = s.columns[0]
    draw = [SAMPLERS["category"](column.params, cell_rng(7, "topic", row, 0), {}) for row in range(200)]
    again = [SAMPLERS["category"](column.params, cell_rng(7, "topic", row, 0), {}) for row in range(200)]
    other_seed = [SAMPLERS["category"](column.params, cell_rng(8, "topic", row, 0), {}) for row in range(200)]
    assert draw == again and draw != other_seed
    assert len(set(draw)) == 10


def test_category_weights_shape_the_draws():
    s = parse(spec({**cat("w", values=["rare", "common"]), "params": {"values": ["rare", "common"], "weights": [1, 9]}}))
    counts = Counter(SAMPLERS["category"](s.columns[0].params, cell_rng(1, "w", i, 0), {}) for i in range(5000))
    assert 0.85 < counts["common"] / 5000 < 0.95


@pytest.mark.parametrize("kind, params, check", [
    ("uniform", {"low": 3, "high": 4}, lambda v: 3 <= v <= 4),
    ("gaussian", {"mean": 100, "stddev": 0}, lambda v: v == 100),
    ("bernoulli", {"p": 1}, lambda v: v == 1),
    ("binomial", {"n": 4, "p": 0.5}, lambda v: 0 <= v <= 4),
    ("poisson", {"mean": 3}, lambda v: isinstance(v, int) and v >= 0),
    ("poisson", {"mean": 400}, lambda v: 300 < v < 500),
    ("datetime", {"start": "2025-01-01", "end": "2025-01-03", "unit": "D"},
     lambda v: v.isoformat()[:10] in ("2025-01-01", "2025-01-02")),  # the end is exclusive
    ("uuid", {"prefix": "X-", "short_form": True, "uppercase": True}, lambda v: v.startswith("X-") and len(v) == 10),
    ("person_from_faker", {"locale": "de_DE", "sex": "Female", "age_range": [30, 31]},
     lambda v: v["sex"] == "Female" and 30 <= v["age"] <= 31 and v["first_name"]),
])
def test_each_sampler_draws_within_its_params(kind, params, check):
    s = parse(spec({"name": "x", "column_type": "sampler", "sampler_type": kind, "params": params}))
    for row in range(50):
        assert check(SAMPLERS[kind](s.columns[0].params, cell_rng(3, "x", row, 0), {}))


def test_person_needs_a_real_faker_locale():
    with pytest.raises(BadRequestError, match="locale"):
        parse(spec({"name": "p", "column_type": "sampler", "sampler_type": "person_from_faker",
                    "params": {"locale": "xx_YY"}}))


@pytest.mark.parametrize("name", templates.names())
def test_each_template_is_a_valid_spec_with_samplers_a_structure_and_a_judge(name):
    s = parse(templates.load(name))
    kinds = Counter(c.column_type for c in s.columns)
    assert kinds["sampler"] >= 4 and kinds["llm-structured"] >= 1 and kinds["llm-judge"] >= 1
    judge = next(c for c in s.columns if c.column_type == "llm-judge")
    assert judge.threshold
    assert all(m.model.startswith("sim/") for m in s.model_configs)
    Plan(s)  # its DAG holds


def test_three_templates_for_the_brief():
    assert templates.names() == ["financial-risk-scripts", "legal-clauses", "medical-dialogues"]


def test_the_fingerprint_ignores_the_name_but_not_the_rows():
    base = spec(cat("topic"), text("t", "{{ topic }}"))
    assert parse({**base, "name": "one"}).fingerprint() == parse({**base, "name": "two"}).fingerprint()
    assert parse({**base, "seed": 1}).fingerprint() != parse({**base, "seed": 2}).fingerprint()


def test_a_data_designer_0_9_7_config_loads_unchanged():
    paths = sorted(FIXTURES.glob("data_designer_0.9.7.*"))
    assert [p.suffix for p in paths] == [".json", ".yaml"]
    for path in paths:
        s = load(path)
        kinds = {c.column_type for c in s.columns}
        assert {"sampler", "llm-text", "llm-structured", "llm-judge", "expression"} <= kinds, path
        samplers = {c.sampler_type for c in s.columns if c.column_type == "sampler"}
        assert {"category", "subcategory", "uniform", "gaussian", "bernoulli", "poisson", "datetime", "uuid",
                "person_from_faker"} <= samplers, path
        assert s.seed_config is not None


@pytest.mark.parametrize("template_text, problem", [
    ("{{ 'a' * 10**9 }}", "repetition"),
    ("{{ 10 ** 1000000 }}", "power"),
    ("{% for i in range(10**9) %}x{% endfor %}", "range()"),
    ("{% for i in range(999) %}{% for j in range(999) %}{{ 'x' * 900 }}{% endfor %}{% endfor %}", "renders over"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
])
def test_a_template_cannot_make_a_row_take_unbounded_work_or_reach_python(template_text, problem):
    import asyncio

    from shared.synthetic.engine import Engine, RowFailed

    s = parse(spec({"name": "x", "column_type": "expression", "expr": template_text}))
    engine = Engine(Plan(s), client=None, job_id="j", fingerprint="f")  # type: ignore[arg-type]
    with pytest.raises(RowFailed) as e:
        asyncio.run(engine.make_row(0, 0))
    assert problem in e.value.reason


@pytest.mark.parametrize("template_text, problem", [
    ("{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}", "nest at most 2"),
    ("{{ x }}" * 700, "too large"),
])
def test_a_template_too_big_or_too_deep_is_refused_before_anything_runs(template_text, problem):
    s = parse(spec(cat("x"), text("t", template_text)))
    with pytest.raises(BadRequestError, match=problem):
        Plan(s)
