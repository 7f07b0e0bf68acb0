"""Client JSON Schemas are checked at the boundary: a bad one is a 400 naming its field, never a 500."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator

from shared.chat.json_schema import MAX_DEPTH, SchemaBudget, check_schema, dialect
from shared.chat.schema import parse_chat_request
from shared.errors import BadRequestError

CHAT = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}


def nested(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def with_schema(schema) -> dict:
    return {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}


def with_tool(parameters) -> dict:
    return {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}


def nested_text(levels: int) -> bytes:
    """As JSON text: too deep for orjson.dumps (255 levels), not for orjson.loads (1024)."""
    return b'{"type":"object","properties":{"a":' * levels + b'{"type":"string"}' + b"}}" * levels


INVALID = [orjson.dumps(s) for s in (
    {"minimum": "abc"}, {"type": 5}, {"properties": [1, 2]}, {"enum": {"a": 1}},
    {"type": "object", "properties": {"l": {"type": "array", "items": "x"}}}, {"$schema": ["x"]},
    {"type": "string", "pattern": "("}, {"required": "a"}, {"minItems": -1}, {"type": []})] + [nested_text(480)]
SATISFIABLE_OR_NOT = [{"type": "integer", "minimum": 10, "maximum": 1},  # valid, unsatisfiable: the sim copes
                      {"type": "array", "minItems": 5, "maxItems": 1, "items": {"type": "integer"}},
                      {"type": "object", "properties": {"n": {"type": "number", "minimum": 3, "maximum": -3}}},
                      {"type": "array", "items": True}, {"type": "array", "items": False, "minItems": 2},
                      {"type": "object", "properties": {"a": True, "b": False}}, {"$ref": "#"},
                      {"$ref": "https://example.invalid/schema.json"}, {"enum": []},
                      {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]},
                      {"$schema": "https://example.invalid/unknown", "type": "string"},
                      {"type": "string", "minLength": 5, "maxLength": 1}, {"type": ["null"]},
                      {"anyOf": [{"type": "string"}, {"type": "integer"}]}, nested(30)]


@pytest.mark.parametrize("schema", INVALID)
def test_an_invalid_response_schema_is_a_400_naming_it(client, keys, schema):
    body = orjson.dumps(with_schema("SCHEMA")).replace(b'"SCHEMA"', schema)
    resp = client.post("/api/v1/chat/completions", content=body, headers={"Authorization": f"Bearer {keys['dev']}"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["metadata"]["field"] == "response_format.json_schema.schema"


@pytest.mark.parametrize("parameters", [
    {"type": "object", "properties": {"l": {"type": "array", "items": "x"}}},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": "1"}}},
], ids=["items-x", "minimum-string"])
def test_invalid_tool_parameters_are_a_400_naming_the_tool(client, keys, parameters):
    body = with_tool(parameters)
    body["tools"].insert(0, {"type": "function", "function": {"name": "ok", "parameters": {"type": "object"}}})
    resp = client.post("/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {keys['dev']}"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["metadata"]["field"] == "tools[1].function.parameters"


@pytest.mark.parametrize("schema", SATISFIABLE_OR_NOT)
def test_valid_schemas_even_unsatisfiable_ones_are_answered_not_500(client, keys, schema):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    for body in (with_schema(schema), with_tool(schema), {**with_schema(schema), "stream": True}):
        resp = client.post("/api/v1/chat/completions", json=body, headers=headers)
        assert resp.status_code == 200, resp.text


def test_min_over_max_in_tool_parameters_is_answered(client, keys):
    params = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}}
    resp = client.post("/api/v1/chat/completions", json=with_tool(params),
                       headers={"Authorization": f"Bearer {keys['dev']}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "f"


def test_depth_is_bounded():
    assert check_schema(nested(MAX_DEPTH // 2 - 1), SchemaBudget()) is None
    assert "deeper" in check_schema(nested(MAX_DEPTH // 2 + 1), SchemaBudget())


def test_one_size_budget_covers_all_the_schemas_of_a_request():
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(1000)}}
    tools = [{"type": "function", "function": {"name": f"f{i}", "parameters": wide}} for i in range(3)]
    parse_chat_request(orjson.dumps({**CHAT, "tools": tools[:1]}))  # one is fine
    with pytest.raises(BadRequestError) as e:
        parse_chat_request(orjson.dumps({**CHAT, "tools": tools}))
    assert e.value.metadata["field"] == "tools[2].function.parameters" and "too large" in e.value.message


def test_the_dialect_is_the_one_schema_names():
    assert dialect({"$schema": "http://json-schema.org/draft-07/schema#"}) is Draft7Validator
    assert dialect({}) is Draft202012Validator and dialect({"$schema": 7}) is Draft202012Validator
    draft7_tuple = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]}
    assert check_schema(draft7_tuple, SchemaBudget()) is None
    assert check_schema({"items": [{"type": "string"}]}, SchemaBudget()) is not None  # not 2020-12


# The merged Draft 2020-12 meta-schema accepts exactly what the official one accepts.
_KEYWORD_VALUES = st.sampled_from([
    "string", "integer", ["string", "null"], 5, -1, 0, 1.5, "x", "(", "^a+$", True, False, None, [], [1, 2],
    ["a", "a"], {}, {"type": "string"}, {"a": {"type": "integer"}}, {"a": 1}, [{"type": "string"}], "#",
    "https://example.invalid/s", "uri", {"x": ["a"]}, {"x": True},
])
_KEYWORDS = st.sampled_from([
    "type", "properties", "items", "prefixItems", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
    "multipleOf", "minItems", "maxLength", "pattern", "required", "additionalProperties", "patternProperties",
    "anyOf", "allOf", "oneOf", "not", "if", "then", "$defs", "$ref", "$id", "$anchor", "format", "contains",
    "dependentRequired", "dependentSchemas", "propertyNames", "unevaluatedProperties", "definitions",
    "dependencies", "uniqueItems", "title", "examples", "$comment", "contentSchema", "$dynamicRef", "unknown",
])
_schemas = st.recursive(
    st.dictionaries(_KEYWORDS, _KEYWORD_VALUES, max_size=4),
    lambda inner: st.dictionaries(_KEYWORDS, st.one_of(_KEYWORD_VALUES, inner, st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from("abc"), inner, max_size=3)),
                                  max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_schemas)
def test_the_merged_meta_schema_agrees_with_the_official_one(schema):
    official = Draft202012Validator(Draft202012Validator.META_SCHEMA,
                                    format_checker=Draft202012Validator.FORMAT_CHECKER).is_valid(schema)
    assert (check_schema(schema, SchemaBudget()) is None) == official, schema


def test_a_body_too_deep_to_forward_is_a_400(client, keys):
    """orjson reads 1024 levels but writes 255: a deeper extra field could never reach an upstream."""
    deep = b'{"model":"sim/fast","messages":[{"role":"user","content":"hi"}],"extra":' + b"[" * 300 + b"]" * 300 + b"}"
    resp = client.post("/api/v1/chat/completions", content=deep, headers={"Authorization": f"Bearer {keys['dev']}"})
    assert resp.status_code == 400 and resp.json()["error"]["metadata"]["field"] == "body", resp.text
    wide = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "[" * 5000}]})  # brackets in a string
    assert client.post("/api/v1/chat/completions", content=wide,
                       headers={"Authorization": f"Bearer {keys['dev']}"}).status_code == 200
