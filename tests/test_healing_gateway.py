"""Healing through the gateway: JSON requests come back parseable, valid answers byte-identical."""

import json

import orjson
import pytest

HI = [{"role": "user", "content": "Give me JSON"}]


def chat(client, key, **fields):
    resp = client.post("/api/v1/chat/completions", json={"messages": HI, **fields},
                       headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_broken_json_from_the_model_is_healed_and_reported(client, keys, gateway):
    body = chat(client, keys["dev"], model="sim/broken-json", response_format={"type": "json_object"}, seed=3)
    assert body["heal_status"] == "healed" and body["heal"]["repairs"] > 0
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)
    stats = client.get(f"/api/v1/generation?id={body['id']}", headers={"Authorization": f"Bearer {keys['dev']}"})
    data = stats.json()["data"]
    assert data["heal_status"] == "healed" and data["heal_repairs"] == body["heal"]["repairs"]
    assert data["heal_audit"] and set(data["heal_audit"][0]) == {"at", "kind", "offset", "path"}
    gateway.meter.flush()
    record = gateway.usage.get(body["id"])
    assert record["heal_status"] == "healed" and record["heal_audit"][0]["at"] == "choices[0].message.content"
    assert "removed" not in str(record["heal_audit"]) and "inserted" not in str(record["heal_audit"])


def test_a_valid_answer_is_skipped_and_byte_identical(client, keys):
    healed = chat(client, keys["dev"], model="sim/fast", response_format={"type": "json_object"}, seed=7)
    raw = chat(client, keys["dev"], model="sim/fast", response_format={"type": "json_object"}, seed=7,
               heal_json=False)
    assert healed["heal_status"] == "skipped" and "heal_status" not in raw
    assert healed["choices"][0]["message"]["content"] == raw["choices"][0]["message"]["content"]


def test_heal_json_switches_healing_off_and_on(client, keys):
    off = chat(client, keys["dev"], model="sim/broken-json", response_format={"type": "json_object"},
               heal_json=False, seed=3)
    assert "heal_status" not in off
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(off["choices"][0]["message"]["content"])
    prose = chat(client, keys["dev"], model="sim/fast", heal_json=True)  # forced on prose: honest failure
    assert prose["heal_status"] == "failed"
    plugin = chat(client, keys["dev"], model="sim/broken-json", response_format={"type": "json_object"},
                  plugins=[{"id": "response-healing"}], seed=3)
    assert plugin["heal_status"] == "healed"


def test_tool_call_arguments_are_healed(client, keys):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}}]
    body = chat(client, keys["dev"], model="sim/broken-json", tools=tools, seed=5)
    args = body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert body["heal_status"] == "healed" and set(json.loads(args)) <= {"query", "limit"}


def test_json_schema_is_checked_separately_and_never_coerced(client, keys):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["name", "n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}
    ok = chat(client, keys["dev"], model="sim/fast", response_format=fmt)
    assert ok["heal"] == {"status": "skipped", "repairs": 0, "schema_valid": True}
    strict = {**schema, "required": ["name", "n", "missing_field"]}  # the model never produces this field
    bad = chat(client, keys["dev"], model="sim/fast",
               response_format={"type": "json_schema", "json_schema": {"name": "thing", "schema": strict}})
    assert bad["heal"]["schema_valid"] is False and "required" in bad["heal"]["schema_errors"][0]
    assert "missing_field" not in json.loads(bad["choices"][0]["message"]["content"])  # nothing invented


def test_requests_for_prose_are_not_healed(client, keys):
    assert "heal_status" not in chat(client, keys["dev"], model="sim/fast")
