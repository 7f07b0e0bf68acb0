"""End to end: the installed `switchyard` command (a subprocess) against `python -m infra.local`, then the
official openai SDK through what it set up: a key, a catalog file, a local OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import openai
import pytest

from tests.conftest import LocalProcess

pytestmark = pytest.mark.e2e
SWITCHYARD = Path(sys.executable).with_name("switchyard")  # the console script `make install` puts in .venv


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalProcess]:
    stack = LocalProcess(tmp_path_factory.mktemp("cli-state"), {"SWITCHYARD_LAKE_EXPORT": "0"}).start()
    yield stack
    stack.stop()


def switchyard(stack: LocalProcess, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SWITCHYARD_BASE_URL": stack.url, "SWITCHYARD_API_KEY": key or stack.key("admin-key")}
    return subprocess.run([str(SWITCHYARD), *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_console_script_is_installed_and_helps():
    assert SWITCHYARD.exists(), "run `make install`: it installs sdk/ into .venv"
    done = subprocess.run([str(SWITCHYARD), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for group in ("keys", "catalog", "providers", "analytics", "rankings", "synthetic", "audit", "governance"):
        assert group in done.stdout


def test_a_key_a_catalog_and_a_local_server_then_the_openai_sdk(stack, fake_upstream, tmp_path):
    made = switchyard(stack, "keys", "create", "cli-e2e", "--allowed-model", "team/*", "--allowed-model",
                      "localfake/*", "--secret-only")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sk-sy-v1-")

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("providers:\n  - {id: team-sim, kind: sim}\n"
                       "models:\n  - {id: team/sim, provider: team-sim, upstream_model: fast, context_length: 8192}\n")
    loaded = switchyard(stack, "catalog", "load", str(catalog))
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["written"]["model"] == 1

    added = switchyard(stack, "providers", "add-local", "localfake", "--base-url", fake_upstream.base_url,
                       "--model", "ok")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["models"] == ["localfake/ok"]

    client = openai.OpenAI(base_url=stack.url + "/api/v1", api_key=key, max_retries=0)
    before = len(fake_upstream.requests)
    answer = client.chat.completions.create(model="localfake/ok", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert fake_upstream.requests[before]["body"]["model"] == "ok"
    sim = client.chat.completions.create(model="team/sim", messages=[{"role": "user", "content": "Hi"}])
    assert sim.choices[0].message.content and sim.model == "team/sim"
    with pytest.raises(openai.APIStatusError) as refused:  # the key's allowlist, set by the CLI
        client.chat.completions.create(model="sim/fast", messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.status_code == 403

    listed = switchyard(stack, "models", "user", key=key)
    assert listed.returncode == 0, listed.stderr
    assert {"team/sim", "localfake/ok"} <= {m["id"] for m in json.loads(listed.stdout)["data"]}


def test_a_synthetic_job_waited_for_with_a_progress_bar(stack):
    done = switchyard(stack, "--progress", "synthetic", "submit", "--template", "legal-clauses", "--num-records", "3",
                      "--wait", "--poll", "0.2")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "completed" and job["rows_done"] == 3
    assert f"job {job['job_id']}" in done.stderr and "3/3" in done.stderr  # the bar, on stderr
    rows = switchyard(stack, "synthetic", "rows", job["job_id"])
    assert rows.returncode == 0 and len(json.loads(rows.stdout)["data"]) == 3, rows.stderr


def test_an_api_error_is_one_line_and_a_nonzero_exit(stack):
    done = switchyard(stack, "keys", "get", "000000000000")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("switchyard: error: 404: ") and done.stderr.count("\n") == 1, done.stderr
    done = switchyard(stack, "keys", "list", key="sk-sy-v1-000000000000-wrongwrongwrongwrongwrongwrongwr000000")
    assert done.returncode == 1 and done.stderr.startswith("switchyard: error: 401: "), done.stderr
