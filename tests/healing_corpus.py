"""Corpora of broken LLM-style JSON with known answers, for the healing tests and benchmark.

Each case is (name, broken text, expected value or TRUNCATED). The broken texts are written from known values
by `emit`, in the styles LLMs break JSON in, so the value a repair must produce is known exactly; truncated
cases are cuts of valid documents, whose repair must be a prefix-consistent part of the original value.
"""

from __future__ import annotations

import json
import random
from typing import Any, Iterator

import orjson

TRUNCATED = object()

BASES: list[Any] = [
    {"name": "Ada Lovelace", "age": 36, "languages": ["English", "French"], "active": True, "manager": None},
    {"data": [{"id": 1, "score": 0.93, "tags": ["a", "b"]}, {"id": 2, "score": -1.5e-3, "tags": []}],
     "total": 2, "next": None},
    {"标题": "合同条款", "内容": "甲方应于签约后三十日内付款。乙方保留解释权。", "风险等级": "高", "页码": [1, 2, 3]},
    {"emoji": "😀🚀✨", "mixed": "naïve café — “quoted” ‘single’", "flags": [True, False]},
    {"big": 1e+10, "small": 2.5E-7, "neg": -42, "zero": 0, "exp": 6.02e23, "int_big": 12345678901234567890},
    {"path": "C:\\Users\\ada\\file.txt", "quote": "She said \"hi\"", "newline": "line1\nline2", "tab": "a\tb",
     "unicode": "\u00e9\u4e2d"},
    {"level1": {"level2": {"level3": {"level4": {"level5": {"level6": {"value": "deep", "list": [1, [2, [3]]]}}}}}}},
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    {"answer": "x" * 1500 + " end", "sources": ["https://example.com/a?b=1&c=2", "ftp://x.y/z"]},
    {"consultation": {"patient": "患者自述头痛三天", "doctor": "建议多休息, 如持续请就医。", "follow_up": True},
     "risk": {"score": 0.12, "explanation": "低风险 (low risk)"}},
    {"tool": "get_weather", "arguments": {"city": "São Paulo", "days": 3, "units": "metric"}},
    {"items": [{"sku": "A-1", "qty": 2, "price": 9.99}, {"sku": "B-2", "qty": 1, "price": 120.0}],
     "currency": "EUR", "note": "price incl. VAT; see §4.2"},
]


def emit(v: Any, style: dict[str, Any], depth: int = 0) -> str:
    """Write `v` as JSON-ish text in a broken style (the value a correct repair returns is `v` itself)."""
    sep = "\n" if style.get("missing_commas") else ", "
    if isinstance(v, dict):
        members = []
        for k, x in v.items():
            members.append(f"{_key(k, style)}: {emit(x, style, depth + 1)}")
        if style.get("comments"):  # a line comment after each member (it ends at the newline)
            body = "".join(f"\n  {m}{',' if i < len(members) - 1 else ''} // note" for i, m in enumerate(members))
            body += "\n" if members else ""
        else:
            body = sep.join(members)
        if style.get("trailing_commas") and members:
            body += ","
        return "{" + body + "}"
    if isinstance(v, list):
        items = [emit(x, style, depth + 1) for x in v]
        if style.get("ellipsis") and items:
            items.append("...")
        body = sep.join(items)
        if style.get("trailing_commas") and items:
            body += ","
        return "[" + body + "]"
    if v is True or v is False or v is None:
        if style.get("python"):
            return {True: "True", False: "False", None: "None"}[v]
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return json.dumps(v) if not isinstance(v, float) else repr(v).replace("inf", "1e999")
    return _string(v, style)


def _key(k: str, style: dict[str, Any]) -> str:
    if style.get("unquoted_keys") and k.isidentifier():
        return k
    return _string(k, {**style, "raw_newlines": False, "bad_escapes": False})


def _string(s: str, style: dict[str, Any]) -> str:
    q = style.get("quote", '"')
    if q == "'":
        body = json.dumps(s, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
        return f"'{body}'"
    if q == "curly":
        if "“" in s or "”" in s or '"' in s or "\\" in s or "\n" in s:
            return json.dumps(s, ensure_ascii=False)
        return f"“{s}”"
    body = json.dumps(s, ensure_ascii=style.get("ascii", False))[1:-1]
    if style.get("raw_newlines"):
        body = body.replace("\\n", "\n").replace("\\t", "\t")
    return f'"{body}"'


STYLES: dict[str, dict[str, Any]] = {
    "single_quotes": {"quote": "'"},
    "curly_quotes": {"quote": "curly"},
    "unquoted_keys": {"unquoted_keys": True},
    "python_literals": {"python": True},
    "trailing_commas": {"trailing_commas": True},
    "missing_commas": {"missing_commas": True},
    "comments": {"comments": True},
    "raw_control_characters": {"raw_newlines": True},
    "ellipsis": {"ellipsis": True},
    "single_quotes_python": {"quote": "'", "python": True, "trailing_commas": True},
}


def _wrap(name: str, text: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    yield name, text
    yield f"{name}+fence", f"```json\n{text}\n```"
    yield f"{name}+prose", f"Sure! Here is the JSON you asked for:\n{text}\n\nLet me know if you need anything else."


def cases() -> list[tuple[str, str, Any]]:
    rng = random.Random(20261129)
    out: list[tuple[str, str, Any]] = []
    for b, base in enumerate(BASES):
        valid = json.dumps(base, ensure_ascii=False)
        for name, style in STYLES.items():
            text = emit(base, style)
            for case_name, wrapped in _wrap(f"{b}:{name}", text, rng):
                if case_name.endswith(("+fence", "+prose")) and name not in ("single_quotes", "trailing_commas"):
                    continue
                out.append((case_name, wrapped, base))
        out.append((f"{b}:fence_only", f"```json\n{json.dumps(base, indent=2)}\n```", base))
        out.append((f"{b}:prose_only", f"The result is {valid}. Hope that helps!", base))
        out.append((f"{b}:extra_closer", valid + "}", base))
        if valid.endswith("}") and "]" in valid:  # {"data":[{...}} : one closing bracket missing
            cut = valid.rindex("]")
            out.append((f"{b}:missing_bracket", valid[:cut] + valid[cut + 1:], base))
        for k in sorted(rng.sample(range(1, len(valid)), min(12, len(valid) - 1))):
            out.append((f"{b}:truncated@{k}", valid[:k], TRUNCATED))
    # invalid escapes: the backslash becomes text, the characters stay as written
    out.append(("escape:x41", '{"a": "\\x41 and \\q"}', {"a": "\\x41 and \\q"}))
    out.append(("escape:short_u", '{"a": "\\u12 end"}', {"a": "\\u12 end"}))
    out = [case for case in out if not _parses(case[1])]  # a style that found nothing to break is no case
    out.append(("escape:windows_path", '{"p": "C:\\Users\\x"}', {"p": "C:\\Users\\x"}))  # \U, \x: invalid
    return out


def _parses(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def prefix_consistent(got: Any, want: Any) -> bool:
    """Is `got` (the repair of a cut of `want`'s JSON) a part of `want` that the cut could have produced?"""
    if isinstance(want, dict):
        return isinstance(got, dict) and list(got) == list(want)[:len(got)] and all(
            prefix_consistent(got[k], want[k]) for k in got)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) <= len(want) and all(
            prefix_consistent(g, w) for g, w in zip(got, want))
    if isinstance(want, str):
        return isinstance(got, str) and want.startswith(got)
    if isinstance(want, bool) or want is None:
        return got is want
    if isinstance(want, (int, float)):  # numbers are never cut: whole or absent
        return isinstance(got, (int, float)) and not isinstance(got, bool) and got == want
    return False


# -- misplaced closers: the answer determined by the text ---------------------------------------------------
def _structural_closers(text: str) -> list[int]:
    """Offsets of the closers outside strings."""
    at, in_string, escape = [], False, False
    for i, c in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "}]":
            at.append(i)
    return at


def _determined(text: str) -> Any:
    """The one value every single-closer edit that makes `text` valid gives, or None if there is no such edit
    or the edits disagree."""
    found: list[Any] = []
    edits = [text[:p] + c + text[p:] for p in range(len(text) + 1) for c in "}]"]
    for p in _structural_closers(text):
        other = "]" if text[p] == "}" else "}"
        edits += [text[:p] + text[p + 1:], text[:p] + other + text[p + 1:]]
    for edit in edits:
        try:
            value = orjson.loads(edit)
        except orjson.JSONDecodeError:
            continue
        if not found:
            found.append(value)
        elif value != found[0]:
            return None
    return found[0] if found else None


def misplaced_closers() -> list[tuple[str, str, Any]]:
    """Each base with one closer in its middle deleted, swapped for the other kind or doubled, kept when every
    single-closer edit that makes the text valid JSON gives the same value (then the expected one)."""
    cases: list[tuple[str, str, Any]] = []
    for b, base in enumerate(BASES):
        for style, text in (("compact", json.dumps(base, separators=(",", ":"))), ("spaced", json.dumps(base))):
            closers = _structural_closers(text)
            tail = len(text.rstrip("}] "))
            for p in (p for p in closers if p < tail):  # in the middle: the end is truncation's business
                other = "]" if text[p] == "}" else "}"
                for edit, broken in (("deleted", text[:p] + text[p + 1:]),
                                     ("swapped", text[:p] + other + text[p + 1:]),
                                     ("doubled", text[:p] + text[p] + text[p:])):
                    want = _determined(broken)
                    if want is not None:
                        cases.append((f"{b}:{style}:{edit}@{p}", broken, want))
    return cases
