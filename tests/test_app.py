"""The app in-process: error shapes, limits, the keys API and metering through real requests."""

import orjson
import pytest

CHAT = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def assert_error_shape(resp, status):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["metadata"], dict)
    return body["error"]


def test_chat_answer_has_openai_shape_provider_and_cost(client, keys):
    resp = client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(keys["dev"]))
    body = resp.json()
    assert resp.status_code == 200 and body["object"] == "chat.completion" and body["id"].startswith("gen-")
    assert body["provider"] == "sim" and body["model"] == "sim/fast"
    usage = body["usage"]
    expected = (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 1.5) / 1e6
    assert usage["cost"] == pytest.approx(expected) and usage["total_tokens"] > 0


@pytest.mark.parametrize("payload, status, field", [
    (b"not json", 400, "body"),
    (orjson.dumps({**CHAT, "messages": "hi"}), 400, "messages"),
    (orjson.dumps({**CHAT, "model": "nobody/nothing"}), 404, None),
])
def test_bad_input_gets_a_clear_4xx(client, keys, payload, status, field):
    resp = client.post("/api/v1/chat/completions", content=payload, headers=bearer(keys["dev"]))
    error = assert_error_shape(resp, status)
    if field:
        assert error["metadata"]["field"] == field


def test_auth_errors(client, keys):
    assert_error_shape(client.post("/api/v1/chat/completions", json=CHAT), 401)
    assert_error_shape(client.post("/api/v1/chat/completions", json=CHAT, headers=bearer("sk-sy-v1-bad")), 401)
    assert_error_shape(client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(keys["admin"])), 403)
    assert_error_shape(client.get("/api/v1/keys", headers=bearer(keys["dev"])), 403)


def test_bodies_over_the_limit_are_413_before_parsing(client, keys, gateway):
    limit = gateway.settings.max_body_bytes
    big = b'{"model": "sim/fast", "messages": [{"role": "user", "content": "' + b"x" * limit + b'"}]}'
    assert_error_shape(client.post("/api/v1/chat/completions", content=big, headers=bearer(keys["dev"])), 413)

    def chunked():  # no Content-Length: counted while it streams in
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
    assert_error_shape(client.post("/api/v1/chat/completions", content=chunked(), headers=bearer(keys["dev"])), 413)


def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error_shape(client.get("/api/v1/nothing-here"), 404)
    assert_error_shape(client.delete("/api/v1/models"), 405)


def test_upstream_failures_map_to_documented_statuses(client, keys):
    for model, status in (("sim/down", 502), ("sim/rate-limited", 429), ("sim/slow", 504)):
        resp = client.post("/api/v1/chat/completions", json={**CHAT, "model": model}, headers=bearer(keys["dev"]))
        error = assert_error_shape(resp, status)
        if status == 429:
            assert resp.headers["retry-after"] == "7"
        if status == 502:
            assert error["metadata"]["provider_name"] == "sim" and error["metadata"]["upstream_status"] == 503


def test_every_call_is_metered_once_with_status(client, keys, gateway):
    secret_prompt = {**CHAT, "messages": [{"role": "user", "content": "zq-private-prompt-7731"}]}
    ok = client.post("/api/v1/chat/completions", json=secret_prompt, headers=bearer(keys["dev"])).json()
    client.post("/api/v1/chat/completions", json={**CHAT, "model": "sim/down"}, headers=bearer(keys["dev"]))
    client.post("/api/v1/chat/completions", content=b"{", headers=bearer(keys["dev"]))
    gateway.meter.flush()
    records = list(gateway.usage.table.scan())
    assert sorted(r["status"] for r in records) == ["completed", "failed", "failed"]
    assert sorted(r.get("error_code", 0) for r in records) == [0, 400, 502]
    done = next(r for r in records if r["id"] == ok["id"])
    assert done["cost"] == pytest.approx(ok["usage"]["cost"]) and done["completion_tokens"] > 0
    stored = orjson.dumps(records).decode()
    assert "zq-private-prompt-7731" not in stored  # no prompt text anywhere
    assert ok["choices"][0]["message"]["content"][:40] not in stored  # nor completion text
    assert keys["dev"] not in orjson.dumps(records).decode()


def test_app_attribution_and_client_details_are_recorded(client, keys, gateway):
    resp = client.post("/api/v1/chat/completions", json=CHAT, headers={
        **bearer(keys["dev"]), "HTTP-Referer": "https://acme.example", "X-Title": "Acme Bot", "User-Agent": "ua/1"})
    gen = client.get(f"/api/v1/generation?id={resp.json()['id']}", headers=bearer(keys["dev"])).json()["data"]
    assert gen["app"] == "Acme Bot" and gen["origin"] == "https://acme.example"
    gateway.meter.flush()
    record = gateway.usage.get(resp.json()["id"])
    assert record["user_agent"] == "ua/1" and record["client_ip"] and record["lab"] == "sim"


def test_generation_is_visible_only_to_the_key_that_made_it(client, keys, gateway):
    gen_id = client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(keys["dev"])).json()["id"]
    gateway.meter.flush()  # from the table, not the pending buffer
    data = client.get(f"/api/v1/generation?id={gen_id}", headers=bearer(keys["dev"])).json()["data"]
    assert data["tokens_completion"] > 0 and data["total_cost"] > 0 and data["provider_name"] == "sim"
    assert data["status"] == "completed" and data["finish_reason"] == "stop" and data["latency"] > 0
    other, _ = gateway.keys.create("other")
    assert_error_shape(client.get(f"/api/v1/generation?id={gen_id}", headers=bearer(other)), 404)
    assert_error_shape(client.get("/api/v1/generation", headers=bearer(keys["dev"])), 400)


def test_keys_api_lifecycle_in_openrouter_shapes(client, keys):
    admin = bearer(keys["admin"])
    created = client.post("/api/v1/keys", json={"name": "ci", "limit": 0.00005}, headers=admin)
    assert created.status_code == 201
    token, data = created.json()["key"], created.json()["data"]
    assert data["name"] == "ci" and data["limit"] == 0.00005 and data["usage"] == 0 and token.startswith("sk-sy-v1-")
    listed = client.get("/api/v1/keys", headers=admin).json()["data"]
    assert data["hash"] in {k["hash"] for k in listed} and all("key" not in k for k in listed)
    assert client.get(f"/api/v1/keys/{data['hash']}", headers=admin).json()["data"]["name"] == "ci"

    own = client.get("/api/v1/key", headers=bearer(token)).json()["data"]
    assert own["limit_remaining"] == 0.00005
    first = client.post("/api/v1/chat/completions", json={**CHAT, "max_tokens": 8}, headers=bearer(token))
    assert first.status_code == 200  # its worst case fits the limit
    refused = assert_error_shape(client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(token)), 402)
    assert "could cost up to" in refused["message"] and "can only afford" in refused["message"]
    assert refused["metadata"]["max_tokens"] == 4096 and 0 < refused["metadata"]["affordable_tokens"] < 40
    patched = client.patch(f"/api/v1/keys/{data['hash']}", json={"limit": None, "disabled": True}, headers=admin)
    assert patched.json()["data"]["limit"] is None and patched.json()["data"]["disabled"] is True
    assert_error_shape(client.post("/api/v1/chat/completions", json=CHAT, headers=bearer(token)), 401)
    assert client.delete(f"/api/v1/keys/{data['hash']}", headers=admin).json() == {"deleted": True}
    assert_error_shape(client.get(f"/api/v1/keys/{data['hash']}", headers=admin), 404)
    assert_error_shape(client.post("/api/v1/keys", json={"name": ""}, headers=admin), 400)
    assert_error_shape(client.patch("/api/v1/keys/not-a-hash", json={}, headers=admin), 400)


def test_models_listing_is_openrouter_shaped(client):
    models = client.get("/api/v1/models").json()["data"]
    fast = next(m for m in models if m["id"] == "sim/fast")
    assert fast["pricing"] == {"prompt": "0.0000005", "completion": "0.0000015", "request": "0", "image": "0"}
    assert fast["architecture"]["input_modalities"] == ["text"] and fast["context_length"] == 32768
    assert {"tools", "response_format"} <= set(fast["supported_parameters"])
    assert fast["top_provider"]["max_completion_tokens"] == 4096


def test_garbage_never_yields_a_500(client, keys):
    samples = [b"", b"null", b"{}", b'{"model": 5}', b'{"model":"sim/fast","messages":[null]}',
               b'{"model":"sim/fast","messages":[{"role":"user","content":[{"type":"text"}]}]}',
               b'{"model":"sim/fast","messages":[{"role":"user","content":"x"}],"tools":"x"}',
               "\ud800".encode("utf-8", "surrogatepass"), b"\xff\xfe", b'{"model":"' + b"a" * 5000 + b'"}']
    for raw in samples:
        resp = client.post("/api/v1/chat/completions", content=raw, headers=bearer(keys["dev"]))
        assert 400 <= resp.status_code < 500, (raw[:40], resp.text)


def test_a_stream_dropped_before_its_first_byte_is_still_metered(gateway, keys):
    import asyncio
    import gc

    from shared.chat.schema import parse_chat_request
    from shared.chat.service import CallContext

    async def go():
        request = parse_chat_request(orjson.dumps({**CHAT, "stream": True}))
        ctx = CallContext(key_id="k-dropped")
        body = await gateway.chat.open_stream(request, ctx)  # the response never iterates it
        del body
        gc.collect()
        return ctx.request_id

    request_id = asyncio.run(go())
    event = gateway.meter.pending(request_id)
    assert event is not None and event.status == "cancelled" and event.streamed


def test_openapi_documents_the_chat_body_and_every_ref_resolves(client):
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/api/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatRequest"}
    assert {"messages", "model", "models", "provider"} <= set(doc["components"]["schemas"]["ChatRequest"]["properties"])

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)
    found = set(refs(doc))
    assert found and all(r.removeprefix("#/components/schemas/") in doc["components"]["schemas"] for r in found)


def test_a_referer_is_kept_as_its_origin_only(client, keys):
    """A referer's path and query can carry a session or an e-mail; only scheme://host[:port] is recorded."""
    from functions.gateway.routes.chat import origin_of

    secret = "https://intranet.acme.corp:8443/tickets/4711?session=SECRET123&user=alice@acme.corp"
    assert origin_of(secret) == "https://intranet.acme.corp:8443"
    assert origin_of("javascript:alert(1)") is None and origin_of("my-app") == "my-app"
    r = client.post("/api/v1/chat/completions", json={"model": "sim/fast", "messages": [{"role": "user", "content": "x"}]},
                    headers={**bearer(keys["dev"]), "HTTP-Referer": secret})
    gen = client.get(f"/api/v1/generation?id={r.json()['id']}", headers=bearer(keys["dev"]))
    deadline = __import__("time").monotonic() + 5
    while gen.status_code == 404 and __import__("time").monotonic() < deadline:
        gen = client.get(f"/api/v1/generation?id={r.json()['id']}", headers=bearer(keys["dev"]))
    body = gen.json()["data"]
    assert body["origin"] == body["app"] == "https://intranet.acme.corp:8443"
    assert "SECRET123" not in gen.text
