"""Synthetic jobs through `make run`'s stack: the API starts a job, the engine calls the gateway itself (metered
as the app switchyard-synthetic), and the outputs land in the data store, loadable with `datasets`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support import api

pytestmark = pytest.mark.e2e


def call(stack, method: str, path: str, key: str, body=None) -> tuple[int, dict]:
    return api(stack.url, method, path, key, body)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A stack of its own, its data store a directory (the same LakeStore interface as S3), with a flaky
    model whose failures the engine must replace."""
    from tests.conftest import LocalProcess

    root = tmp_path_factory.mktemp("synthetic")
    config = root / "switchyard.yaml"
    config.write_text(
        "models:\n"
        "  - {id: sim/flaky-json, provider: sim, context_length: 32768, pricing: {prompt: 1, completion: 2},\n"
        "     sim: {error_rate: 0.1, error_status: 400}}\n"
        "  - {id: sim/slow-50, provider: sim, context_length: 32768, pricing: {prompt: 1, completion: 2},\n"
        "     sim: {latency_ms: 50}}\n")
    process = LocalProcess(root / "state", {"SWITCHYARD_CONFIG": str(config),
                                            "SWITCHYARD_LAKE_URI": str(root / "data")}).start()
    process.data = root / "data"
    yield process
    process.stop()


def wait_done(stack, job_id: str, admin: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, meta = call(stack, "GET", f"/api/v1/synthetic/jobs/{job_id}", admin)
        assert status == 200, meta
        if meta["status"] not in ("queued", "running"):
            return meta
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {meta}")


def rows_of(stack, job_id: str):
    parts = sorted((stack.data / "synthetic" / job_id / "data").glob("*.parquet"))
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(p) for p in parts])


def flaky_spec(n: int, **extra) -> dict:
    return {
        "name": "flaky", "num_records": n, "seed": 5, "buffer_size": 25,
        "model_configs": [{"alias": "w", "model": "sim/flaky-json",
                           "inference_parameters": {"max_tokens": 60, "max_parallel_requests": 16}},
                          {"alias": "j", "model": "sim/fast", "inference_parameters": {"max_tokens": 200}}],
        "columns": [
            {"name": "topic", "column_type": "sampler", "sampler_type": "category",
             "params": {"values": ["tax", "leases", "wills"]}},
            {"name": "note", "column_type": "llm-text", "model_alias": "w", "prompt": "Write about {{ topic }}"},
            {"name": "facts", "column_type": "llm-structured", "model_alias": "w", "prompt": "Facts of {{ note }}",
             "output_format": {"type": "object", "additionalProperties": False, "required": ["count", "tags"],
                               "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 9},
                                              "tags": {"type": "array", "items": {"type": "string"}}}}},
            {"name": "grade", "column_type": "llm-judge", "model_alias": "j", "prompt": "Grade {{ note }}",
             "scores": [{"name": "quality", "description": "how good", "options": {1: "bad", 2: "ok", 3: "good"}}],
             "threshold": {"quality": 2}},
        ],
        "budget": {"max_attempts_per_row": 20, "max_failed_rows": 400},  # a row fails all 20: p ≈ 2e-7
        **extra,
    }


def test_a_flaky_model_still_gives_exactly_n_rows_every_failure_on_record(stack):
    admin = stack.key("admin-key")
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": flaky_spec(100)})
    assert status == 202, job
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed", meta
    table = rows_of(stack, job["job_id"])
    assert table.num_rows == 100 == meta["rows_done"]
    assert sorted(table.column("_row").to_pylist()) == list(range(100))
    failures = pq.read_table(stack.data / "synthetic" / job["job_id"] / "failures").to_pylist()
    assert meta["rows_failed"] == len(failures) > 0
    reasons = {f["column"] for f in failures}
    assert reasons <= {"note", "facts", "grade"}
    assert any("below the threshold" in f["reason"] for f in failures)  # the judge gate replaced rows
    # calls that failed for good (an upstream 400 is not retried): their rows were made again
    assert any(f["column"] in ("note", "facts") and f["status"] == 400 and f["request_id"] for f in failures)
    # provenance: every LLM cell names its model, provider and the gateway's generation id
    for column in ("note", "facts", "grade"):
        ids = table.column(f"_{column}_request_id").to_pylist()
        assert all(i and i.startswith("gen-") for i in ids) and len(set(ids)) == 100
        assert set(table.column(f"_{column}_provider").to_pylist()) == {"sim"}
    assert set(table.column("_job_id").to_pylist()) == {job["job_id"]}
    assert all(q["quality"]["score"] >= 2 for q in table.column("grade").to_pylist())
    # the gateway metered each call under the job's own key, as the app switchyard-synthetic
    from shared.keys.tokens import derived_key

    job_key, _ = derived_key(stack.key("pepper").encode(), f"synthetic-job|{job['job_id']}")
    request_id = table.column("_facts_request_id")[0].as_py()
    deadline = time.monotonic() + 10
    while (found := call(stack, "GET", f"/api/v1/generation?id={request_id}", admin))[0] == 404 \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    status, gen = found  # a management key reads any call
    assert status == 200, gen
    assert call(stack, "GET", f"/api/v1/generation?id={request_id}", job_key)[1]["error"]["message"] == \
        "This API key is disabled"  # the job ended
    assert gen["data"]["app"] == "switchyard-synthetic" and gen["data"]["heal_status"] in ("skipped", "healed")
    assert call(stack, "GET", f"/api/v1/generation?id={request_id}", stack.key("dev-key"))[0] == 404
    # the job's key is disabled once the job ends
    assert call(stack, "POST", "/api/v1/chat/completions", job_key,
                {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]})[0] == 401


def test_a_license_unsafe_job_is_refused_before_any_call_listing_every_reason(stack, tmp_path):
    admin = stack.key("admin-key")
    spec = flaky_spec(10, name="refused")
    spec["model_configs"].append({"alias": "gpt", "model": "openai/gpt-4o"})
    spec["seed_config"] = {"source": {"path": "seeds/cases.csv"}, "license": "CC-BY-NC-4.0"}
    status, body = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 403, body
    assert body["error"]["metadata"]["error_type"] == "license_refused"
    problems = body["error"]["metadata"]["problems"]
    assert {(p["kind"], p["name"]) for p in problems} == {("model", "gpt"), ("seed", "cases.csv")}
    assert not list(stack.data.glob("synthetic/refused-*"))  # nothing was written, no call was made


def test_the_same_spec_resumes_from_its_last_row_group_with_the_same_rows(stack):
    """A crash mid-job: the job's first groups are written, the rest not; submitting the spec again makes only
    the missing groups, and they are the rows a run without the crash makes."""
    admin = stack.key("admin-key")
    spec = flaky_spec(50, name="resume")
    spec["model_configs"][0]["model"] = "sim/fast"
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed"
    whole = rows_of(stack, job["job_id"]).sort_by("_row")
    folder = stack.data / "synthetic" / job["job_id"]
    # the crash: group 1 and the job's end were never written
    (folder / "data" / "part-00001.parquet").unlink()
    (folder / "groups" / "part-00001.json").unlink()
    meta_file = folder / "metadata.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "status": "running"}))
    kept = (folder / "data" / "part-00000.parquet").stat().st_mtime_ns
    status, again = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 202 and again["job_id"] == job["job_id"]
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed" and meta["rows_done"] == 50
    assert (folder / "data" / "part-00000.parquet").stat().st_mtime_ns == kept  # not made again
    resumed = rows_of(stack, job["job_id"]).sort_by("_row")
    drop = [c for c in whole.column_names if c.endswith("_request_id")]  # new calls, new generation ids
    assert resumed.drop(drop).to_pylist() == whole.drop(drop).to_pylist()


def test_the_template_job_gives_its_rows_card_and_provenance_loadable_with_datasets(stack, tmp_path):
    import datasets

    admin = stack.key("admin-key")
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin,
                       {"template": "legal-clauses", "num_records": 200})
    assert status == 202, job
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed" and meta["rows_done"] == 200, meta
    folder = stack.data / "synthetic" / job["job_id"]
    ds = datasets.load_dataset("parquet", data_files=str(folder / "data" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 200
    assert {"clause_text", "analysis", "review", "_clause_text_request_id", "_config_hash"} <= set(ds.column_names)
    assert ds.features["analysis"]["risk_level"].dtype == "string"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc0-1.0\n")
    assert "license-safe" in card and "License-Safe" in card and "reviewed: no" in card
    assert "sim/fast" in card and "Cost and tokens" in card
    config = json.loads((folder / "config.json").read_text())
    assert config["fingerprint"] == meta["fingerprint"] == ds[0]["_config_hash"]
    status, reviewed = call(stack, "POST", f"/api/v1/synthetic/jobs/{job['job_id']}/review", admin,
                            {"reviewer": "Ada Lovelace", "notes": "spot-checked 20 rows"})
    assert status == 200 and reviewed["review"]["reviewer"] == "Ada Lovelace"
    card = (folder / "README.md").read_text()
    assert "reviewed: yes" in card and "Ada Lovelace" in card
    status, audit = call(stack, "GET", f"/api/v1/audit?target={job['job_id']}", admin)  # both audited
    assert status == 200 and [e["action"] for e in audit["data"]] == ["synthetic.job.review", "synthetic.job.create"]
    assert audit["data"][0]["after"]["review"]["reviewer"] == "Ada Lovelace"
    assert audit["data"][0]["before"] == {"review": None} or not audit["data"][0]["before"]["review"]["reviewed"]


@pytest.mark.parametrize("template", ["legal-clauses", "medical-dialogues", "financial-risk-scripts"])
def test_each_template_previews_with_the_sim_models(stack, template):
    status, result = call(stack, "POST", "/api/v1/synthetic/preview", stack.key("admin-key"),
                          {"template": template, "num_records": 3})
    assert status == 200, result
    assert len(result["rows"]) == 3 and result["stopped_reason"] is None


def test_errors_are_in_the_documented_shape(stack):
    admin = stack.key("admin-key")
    for body, status_expected in (({"spec": {"columns": []}}, 400), ({"template": "nope"}, 404),
                                  ({"spec": {"columns": [{"name": "a", "column_type": "llm-text",
                                                          "model_alias": "m", "prompt": "{{ b }}"}],
                                             "model_configs": [{"alias": "m", "model": "sim/fast"}]}}, 400)):
        status, err = call(stack, "POST", "/api/v1/synthetic/jobs", admin, body)
        assert status == status_expected and set(err["error"]) == {"code", "message", "metadata"}, err
    status, err = call(stack, "POST", "/api/v1/synthetic/jobs", stack.key("dev-key"), {"template": "legal-clauses"})
    assert status == 403
    status, err = call(stack, "GET", "/api/v1/synthetic/jobs/no-such-job", admin)
    assert status == 404


@pytest.mark.parametrize("prefect", [False, True], ids=["plain", "prefect-flow"])
def test_the_cli_runs_a_template_with_a_progress_bar_and_writes_the_outputs(stack, tmp_path, prefect):
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    args = [sys.executable, "-m", "pipelines.synthetic", "run", "--template", "medical-dialogues",
            "--num-records", "30", "--out", str(out), "--gateway", f"{stack.url}/api/v1",
            "--key", stack.key("dev-key"), *(["--progress"] if prefect else ["--no-prefect"])]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}  # (20 s: too short on a busy 2-core machine)
    done = subprocess.run(args, cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["status"] == "completed" and summary["rows_done"] == 30
    # stdout is a pipe here: a bar only when forced (--progress), and then its last state says 30 of 30
    assert ("30/30 [" in done.stderr) == prefect and ("synthetic rows" in done.stderr) == prefect
    folder = out / "synthetic" / summary["job_id"]
    assert pq.read_table(folder / "data").num_rows == 30
    assert (folder / "README.md").exists() and (folder / "config.json").exists()


def test_the_cli_refuses_an_unsafe_spec_before_any_call(stack, tmp_path):
    import subprocess
    import sys

    import yaml

    from shared.synthetic import templates

    spec = templates.load("legal-clauses")
    spec["model_configs"][0]["model"] = "anthropic/claude-sonnet-4"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "pipelines.synthetic", "run", str(path), "--out", str(tmp_path / "o"),
                           "--gateway", f"{stack.url}/api/v1", "--key", stack.key("dev-key"), "--no-prefect"],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: This job is not license-safe")
    assert "  - model drafter: anthropic/claude-sonnet-4: " in done.stderr
    assert not (tmp_path / "o").exists()


def test_a_seed_in_the_data_store_with_a_cc_by_card_feeds_the_rows_and_sets_the_license(stack):
    admin = stack.key("admin-key")
    seeds = stack.data / "seeds" / "cases"
    seeds.mkdir(parents=True, exist_ok=True)
    (seeds / "cases.csv").write_text("case_type,court\nlease dispute,county\nwill contest,probate\n"
                                     "patent claim,federal\n")
    (seeds / "README.md").write_text("---\nlicense: cc-by-4.0\npretty_name: cases\n---\n# Cases\n")
    spec = {"name": "seeded", "num_records": 7, "seed": 3,
            "model_configs": [{"alias": "m", "model": "sim/fast", "inference_parameters": {"max_tokens": 40}}],
            "seed_config": {"source": {"path": "seeds/cases/cases.csv"}, "sampling_strategy": "ordered"},
            "columns": [{"name": "summary", "column_type": "llm-text", "model_alias": "m",
                         "prompt": "A {{ case_type }} case in a {{ court }} court"}]}
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 202, job
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed" and meta["license"]["dataset_license"] == "cc-by-4.0"
    rows = rows_of(stack, job["job_id"]).sort_by("_row").to_pylist()
    assert [r["case_type"] for r in rows] == ["lease dispute", "will contest", "patent claim"] * 2 + ["lease dispute"]
    assert [r["_seed_row"] for r in rows] == [0, 1, 2, 0, 1, 2, 0]
    card = (stack.data / "synthetic" / job["job_id"] / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0\n") and "| cases.csv | CC-BY-4.0 |" in card
    assert "credit the source" in card  # CC BY's attribution, on the card


@pytest.mark.parametrize("path", ["/etc/passwd", "../../state/admin-key", "seeds/../../state/pepper.csv"])
def test_through_the_api_a_seed_is_never_a_file_of_the_server(stack, path):
    spec = {"name": "sneaky", "num_records": 1,
            "model_configs": [{"alias": "m", "model": "sim/fast"}],
            "seed_config": {"source": {"path": path}, "license": "CC0-1.0"},
            "columns": [{"name": "x", "column_type": "llm-text", "model_alias": "m", "prompt": "hi"}]}
    status, body = call(stack, "POST", "/api/v1/synthetic/jobs", stack.key("admin-key"), {"spec": spec})
    assert status == 400 and "not a file of the server" in body["error"]["message"], body


def test_a_job_stopped_by_its_budget_keeps_every_failure_and_resumes_with_a_bigger_one(stack):
    admin = stack.key("admin-key")
    spec = flaky_spec(60, name="budgeted")
    spec["budget"] = {"max_attempts_per_row": 20, "max_failed_rows": 3}
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "failed" and "failure budget is spent" in meta["stopped_reason"]
    assert "**Incomplete: not labelled License-Safe.**" in (stack.data / "synthetic" / job["job_id"] / "README.md").read_text()
    folder = stack.data / "synthetic" / job["job_id"]
    failures = pq.read_table(folder / "failures").num_rows
    # every failed attempt is on record, those over the budget made by calls already in flight included
    assert failures == meta["rows_failed"] > 3
    assert meta["cost_usd"] > 0 and meta["rows_done"] < 60
    spec["budget"] = {"max_attempts_per_row": 20, "max_failed_rows": 1000}  # the same rows: the same job
    status, again = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 202 and again["job_id"] == job["job_id"]
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed" and meta["rows_done"] == 60 == rows_of(stack, job["job_id"]).num_rows, meta
    assert meta["rows_failed"] == pq.read_table(folder / "failures").num_rows > 3
    assert meta["budget"]["max_failed_rows"] == 1000


def test_the_data_designer_fixture_runs_as_written_through_the_cli(stack, tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-m", "pipelines.synthetic", "run",
                           "tests/fixtures/synthetic/data_designer_0.9.7.yaml", "--num-records", "4",
                           "--out", str(tmp_path / "o"), "--gateway", f"{stack.url}/api/v1",
                           "--key", stack.key("dev-key"), "--no-prefect"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    rows = pq.read_table(tmp_path / "o" / "synthetic" / summary["job_id"] / "data").to_pylist()
    assert len(rows) == 4
    assert {"clause_type", "jurisdiction", "clause_text", "clause_facts", "clause_quality", "signer_name"} <= set(rows[0])
    assert "signer" not in rows[0]  # drop: true
    assert all(len(r["effective_date"]) == 10 for r in rows)  # convert_to '%Y-%m-%d'
    assert {r["clause_quality"]["clarity"]["score"] for r in rows} <= {1, 2, 3}
    card = (tmp_path / "o" / "synthetic" / summary["job_id"] / "README.md").read_text()
    assert "| seed_clauses.csv | CC0-1.0 |" in card  # the license from the seed's dataset card


def test_rows_and_the_card_can_be_read_through_the_api(stack):
    admin = stack.key("admin-key")
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"template": "financial-risk-scripts",
                                                                      "num_records": 30})
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed"
    status, page = call(stack, "GET", f"/api/v1/synthetic/jobs/{job['job_id']}/rows?offset=25&limit=10", admin)
    assert status == 200 and page["total"] == 30 and [r["_row"] for r in page["data"]] == [25, 26, 27, 28, 29]
    assert page["data"][0]["assessment"]["action"]
    status, fails = call(stack, "GET", f"/api/v1/synthetic/jobs/{job['job_id']}/rows?failures=true", admin)
    assert status == 200 and fails["total"] == meta["rows_failed"]
    request = urllib.request.Request(f"{stack.url}/api/v1/synthetic/jobs/{job['job_id']}/card",
                                     headers={"Authorization": f"Bearer {admin}"})
    with urllib.request.urlopen(request) as r:
        assert r.headers["Content-Type"].startswith("text/markdown") and r.read().startswith(b"---\nlicense:")
    status, err = call(stack, "GET", f"/api/v1/synthetic/jobs/{job['job_id']}/rows?limit=101", admin)
    assert status == 400 and set(err["error"]) == {"code", "message", "metadata"}


def small(name: str, columns: list, **extra) -> dict:
    return {"name": name, "num_records": 6, "buffer_size": 3,
            "model_configs": [{"alias": "m", "model": "sim/fast", "inference_parameters": {"max_tokens": 30}}],
            "columns": columns, **extra}


def test_a_routing_policy_cannot_send_a_gated_call_to_another_model(stack):
    admin = stack.key("admin-key")
    status, body = call(stack, "PUT", "/api/v1/routes", admin,
                        {"id": "acme/shadow", "applies_to": ["sim/chat"], "default": {"model": "sim/chat"},
                         "rules": [{"when": {"app": ["switchyard-synthetic"]}, "then": {"model": "sim/fast"}}]})
    assert status in (200, 201), body
    try:
        spec = small("shadowed", [{"name": "t", "column_type": "llm-text", "model_alias": "m", "prompt": "hi"}])
        spec["model_configs"][0]["model"] = "sim/chat"
        status, result = call(stack, "POST", "/api/v1/synthetic/preview", admin, {"spec": spec, "num_records": 2})
        assert status == 200 and result["rows"] == [], result
        assert "answered by sim/fast, not sim/chat" in result["failures"][0]["reason"]
    finally:
        call(stack, "DELETE", "/api/v1/routes/acme/shadow", admin)


@pytest.mark.parametrize("spec, problem", [
    (small("forged", [{"name": "_job_id", "column_type": "expression", "expr": "forged"}]),
     "name: String should match pattern '^[A-Za-z]"),
    (small("bad-convert", [{"name": "u", "column_type": "sampler", "sampler_type": "uuid", "params": {},
                            "convert_to": "int"}]), "cannot be converted"),
    (small("closed", [{"name": "t", "column_type": "expression", "expr": "x"}],
           license_policy={"allowed_seed_licenses": ["All-Rights-Reserved"]}), "not one of the open licenses"),
    (small("wide", [{"name": "t", "column_type": "expression", "expr": "x"}],
           model_configs=[{"alias": f"m{i}", "model": "sim/fast", "inference_parameters":
                           {"max_parallel_requests": 100}} for i in range(3)]), "add up to 300"),
])
def test_specs_that_would_forge_provenance_or_break_their_types_are_refused(stack, spec, problem):
    status, body = call(stack, "POST", "/api/v1/synthetic/jobs", stack.key("admin-key"), {"spec": spec})
    assert status == 400 and problem in body["error"]["message"], body


def test_yaml_aliases_are_refused_before_they_expand(stack):
    laughs = "values: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(8))
    request = urllib.request.Request(f"{stack.url}/api/v1/synthetic/preview", data=laughs.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {stack.key('admin-key')}",
                                              "Content-Type": "application/yaml"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code == 400 and "aliases" in json.loads(e.value.read())["error"]["message"]


def test_values_that_do_not_fit_fail_their_row_and_mixed_categories_are_text(stack):
    admin = stack.key("admin-key")
    spec = small("types", [{"name": "c", "column_type": "sampler", "sampler_type": "category",
                            "params": {"values": [1, "a"]}},
                           {"name": "big", "column_type": "expression", "expr": "{{ 2 ** 70 if c == 1 else 5 }}",
                            "dtype": "int"}], budget={"max_attempts_per_row": 30})
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    meta = wait_done(stack, job["job_id"], admin)
    assert meta["status"] == "completed", meta
    rows = rows_of(stack, job["job_id"]).to_pylist()
    assert {r["c"] for r in rows} == {"a"} and {r["big"] for r in rows} == {5}
    failures = pq.read_table(stack.data / "synthetic" / job["job_id"] / "failures").to_pylist()
    assert failures and all("64 bits" in f["reason"] for f in failures)


def test_a_seed_outside_the_data_bucket_is_refused(stack):
    spec = small("elsewhere", [{"name": "t", "column_type": "expression", "expr": "{{ a }}"}],
                 seed_config={"source": {"path": "s3://other-tenant/payroll.csv"}, "license": "CC0-1.0"})
    status, body = call(stack, "POST", "/api/v1/synthetic/preview", stack.key("admin-key"), {"spec": spec})
    assert status == 400 and "data bucket" in body["error"]["message"], body


def test_a_running_job_can_be_cancelled_and_is_reviewed_only_once_it_has_ended(stack):
    admin = stack.key("admin-key")
    spec = small("slow", [{"name": "t", "column_type": "llm-text", "model_alias": "m", "prompt": "hi {{ i }}"},
                          {"name": "i", "column_type": "sampler", "sampler_type": "uuid", "params": {}}],
                 num_records=400, buffer_size=50)
    spec["model_configs"][0].update(model="sim/slow-50", inference_parameters={"max_parallel_requests": 2})
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 202
    status, body = call(stack, "POST", f"/api/v1/synthetic/jobs/{job['job_id']}/review", admin, {"reviewer": "x"})
    assert status == 409 and body["error"]["metadata"]["error_type"] == "conflict"
    assert call(stack, "POST", f"/api/v1/synthetic/jobs/{job['job_id']}/cancel", admin)[0] == 200
    meta = wait_done(stack, job["job_id"], admin, timeout=30)
    assert meta["status"] == "failed" and meta["stopped_reason"] == "cancelled" and meta["rows_done"] < 400
    assert call(stack, "POST", f"/api/v1/synthetic/jobs/{job['job_id']}/cancel", admin)[0] == 409
    status, reviewed = call(stack, "POST", f"/api/v1/synthetic/jobs/{job['job_id']}/review", admin,
                            {"reviewer": "Eve", "notes": "## Reviewer: The Legal Department\n**License-Safe.** ok"})
    assert status == 200
    card = (stack.data / "synthetic" / job["job_id"] / "README.md").read_text()
    # the notes stay text: a fenced block, after which the card goes on as written
    assert card.endswith("- notes:\n\n~~~~text\n## Reviewer: The Legal Department\n**License-Safe.** ok\n~~~~\n")
    assert "- reviewer: `Eve`" in card


def test_data_for_a_narrower_purpose_carries_the_models_restrictions(stack):
    admin = stack.key("admin-key")
    spec = small("no-training", [{"name": "t", "column_type": "expression", "expr": "x"}],
                 license_policy={"train_models": False})
    spec["model_configs"][0]["model"] = "openai/gpt-4o"  # never called: the spec has no LLM column
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 202, job
    meta = wait_done(stack, job["job_id"], admin)
    card = (stack.data / "synthetic" / job["job_id"] / "README.md").read_text()
    assert meta["status"] == "completed" and card.startswith("---\nlicense: other\nlicense_name: cc0-1.0 with")
    assert "not for training other models" in card


def test_each_group_reports_its_own_calls(stack):
    admin = stack.key("admin-key")
    spec = small("per-group", [{"name": "t", "column_type": "llm-text", "model_alias": "m", "prompt": "hi {{ i }}"},
                               {"name": "i", "column_type": "sampler", "sampler_type": "uuid", "params": {}}],
                 num_records=90, buffer_size=10)
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    meta = wait_done(stack, job["job_id"], admin)
    stats = [json.loads(p.read_text()) for p in (stack.data / "synthetic" / job["job_id"] / "groups").glob("part-*")]
    assert meta["status"] == "completed" and [s["usage"]["sim/fast"]["calls"] for s in stats] == [10] * 9


def test_a_preview_takes_the_specs_own_size_and_a_null_one(stack):
    admin = stack.key("admin-key")
    spec = small("sized", [{"name": "t", "column_type": "expression", "expr": "x"}], num_records=2)
    assert len(call(stack, "POST", "/api/v1/synthetic/preview", admin, {"spec": spec})[1]["rows"]) == 2
    status, result = call(stack, "POST", "/api/v1/synthetic/preview", admin, {"spec": spec, "num_records": None})
    assert status == 200 and len(result["rows"]) == 2
    assert call(stack, "POST", "/api/v1/synthetic/preview", admin, {"spec": spec, "num_records": 51})[0] == 400
