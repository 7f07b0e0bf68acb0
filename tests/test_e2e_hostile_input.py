"""The attacker trial's inputs (issue 9) against `python -m infra.local` on one keep-alive connection: each is a
4xx in the error shape with its generation id, and the connection serves the next request."""

from __future__ import annotations

import http.client

import orjson
import pytest

pytestmark = pytest.mark.e2e
CHAT = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}


def _deep(levels: int) -> bytes:
    return b'{"type":"object","properties":{"a":' * levels + b'{"type":"string"}' + b"}}" * levels


def _schema(schema: bytes) -> bytes:
    body = {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": "S"}}}
    return orjson.dumps(body).replace(b'"S"', schema)


def _tool(parameters: dict) -> bytes:
    return orjson.dumps({**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]})


HOSTILE = [(_schema(orjson.dumps(s)), "response_format.json_schema.schema")
           for s in ({"minimum": "abc"}, {"type": 5}, {"properties": [1, 2]}, {"enum": {"a": 1}})]
HOSTILE += [(_schema(_deep(480)), "response_format.json_schema.schema"),
            (_tool({"type": "object", "properties": {"l": {"type": "array", "items": "x"}}}),
             "tools[0].function.parameters")]
ANSWERED = [_schema(orjson.dumps({"type": "integer", "minimum": 10, "maximum": 1})),
            _tool({"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}}),
            _schema(orjson.dumps({"type": "array", "minItems": 100, "items": {
                "type": "array", "minItems": 100, "items": {"type": "array", "minItems": 100}}}))]


def test_hostile_inputs_are_4xx_and_the_keep_alive_connection_survives(local_stack):
    conn = http.client.HTTPConnection("127.0.0.1", local_stack.port, timeout=30)
    headers = {"Authorization": f"Bearer {local_stack.key('dev-key')}", "Content-Type": "application/json"}
    for body, field in HOSTILE:
        conn.request("POST", "/api/v1/chat/completions", body=body, headers=headers)
        resp = conn.getresponse()
        error = orjson.loads(resp.read())["error"]
        assert resp.status == 400 and error["metadata"]["field"] == field, error
        assert resp.getheader("x-generation-id") == error["metadata"]["generation_id"]
        conn.request("GET", "/health")
        follow = conn.getresponse()
        assert follow.status == 200 and orjson.loads(follow.read())["status"] == "ok"
    for body in ANSWERED:
        conn.request("POST", "/api/v1/chat/completions", body=body, headers=headers)
        resp = conn.getresponse()
        answer = orjson.loads(resp.read())
        assert resp.status == 200, answer
        assert answer["usage"]["completion_tokens"] <= 4096  # sim/fast's max_output
    conn.close()
