"""The sim generates no more than the output limit it is given (the request's, else the model's max_output),
does bounded work for any schema, and never raises on a schema it cannot satisfy."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from shared.catalog import load_catalog
from shared.chat.schema import parse_chat_request
from shared.providers import sim as sim_module
from shared.providers.sim import SimProvider, count_tokens

sim = SimProvider()
CATALOG = load_catalog()
FAST = CATALOG.get("sim/fast").endpoints[0]  # max_output 4096


def nested_min_items(levels: int, n: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "minItems": n, "items": schema}
    return schema


def req(**fields):
    return parse_chat_request(orjson.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "x"}],
                                            **fields}))


def json_schema(schema) -> dict:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}


def tool(parameters) -> dict:
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}


@pytest.fixture
def generated(monkeypatch) -> list[int]:
    """How many values the sim generated (calls of _from_schema, recursive ones included)."""
    calls = [0]
    original = sim_module._from_schema

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(sim_module, "_from_schema", counted)
    return calls


@pytest.mark.parametrize("fields, limit", [
    (json_schema(nested_min_items(3, 30)), 4096),  # no max_tokens: the model's max_output
    ({**json_schema(nested_min_items(3, 30)), "max_tokens": 100}, 100),
    (tool({"type": "object", "properties": {"rows": nested_min_items(3, 30)}}), 4096),
    ({**tool({"type": "object", "properties": {"rows": nested_min_items(3, 30)}}), "max_completion_tokens": 64}, 64),
])
def test_a_schema_asking_for_more_than_the_limit_is_cut_at_the_limit(generated, fields, limit):
    done = asyncio.run(sim.complete(req(**fields), FAST))
    message = done.body["choices"][0]["message"]
    text = message["content"] if message["content"] is not None else message["tool_calls"][0]["function"]["arguments"]
    assert done.finish_reason == "length" and done.body["choices"][0]["finish_reason"] == "length"
    assert done.usage.completion_tokens <= limit and count_tokens(text) <= limit
    assert generated[0] <= limit + 64  # bounded work: about one value a token, not the 27,000 asked for


def test_the_stream_is_cut_the_same_way(generated):
    request = req(**json_schema(nested_min_items(3, 30)), max_tokens=200)
    chunks = asyncio.run(_collect(request))
    assert chunks[-1]["usage"]["completion_tokens"] <= 200
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert generated[0] <= 200 + 64


async def _collect(request):
    return [c async for c in sim.stream(request, FAST)]


def test_a_large_const_repeated_is_bounded_in_bytes(generated):
    schema = {"type": "array", "minItems": 10_000, "items": {"const": "x" * 50_000}}  # one "token" of 50 kB
    done = asyncio.run(sim.complete(req(**json_schema(schema)), FAST))
    assert done.finish_reason == "length"
    assert len(done.body["choices"][0]["message"]["content"]) <= 4096 * 64
    assert generated[0] <= 100


@pytest.mark.parametrize("schema", [
    {"type": "integer", "minimum": 10, "maximum": 1},
    {"type": "number", "minimum": 5, "maximum": -5},
    {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 4},
    {"type": "integer", "minimum": 1e300},
    {"type": "integer", "minimum": -1e300, "maximum": 1e300},
    {"type": "array", "minItems": 4, "maxItems": 1},
    {"type": "array", "items": True}, {"type": "array", "items": False},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array", "items": [{"type": "string"}]},
    {"type": "object", "properties": {"a": True, "b": False}},
    {"type": ["null"]}, {"type": ["integer", "null"], "minimum": 2, "maximum": 1}, {"enum": []},
    {"type": "string", "minLength": 10, "maxLength": 2},
])
def test_unsatisfiable_schemas_still_get_a_value(schema):
    for fields in (json_schema(schema), tool(schema)):
        done = asyncio.run(sim.complete(req(**fields), FAST))
        message = done.body["choices"][0]["message"]
        orjson.loads(message["content"] if message["content"] is not None
                     else message["tool_calls"][0]["function"]["arguments"])
