"""Every docs snippet (docs/snippets: curl, Python, Node with the official `openai` package, Go with the standard
library) runs against `python -m infra.local` on loopback and prints what it promises; the docs page shows the
files as they are. A missing toolchain skips its snippets with the reason, or fails them when CI is set."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from typing import Callable, Iterator

import pytest

from infra import snippets
from tests.conftest import LocalProcess

NODE_OPENAI = snippets.SNIPPETS / "node" / "node_modules" / "openai" / "package.json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalProcess]:
    stack = LocalProcess(tmp_path_factory.mktemp("snippets-state"), {"SWITCHYARD_LAKE_EXPORT": "0"}).start()
    yield stack
    stack.stop()


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set: the snippet must run)")
    pytest.skip(why)


def command(language: str, file: str, tmp_path) -> tuple[list[str], dict[str, str]]:
    if language == "curl":
        for tool in ("bash", "curl"):
            if not shutil.which(tool):
                _unavailable(f"{tool} is not installed")
        return ["bash", file], {}
    if language == "Python":
        return [sys.executable, file], {}
    if language == "Node":
        if not shutil.which("node"):
            _unavailable("node is not installed (apt-get install -y nodejs npm)")
        if not NODE_OPENAI.exists():
            _unavailable("the Node snippets' openai package is not installed: `make install` (needs npm)")
        return ["node", file], {}
    if not shutil.which("go"):
        _unavailable("go is not installed (apt-get install -y golang-go)")
    # the standard library only: no module proxy (nothing may be downloaded), caches in the test's own directory
    return ["go", "run", file], {"GOCACHE": str(tmp_path / "gocache"), "GOPATH": str(tmp_path / "gopath"),
                                 "GOPROXY": "off", "GOFLAGS": "", "GOTOOLCHAIN": "local", "GO111MODULE": "off"}


def _json(out: str) -> dict:
    return json.loads(out)


def chat(language: str, out: str) -> None:
    text = _json(out)["choices"][0]["message"]["content"] if language == "curl" else out
    assert text.startswith('On "Say hello"')


def streaming(language: str, out: str) -> None:
    if language == "curl":
        events = [line[6:] for line in out.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]).startswith(
            'On "Tell me a story"')
        assert chunks[-1]["usage"]["completion_tokens"] > 0
    else:
        assert out.startswith('On "Tell me a story"') and re.search(r"\n\[\d+ tokens\]\n$", out), out


def tools(language: str, out: str) -> None:
    if language == "curl":
        call = _json(out)["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])
    else:
        assert re.match(r'tool call: get_weather \{"city": ?"[^"]*"\}\nanswer: The tool returned ', out), out


def healing(language: str, out: str) -> None:
    if language == "curl":
        answer = _json(out)
        assert answer["heal_status"] == "healed" and answer["heal"]["schema_valid"] is True
        assert set(json.loads(answer["choices"][0]["message"]["content"])) == {"city", "temperature_c"}
    else:
        assert out.startswith("healed ") and re.search(r"schema_valid['\"]?: ?(True|true)", out), out


def fallbacks(language: str, out: str) -> None:
    if language == "curl":
        assert _json(out)["model"] == "sim/fast"
    else:
        assert out == "models: served by sim/fast\nroute: served by sim/fast\n", out


def keys(language: str, out: str) -> None:
    if language == "curl":
        created = _json(out)
        assert created["key"].startswith("sk-sy-v1-") and created["data"]["limit"] == 5
    else:
        assert re.fullmatch(r"[0-9a-f]{12} sk-sy-v1-[0-9a-f]{12}-\S+\n", out), out


CHECKS: dict[str, Callable[[str, str], None]] = {"chat": chat, "streaming": streaming, "tools": tools,
                                                 "healing": healing, "fallbacks": fallbacks, "keys": keys}


def test_every_topic_has_a_check():
    assert set(CHECKS) == set(snippets.TOPICS)


@pytest.mark.e2e
@pytest.mark.parametrize("language", list(snippets.LANGUAGES))
@pytest.mark.parametrize("topic", list(snippets.TOPICS))
def test_the_snippet_runs_and_prints_what_it_promises(stack, topic, language, tmp_path):
    file = snippets.path(topic, language)
    argv, extra = command(language, str(file), tmp_path)
    env = {**os.environ, **extra, "SWITCHYARD_BASE_URL": stack.url, "SWITCHYARD_API_KEY": stack.key("dev-key"),
           "SWITCHYARD_ADMIN_KEY": stack.key("admin-key")}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, f"{file} failed:\n{done.stderr}"
    CHECKS[topic](language, done.stdout)


def test_every_snippet_file_is_a_topic_and_language_of_the_page():
    files = {p for p in snippets.SNIPPETS.rglob("*") if p.suffix in (".sh", ".py", ".mjs", ".go")
             and "node_modules" not in p.parts}
    assert files == {snippets.path(t, lang) for t in snippets.TOPICS for lang in snippets.LANGUAGES}


def test_the_docs_page_shows_each_snippet_as_it_is():
    assert snippets.PAGE.read_text() == snippets.page(), "docs/snippets/README.md is stale: run " \
                                                         "`python -m infra.snippets`"


def test_the_snippets_read_the_base_url_and_keys_from_the_environment():
    for topic in snippets.TOPICS:
        for language in snippets.LANGUAGES:
            text = snippets.path(topic, language).read_text()
            assert "SWITCHYARD_BASE_URL" in text and "127.0.0.1:8080" in text
            assert ("SWITCHYARD_ADMIN_KEY" if topic == "keys" else "SWITCHYARD_API_KEY") in text
            assert "sk-sy-" not in text  # no key written into a snippet


def test_the_go_snippets_import_the_standard_library_only():
    for topic in snippets.TOPICS:
        block = re.search(r"import \((.*?)\)", snippets.path(topic, "Go").read_text(), re.S)
        imports = re.findall(r'"([^"]+)"', block.group(1))
        assert imports and all("." not in i.split("/")[0] for i in imports), imports


@pytest.mark.parametrize("language", ["Node", "Go", "curl"])
def test_a_missing_toolchain_skips_with_its_reason_or_fails_under_ci(language, monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="is not installed"):
        command(language, "x", tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        command(language, "x", tmp_path)
