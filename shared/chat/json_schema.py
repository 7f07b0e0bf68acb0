"""The JSON Schemas a client sends (`response_format.json_schema.schema`, `tools[].function.parameters`),
checked at the boundary: bounded in depth and size, then valid under the meta-schema of their dialect
(Draft 2020-12 unless `$schema` names another), so that nothing downstream (the sim, healing's schema check,
an upstream) meets a schema it cannot apply.

Draft 2020-12's meta-schema is applied in one merged piece: the official one joins seven vocabulary
meta-schemas through `allOf` and `$dynamicRef`, which jsonschema resolves for every subschema (11.8 ms for a
41-subschema schema; merged, 1.7 ms: ~27 µs a JSON value). For the standard dialect the two accept the same schemas
(tests/test_json_schema.py holds them to it). Schemas found valid are remembered by digest, so a schema an
app sends with every call is checked once per process.
"""

from __future__ import annotations

import hashlib
from functools import cache
from types import SimpleNamespace
from typing import Any

import orjson

MAX_DEPTH = 64  # nesting of objects and arrays in one schema
MAX_NODES = 4096  # JSON values in all the schemas of one request: ~110 ms to check at worst, once per schema
_REMEMBERED = 4096  # digests of schemas found valid
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/"
_valid: dict[bytes, None] = {}


class SchemaBudget:
    """The JSON values left for a request's schemas (one budget shared by all of them)."""

    __slots__ = ("left",)

    def __init__(self, nodes: int = MAX_NODES) -> None:
        self.left = nodes


def check_schema(schema: Any, budget: SchemaBudget) -> str | None:
    """Why this schema cannot be used, or None when it can."""
    problem = _shape(schema, budget)
    if problem:
        return problem
    digest = hashlib.blake2b(orjson.dumps(schema), digest_size=16).digest()  # depth ≤ 64: orjson's limit is 255
    if digest in _valid:
        return None
    error = _lib().best_match(_meta_validator(dialect(schema)).iter_errors(schema))
    if error is not None:
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        return f"not a valid JSON Schema at {error.json_path}: {message}"
    if len(_valid) >= _REMEMBERED:
        _valid.pop(next(iter(_valid)))
    _valid[digest] = None
    return None


class SchemaUnusable(Exception):
    """A valid schema that cannot be applied: a `$ref` that resolves to nothing, or one that refers to itself
    without end."""


def violations(schema: Any, value: Any) -> list[Any]:
    """Where `value` breaks `schema` (jsonschema's ValidationErrors, in path order)."""
    lib = _lib()
    try:
        return sorted(dialect(schema)(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    except (lib.Unresolvable, RecursionError) as e:
        raise SchemaUnusable(type(e).__name__) from e


def dialect(schema: Any) -> type:
    """The jsonschema validator class for this schema: the one its `$schema` names, else Draft 2020-12."""
    lib = _lib()
    if isinstance(schema, dict) and isinstance(schema.get("$schema"), str):
        return lib.validator_for(schema, default=lib.Draft202012Validator)
    return lib.Draft202012Validator


@cache
def _lib() -> SimpleNamespace:
    """jsonschema's parts, imported on first use: only requests with a schema pay for it (~40-80 ms), not
    every cold start."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from referencing.exceptions import Unresolvable

    return SimpleNamespace(Draft202012Validator=Draft202012Validator, best_match=best_match,
                           validator_for=validator_for, Unresolvable=Unresolvable)


def _shape(schema: Any, budget: SchemaBudget) -> str | None:
    """Depth and size, walked without recursion (a deep schema must not exhaust the stack here either)."""
    stack = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        budget.left -= 1
        if budget.left < 0:
            return f"the request's schemas are too large (at most {MAX_NODES} values in all)"
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= MAX_DEPTH and children:
            return f"nested deeper than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


@cache
def _meta_validator(cls: type) -> Any:
    """A validator of schemas of this dialect (built once per dialect; jsonschema imported on first use)."""
    meta = _merged_2020_12() if cls is _lib().Draft202012Validator else cls.META_SCHEMA
    return cls(meta, format_checker=cls.FORMAT_CHECKER)


def _merged_2020_12() -> dict[str, Any]:
    """Draft 2020-12's meta-schema as one schema: the vocabularies' `properties` and `$defs` side by side (their
    names are disjoint), each `$dynamicRef: "#meta"` a `$ref` to the root (what it resolves to when this
    meta-schema is the one applied) and each `$ref` into a vocabulary a local one."""
    from jsonschema_specifications import REGISTRY

    def local(node: Any) -> Any:
        if isinstance(node, list):
            return [local(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "$dynamicRef" and v == "#meta":
                out["$ref"] = "#"
            elif k == "$ref" and isinstance(v, str) and v.startswith("meta/"):  # "meta/core#/$defs/x"
                out["$ref"] = v[v.index("#"):]
            else:
                out[k] = local(v)
        return out

    root = REGISTRY[_DRAFT_2020_12 + "schema"].contents
    merged: dict[str, Any] = {"type": root["type"], "properties": {}, "$defs": {}}
    for part in [REGISTRY[_DRAFT_2020_12 + ref["$ref"]].contents for ref in root["allOf"]] + [root]:
        part = local({k: part[k] for k in ("properties", "$defs") if k in part})  # not its $id, allOf, ...
        assert not merged["$defs"].keys() & part.get("$defs", {}).keys()
        assert not merged["properties"].keys() & part.get("properties", {}).keys()
        merged["properties"].update(part.get("properties", {}))
        merged["$defs"].update(part.get("$defs", {}))
    return merged
