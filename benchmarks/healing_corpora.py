"""A corpus for benchmarks/healing.py that nobody here wrote.

`json_repair_vectors()`: the test vectors of json_repair's published source distribution, fetched from PyPI at
benchmark time (never committed). 0.57.1 is the newest release whose sdist ships its tests (0.64.6's does not).
Every `assert repair_json("<input>"[, return_objects=...]) == <expected>` of its parsing tests is a vector, kept
when the input is broken JSON and the expected output satisfies our invariants:
- nothing changed or invented: every key and string of the expected value appears in the input as written (an
  empty string only where the input has one), every number is a number the input has;
- nothing the model wrote dropped or wrapped: every number and literal written outside quotes is in the
  expected value, and it has as many objects and arrays as the input opens outside quotes.
What the filter leaves out (and why) is counted and reported with the rates.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import tarfile
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import orjson

JSON_REPAIR_TESTS = "0.57.1"
_TEST_FILES = ("test_json_repair.py", "test_parse_array.py", "test_parse_comment.py", "test_parse_number.py",
               "test_parse_object.py", "test_parse_string.py")  # not schema, CLI, file, strict-mode or speed tests
_CACHE = Path.home() / ".cache" / "switchyard-bench"
_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")
_LITERAL = re.compile(r"\b(?:true|false|null|True|False|None|TRUE|FALSE|NULL|Null)\b")

Case = tuple[str, str, Any]  # (name, broken text, expected value)


def _sdist(version: str) -> bytes:
    """json_repair's sdist from PyPI (checked against the digest PyPI publishes), cached outside the repo."""
    cached = _CACHE / f"json_repair-{version}.tar.gz"
    api = "https://pypi.org/pypi/json-repair/json"
    with urllib.request.urlopen(api, timeout=20) as resp:
        releases = json.load(resp)["releases"]
    sdist = next(u for u in releases[version] if u["packagetype"] == "sdist")
    if cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == sdist["digests"]["sha256"]:
        return cached.read_bytes()
    with urllib.request.urlopen(urljoin(api, sdist["url"]), timeout=60) as resp:
        data = resp.read()
    if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
        raise OSError("the sdist does not match PyPI's digest")
    _CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return data


def json_repair_vectors(version: str = JSON_REPAIR_TESTS) -> tuple[list[Case], dict[str, int]]:
    """The vectors and what was left out; raises OSError when PyPI cannot be reached."""
    cases: list[Case] = []
    left_out = {"valid_input": 0, "options": 0, "no_json_expected": 0, "changes_or_invents": 0,
                "drops_or_wraps": 0}
    with tarfile.open(fileobj=io.BytesIO(_sdist(version))) as tar:
        for name in _TEST_FILES:
            member = tar.extractfile(f"json_repair-{version}/tests/{name}")
            assert member is not None
            for line, text, want in _asserts(member.read().decode(), left_out):
                why = _judge(text, want)
                if why:
                    left_out[why] += 1
                else:
                    cases.append((f"{name}:{line}", text, want))
    return cases, left_out


def _asserts(source: str, left_out: dict[str, int]):
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.ops[0], ast.Eq)):
            continue
        call = node.test.left
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "repair_json" and call.args
                and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
            continue
        options = {k.arg: k.value for k in call.keywords}
        if set(options) - {"return_objects", "skip_json_loads"}:
            left_out["options"] += 1
            continue
        try:
            want = ast.literal_eval(node.test.comparators[0])
            objects = "return_objects" in options and ast.literal_eval(options["return_objects"])
        except ValueError:
            left_out["options"] += 1
            continue
        text = call.args[0].value
        if not objects:
            if want == "":
                left_out["no_json_expected"] += 1
                continue
            want = json.loads(want)
        try:
            orjson.loads(text)
            left_out["valid_input"] += 1
            continue
        except orjson.JSONDecodeError:
            pass
        yield node.lineno, text, want


def _leaves(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(k)
            _leaves(v, out)
    elif isinstance(value, list):
        for v in value:
            _leaves(v, out)
    else:
        out.append(value)
    return out


def _containers(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_containers(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_containers(v) for v in value)
    return 0


def _judge(text: str, want: Any) -> str | None:
    """Why a vector is left out, or None to keep it."""
    if want == "" or want is None:
        return "no_json_expected"
    leaves = _leaves(want, [])
    strings = [leaf for leaf in leaves if isinstance(leaf, str)]
    numbers = [float(leaf) for leaf in leaves if isinstance(leaf, (int, float)) and not isinstance(leaf, bool)]
    written = {float(m) for m in _NUMBER.findall(text)} | {float(m) for m in re.findall(r"\d+\.?\d*", text)}
    for s in strings:
        forms = (s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1])
        if (s == "" and '""' not in text and "''" not in text) or (s and not any(f in text for f in forms)):
            return "changes_or_invents"
    if any(x not in written for x in numbers):
        return "changes_or_invents"
    outside = _QUOTED.sub(" ", text)
    literals = sum(1 for leaf in leaves if leaf is None or isinstance(leaf, bool))
    in_strings = " ".join(strings)
    for m in _NUMBER.findall(outside):
        if float(m) not in numbers and m not in in_strings:
            return "drops_or_wraps"
    if len(_LITERAL.findall(outside)) > literals + len(_LITERAL.findall(in_strings)):
        return "drops_or_wraps"
    if outside.count("{") + outside.count("[") != _containers(want):
        return "drops_or_wraps"
    return None
