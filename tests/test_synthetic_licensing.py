"""The license gate of synthetic-data jobs (shared/synthetic/licensing.py) and the catalog's license table
(shared/catalog/licenses.yaml): every model and seed checked before anything runs, every problem listed."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import orjson
import pytest
import yaml
from pydantic import ValidationError

from shared.catalog import BUILTIN, load_catalog
from shared.catalog.licenses import LICENSES, LicenseTable, ModelLicense, load_table, operator_licenses
from shared.catalog.schema import CatalogFile
from shared.synthetic.licensing import (
    GateResult, LicenseRefused, Purpose, Seed, SeedLicensePolicy, card_license, check, dataset_license_for,
    normalize_license,
)

ROOT = Path(__file__).resolve().parent.parent
NO_OPERATOR = ()  # the built-in table only, whatever SWITCHYARD_CONFIG says


def gate(models: dict[str, str], seeds: list[Seed] = (), **kwargs) -> GateResult:
    kwargs.setdefault("extra_licenses", NO_OPERATOR)
    return check(models, list(seeds), **kwargs)


@pytest.fixture(scope="module")
def catalog_ids() -> set[str]:
    return {m.id for m in load_catalog()}


# --- the table -----------------------------------------------------------------------------------------------

def test_the_table_parses_with_a_policy_version_and_entries():
    table = load_table()
    assert isinstance(table, LicenseTable) and table.policy_version.startswith("licenses-")
    assert len(table.licenses) >= 20
    from shared.catalog import licenses

    assert licenses.POLICY_VERSION == table.policy_version == yaml.safe_load(LICENSES.read_text())["policy_version"]


def test_every_glob_matches_a_catalog_or_sim_model(catalog_ids):
    dead = [glob for entry in load_table().licenses for glob in entry.match
            if not any(fnmatch.fnmatchcase(i, glob) for i in catalog_ids)]
    assert not dead, f"globs that match no catalog id: {dead}"


def test_every_entry_is_reachable(catalog_ids):
    """First match wins: an entry that an earlier one shadows for all its ids is dead too."""
    table = load_table()
    for entry in table.licenses:
        ids = [i for i in catalog_ids if entry.matches(i)]
        assert any(table.license_for(i) is entry for i in ids), f"{entry.license} {entry.match} is shadowed"


def test_every_builtin_sim_model_has_our_own_permissive_entry():
    sims = [m["id"] for m in yaml.safe_load(BUILTIN.read_text())["models"] if m["provider"] == "sim"]
    assert len(sims) >= 5
    for model_id in sims:
        entry = load_table().license_for(model_id)
        assert entry is not None, model_id
        assert entry.spdx == "LicenseRef-switchyard-sim" and entry.commercial_use and entry.train_other_models
        assert entry.obligations == ()


def test_sources_are_https_urls_and_our_own_terms_name_a_file_of_the_repository():
    for entry in load_table().licenses:
        if entry.spdx.startswith("LicenseRef-switchyard-"):
            assert (ROOT / entry.source).is_file(), entry.source
        else:
            assert entry.source.startswith("https://") and " " not in entry.source, entry.source


def test_restricted_entries_say_why_and_the_main_labs_are_covered(catalog_ids):
    table = load_table()
    for entry in table.licenses:
        assert entry.train_other_models or entry.train_restriction
    expect = {"openai/gpt-4o": False, "anthropic/claude-sonnet-4.6": False, "google/gemini-2.5-flash": False,
              "x-ai/grok-code-fast-1": False, "meta-llama/llama-3-8b-instruct": False,
              "meta-llama/llama-2-70b-chat": False, "meta-llama/llama-3.1-8b-instruct": True,
              "meta-llama/llama-4-scout": True, "google/gemma-3-27b-it": True, "google/gemma-4-31b-it": True,
              "openai/gpt-oss-120b": True, "deepseek/deepseek-r1": True, "qwen/qwen3-32b": True,
              "mistralai/mistral-nemo": True, "mistralai/mistral-medium-3.1": False, "microsoft/phi-4": True,
              "z-ai/glm-4.5": True, "moonshotai/kimi-k2": True, "tencent/hunyuan-a13b-instruct": False}
    for model_id, train in expect.items():
        assert model_id in catalog_ids, model_id
        assert table.license_for(model_id).train_other_models is train, model_id
    assert table.license_for("google/gemma-3-27b-it").spdx == "LicenseRef-Gemma"
    assert table.license_for("google/gemma-4-31b-it").spdx == "Apache-2.0"
    assert table.license_for("openai/gpt-oss-20b").spdx == "Apache-2.0"


def test_a_variant_of_a_model_has_its_entry():
    assert load_table().license_for("meta-llama/llama-3.1-8b-instruct:free").license == "Llama 3.1 Community License"


def test_an_entry_must_say_why_it_restricts_and_cite_an_https_source():
    base = {"match": ["x/*"], "license": "X", "spdx": "LicenseRef-X", "commercial_use": True,
            "train_other_models": True, "source": "https://example.com/terms"}
    ModelLicense.model_validate(base)
    with pytest.raises(ValidationError, match="train_restriction"):
        ModelLicense.model_validate({**base, "train_other_models": False})
    with pytest.raises(ValidationError, match="commercial_restriction"):
        ModelLicense.model_validate({**base, "commercial_use": False})
    with pytest.raises(ValidationError, match="https"):
        ModelLicense.model_validate({**base, "source": "http://example.com/terms"})
    with pytest.raises(ValidationError):
        ModelLicense.model_validate({**base, "spdx": "not an id"})


# --- seeds ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("declared, spdx", [
    ("cc-by-4.0", "CC-BY-4.0"), ("CC BY 4.0", "CC-BY-4.0"), ("Creative Commons Attribution 4.0 International",
                                                             "CC-BY-4.0"),
    ("cc0", "CC0-1.0"), ("CC0 1.0", "CC0-1.0"), ("apache 2.0", "Apache-2.0"), ("Apache License, Version 2.0",
                                                                              "Apache-2.0"),
    ("apache2", "Apache-2.0"), ("MIT License", "MIT"), ("mit", "MIT"), ("cc-by-sa-4.0", "CC-BY-SA-4.0"),
    ("CC BY-SA 4.0", "CC-BY-SA-4.0"), ("BSD 3-Clause", "BSD-3-Clause"), ("odc-by", "ODC-By-1.0"),
    ("cc-by", None), ("proprietary", None), ("", None), (None, None),
])
def test_declared_licenses_normalise_to_spdx_ids(declared, spdx):
    assert normalize_license(declared) == spdx


@pytest.mark.parametrize("declared", ["cc-by-nc-4.0", "CC BY-NC-SA 4.0",
                                      "Creative Commons Attribution-NonCommercial 4.0"])
def test_a_non_commercial_seed_is_refused(declared):
    result = gate({"m": "sim/fast"}, [Seed(name="clauses", license=declared)])
    assert not result.ok and [p.kind for p in result.problems] == ["seed"]
    assert result.problems[0].name == "clauses" and result.problems[0].model_or_license == declared
    assert "non-commercial (NC)" in result.problems[0].reason


@pytest.mark.parametrize("declared", ["cc-by-nd-4.0", "CC BY-ND 4.0"])
def test_a_no_derivatives_seed_is_refused(declared):
    result = gate({"m": "sim/fast"}, [Seed(name="dialogues", license=declared)])
    assert not result.ok and "no-derivatives (ND)" in result.problems[0].reason


def test_nc_and_nd_are_refused_even_for_a_non_commercial_purpose_and_can_not_be_allowed():
    result = gate({"m": "sim/fast"}, [Seed(name="s", license="cc-by-nc-4.0")],
                  purpose=Purpose(commercial=False, train_models=False))
    assert not result.ok
    with pytest.raises(ValidationError, match="NC"):
        SeedLicensePolicy().widened(["CC-BY-NC-4.0"])


def test_an_unknown_or_missing_license_is_refused():
    result = gate({"m": "sim/fast"}, [Seed(name="mystery", license="see website"), Seed(name="bare"),
                                      Seed(name="blank", license="  ")])
    assert not result.ok and [p.name for p in result.problems] == ["mystery", "bare", "blank"]
    assert "not a license the gate recognises" in result.problems[0].reason
    assert result.problems[1].model_or_license is None and "no license declared" in result.problems[1].reason
    assert "no license declared" in result.problems[2].reason


def test_a_cc_by_sa_seed_is_allowed_flagged_share_alike_and_makes_the_output_cc_by_sa():
    result = gate({"m": "sim/fast"}, [Seed(name="wiki", license="CC BY-SA 4.0", attribution="Wikipedia contributors",
                                           source="https://huggingface.co/datasets/wikimedia/wikipedia"),
                                      Seed(name="facts", license="cc-by-4.0")])
    assert result.ok, result.problems
    assert result.share_alike and result.dataset_license == "cc-by-sa-4.0"
    assert result.seed_licenses == {"wiki": "CC-BY-SA-4.0", "facts": "CC-BY-4.0"}
    assert any("share-alike" in w and "wiki" in w for w in result.warnings)
    assert any(a.startswith("wiki: Wikipedia contributors") for a in result.attributions)


@pytest.mark.parametrize("seeds, expected", [
    ([], "cc0-1.0"), (["CC0-1.0"], "cc0-1.0"), (["MIT", "CC0-1.0"], "mit"), (["MIT", "Apache-2.0"], "apache-2.0"),
    (["Apache-2.0", "CC-BY-4.0", "CC0-1.0"], "cc-by-4.0"), (["CC-BY-4.0", "CC-BY-SA-4.0"], "cc-by-sa-4.0"),
    (["LicenseRef-house-data"], "other"),
])
def test_the_dataset_license_follows_the_most_demanding_seed(seeds, expected):
    assert dataset_license_for(seeds) == expected


def test_a_job_without_seeds_is_cc0_and_not_share_alike():
    result = gate({"m": "sim/chat"})
    assert result.ok and result.dataset_license == "cc0-1.0" and not result.share_alike and not result.attributions


def test_the_allow_list_can_be_narrowed_and_widened_explicitly():
    narrow = SeedLicensePolicy().narrowed(["cc0"])
    assert narrow.allowed == ("CC0-1.0",)
    result = gate({"m": "sim/fast"}, [Seed(name="s", license="CC-BY-4.0")], policy=narrow)
    assert not result.ok and "not in the allowed seed licenses (CC0-1.0)" in result.problems[0].reason
    assert not gate({"m": "sim/fast"}, [Seed(name="s", license="CC-BY-3.0")]).ok
    wide = SeedLicensePolicy().widened(["CC BY 3.0", "PDDL-1.0"])
    assert "CC-BY-3.0" in wide.allowed and "PDDL-1.0" in wide.allowed
    result = gate({"m": "sim/fast"}, [Seed(name="s", license="cc-by-3.0"), Seed(name="h", license="pddl")],
                  policy=wide)
    assert result.ok and result.seed_licenses == {"s": "CC-BY-3.0", "h": "PDDL-1.0"}


@pytest.mark.parametrize("closed", ["All-Rights-Reserved", "LicenseRef-scraped", "GPL-3.0-only", "OpenRAIL"])
def test_an_allow_list_cannot_admit_a_license_that_is_not_open(closed):
    """Else a job could label data scraped under any terms "License-Safe" by allowing its license."""
    with pytest.raises(ValueError, match="not one of the open licenses"):
        SeedLicensePolicy().widened([closed])


# --- models --------------------------------------------------------------------------------------------------

def test_an_openai_model_is_refused_when_the_job_trains_models():
    result = gate({"writer": "openai/gpt-4o"})
    assert not result.ok
    (problem,) = result.problems
    assert problem.kind == "model" and problem.name == "writer" and problem.model_or_license == "openai/gpt-4o"
    assert problem.reason.startswith("openai/gpt-4o: ") and "compete with OpenAI" in problem.reason
    assert problem.reason.endswith("(train_models requested)")
    assert "openai/gpt-4o" not in result.model_licenses


def test_the_same_openai_model_is_allowed_when_the_job_trains_nothing():
    result = gate({"writer": "openai/gpt-4o"}, purpose=Purpose(train_models=False))
    assert result.ok and result.problems == []
    assert result.model_licenses["openai/gpt-4o"].spdx == "LicenseRef-OpenAI-Terms"
    assert any("human-generated" in o for o in result.obligations)


def test_a_model_with_no_license_entry_is_refused():
    result = gate({"judge": "cohere/command-a"})
    assert not result.ok and "no license entry" in result.problems[0].reason
    assert result.problems[0].model_or_license == "cohere/command-a"


def test_a_model_outside_the_catalog_is_refused_when_the_catalog_is_known(catalog_ids):
    result = gate({"m": "acme/imaginary-9000", "ok": "sim/fast"}, known_models=catalog_ids)
    assert [p.name for p in result.problems] == ["m"] and "not in the catalog" in result.problems[0].reason
    assert gate({"ok": "sim/fast:free"}, known_models=catalog_ids).ok  # a variant of a known model


def test_a_llama_3_1_model_is_allowed_with_its_obligations():
    result = gate({"writer": "meta-llama/llama-3.1-8b-instruct", "judge": "meta-llama/llama-3.1-70b-instruct"})
    assert result.ok, result.problems
    assert any('"Built with Llama"' in o for o in result.obligations)
    assert any('"Llama" at the beginning of its name' in o for o in result.obligations)
    assert len(result.obligations) == len(set(result.obligations)) == 5  # two models, one license: deduplicated
    assert all(o.startswith("Llama 3.1 Community License: ") for o in result.obligations)


def test_llama_3_0_forbids_what_3_1_allows():
    result = gate({"writer": "meta-llama/llama-3-70b-instruct"})
    assert not result.ok and "improve any other large language model" in result.problems[0].reason
    assert gate({"writer": "meta-llama/llama-3-70b-instruct"}, purpose=Purpose(train_models=False)).ok


def test_gemma_is_allowed_and_carries_the_model_derivative_rule():
    result = gate({"writer": "google/gemma-3-27b-it"})
    assert result.ok and any("Model Derivative" in o for o in result.obligations)
    assert not gate({"writer": "google/gemini-2.5-flash"}).ok


def test_every_problem_is_listed_together():
    result = gate({"writer": "openai/gpt-4o", "judge": "anthropic/claude-opus-4.5", "extra": "cohere/command-a",
                   "fine": "sim/fast"},
                  [Seed(name="nc", license="cc-by-nc-4.0"), Seed(name="ok", license="cc0"), Seed(name="none")])
    assert not result.ok
    assert [(p.kind, p.name) for p in result.problems] == [
        ("model", "writer"), ("model", "judge"), ("model", "extra"), ("seed", "nc"), ("seed", "none")]
    assert set(result.model_licenses) == {"sim/fast"} and result.seed_licenses == {"ok": "CC0-1.0"}
    with pytest.raises(LicenseRefused) as refused:
        result.raise_for_problems()
    message = str(refused.value)
    assert "5 problem(s)" in message and all(name in message for name in ("writer", "judge", "extra", "nc", "none"))
    assert refused.value.result is result


def test_the_result_is_json_with_the_policy_version():
    result = gate({"m": "meta-llama/llama-3.3-70b-instruct"}, [Seed(name="s", license="MIT")])
    data = orjson.loads(orjson.dumps(result.to_dict()))
    assert data["ok"] is True and data["policy_version"] == load_table().policy_version
    assert data["dataset_license"] == "mit"
    assert data["model_licenses"]["meta-llama/llama-3.3-70b-instruct"]["license"] == "Llama 3.3 Community License"
    assert data["allowed_seed_licenses"] == ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "Apache-2.0", "MIT"]


# --- operator entries and dataset cards ----------------------------------------------------------------------

def test_operator_entries_from_the_catalog_file_come_before_the_table(tmp_path):
    config = tmp_path / "catalog.yaml"
    config.write_text(yaml.safe_dump({"licenses": [{
        "match": ["cohere/*"], "license": "Our agreement with Cohere", "spdx": "LicenseRef-acme-cohere",
        "commercial_use": True, "train_other_models": True, "obligations": ["credit Cohere"],
        "source": "https://intranet.example.com/agreements/cohere"}]}))
    extra = operator_licenses(config)
    assert [e.license for e in extra] == ["Our agreement with Cohere"]
    assert CatalogFile.model_validate(yaml.safe_load(config.read_text())).licenses == list(extra)
    result = gate({"judge": "cohere/command-a"}, extra_licenses=extra)
    assert result.ok and result.obligations == ["Our agreement with Cohere: credit Cohere"]
    assert not gate({"judge": "cohere/command-a"}).ok
    assert operator_licenses(None) == ()  # SWITCHYARD_CONFIG is unset in tests


def test_a_dataset_card_declares_its_license_in_the_front_matter():
    assert card_license("---\nlicense: cc-by-sa-4.0\ntags: [legal]\n---\n# Clauses\n") == "cc-by-sa-4.0"
    assert card_license("---\nlicense: other\nlicense_name: house\n---\n") == "other (house)"
    assert card_license("---\nlicense: [mit, cc-by-4.0]\n---\n") == "mit AND cc-by-4.0"
    assert card_license("# no front matter\nlicense: mit\n") is None
    assert card_license("---\ntags: [x]\n---\n") is None
    refused = gate({"m": "sim/fast"}, [Seed(name="s", license=card_license("---\nlicense: other\n---\n"))])
    assert not refused.ok
