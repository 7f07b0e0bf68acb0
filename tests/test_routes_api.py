"""The routing-policy API (/api/v1/routes), key tags, and `provider_responses` in /generation, in-process."""

import orjson
import pytest

POLICY = {"id": "acme/default", "rules": [
    {"name": "beta testers", "when": {"key_tag": ["beta"]}, "then": {"model": "sim/chat"}},
    {"name": "my app", "when": {"app": ["My App"]}, "then": {"model": "sim/long-context"}}],
    "default": {"model": "sim/down", "fallbacks": ["sim/fast"]}}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def chat(client, key, model, **headers):
    return client.post("/api/v1/chat/completions", headers={**auth(key), **headers},
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_routes_crud_needs_a_management_key_and_applies_at_once(client, keys):
    admin = auth(keys["admin"])
    assert client.put("/api/v1/routes", headers=auth(keys["dev"]), json=POLICY).status_code == 403
    listed = client.get("/api/v1/routes", headers=admin).json()["data"]
    assert {"switchyard/fallback-demo", "switchyard/auto"} <= {p["id"] for p in listed}
    assert chat(client, keys["dev"], "acme/default").status_code == 404
    resp = client.put("/api/v1/routes", headers=admin, json=POLICY)
    assert resp.status_code == 200 and resp.json()["data"]["id"] == "acme/default"
    assert client.get("/api/v1/routes/acme/default", headers=admin).json()["data"]["rules"][0]["name"] == "beta testers"
    answer = chat(client, keys["dev"], "acme/default")
    assert answer.status_code == 200 and answer.json()["model"] == "sim/fast"
    assert chat(client, keys["dev"], "acme/default", **{"X-Title": "My App"}).json()["model"] == "sim/long-context"
    assert client.delete("/api/v1/routes/acme/default", headers=admin).json() == {"deleted": True}
    assert chat(client, keys["dev"], "acme/default").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({**POLICY, "default": {"model": "nobody/nothing"}}, "models"),
    ({**POLICY, "id": "sim/fast"}, "id"),
    ({**POLICY, "rules": [{"when": {}, "then": {"model": "sim/fast"}}]}, "rules"),
    ({**POLICY, "rules": [{"when": {"regex": "("}, "then": {"model": "sim/fast"}}]}, "rules"),
    ({**POLICY, "default": {"split": [{"model": "sim/fast", "weight": 0}]}}, "default"),
    ({**POLICY, "on_error": {"bad_error_kind": "sim/fast"}}, "on_error"),
])
def test_invalid_policies_are_a_400_naming_the_field(client, keys, body, field):
    resp = client.put("/api/v1/routes", headers=auth(keys["admin"]), json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["metadata"]["field"].startswith(field) and error["code"] == 400


def test_key_tags_route_through_a_policy(client, keys):
    admin = auth(keys["admin"])
    client.put("/api/v1/routes", headers=admin, json=POLICY)
    created = client.post("/api/v1/keys", headers=admin, json={"name": "tester", "tags": ["beta"]}).json()
    assert created["data"]["tags"] == ["beta"]
    assert chat(client, created["key"], "acme/default").json()["model"] == "sim/chat"
    untagged = client.patch(f"/api/v1/keys/{created['data']['hash']}", headers=admin, json={"tags": []}).json()
    assert untagged["data"]["tags"] == []
    assert chat(client, created["key"], "acme/default").json()["model"] == "sim/fast"
    assert client.post("/api/v1/keys", headers=admin, json={"name": "x", "tags": ["no spaces"]}).status_code == 400


def test_generation_lists_provider_responses_from_the_stored_record(client, keys, gateway):
    answer = chat(client, keys["dev"], "switchyard/fallback-demo").json()
    gateway.meter.flush()
    assert gateway.meter.pending(answer["id"]) is None  # read back from DynamoDB, not from memory
    stats = client.get(f"/api/v1/generation?id={answer['id']}", headers=auth(keys["dev"])).json()["data"]
    assert [(r["provider_name"], r["model"], r["status"]) for r in stats["provider_responses"]] == [
        ("sim", "sim/down", 503), ("sim", "sim/fast", 200)]
    assert all(r["latency"] >= 0 for r in stats["provider_responses"]) and stats["route_rule"] == "default"


def test_the_built_in_auto_policy_decides_without_calling_anything(gateway):
    from shared.chat.schema import parse_chat_request
    from shared.chat.service import CallContext
    from shared.routing.plan import Plan

    def decide(content, **extra):
        request = parse_chat_request(orjson.dumps({"model": "switchyard/auto",
                                                   "messages": [{"role": "user", "content": content}], **extra}))
        plan = Plan(gateway.chat.routing, request, CallContext(key_id="k"))
        return plan.chain[0], plan.rule
    assert decide("Review this contract for me") == ("sim/chat", "legal")
    assert decide("word " * 7000) == ("sim/long-context", "long prompts")  # ≈ 8,750 tokens > 8,192
    split = [decide("hello", user=f"user-{i}")[0] for i in range(1000)]
    assert 870 <= split.count("sim/fast") <= 930 and set(split) == {"sim/fast", "sim/chat"}


def test_a_policy_may_route_to_another_policy(client, keys):
    outer = {"id": "acme/outer", "default": {"model": "switchyard/fallback-demo"}}
    assert client.put("/api/v1/routes", headers=auth(keys["admin"]), json=outer).status_code == 200
    answer = chat(client, keys["dev"], "acme/outer").json()
    assert answer["model"] == "sim/fast"
