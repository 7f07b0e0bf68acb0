"""An upstream is untrusted input: usage it reports is checked, and no stored value can make a key unreadable."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from tests.conftest import reset_gateway
from tests.fakes.server import FakeServer, catalog_text

LIES = {
    "negative": {"prompt_tokens": -1_000_000, "completion_tokens": 5},
    "huge": {"prompt_tokens": 12345678901234567890123456789012345678901, "completion_tokens": 5},
    "string": {"prompt_tokens": "abc", "completion_tokens": 5},
    "boolean": {"prompt_tokens": True, "completion_tokens": 5},
    "float": {"prompt_tokens": 1e30, "completion_tokens": 5},
    "details": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": -7}},
    "shape": ["not", "an", "object"],
    "honest": {"prompt_tokens": 10, "completion_tokens": 5},
}


class LyingUpstream(FakeServer):
    """An OpenAI-compatible upstream whose usage is whatever the model name says (see LIES)."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        usage = LIES[body["model"]]
        chunk = {"id": "x", "object": "chat.completion", "created": 1, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "four small words"},
                              "finish_reason": "stop"}]}
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            delta = {**chunk, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": "four small words"}, "finish_reason": "stop"}]}
            await resp.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
            await resp.write(b"data: " + json.dumps({**delta, "choices": [], "usage": usage}).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp
        return web.json_response({**chunk, "usage": usage})


@pytest.fixture
def liar(aws, monkeypatch, tmp_path):
    with LyingUpstream() as up:
        config = tmp_path / "catalog.yaml"
        config.write_text(catalog_text("liar", f"kind: openai, base_url: 'http://127.0.0.1:{up.port}/v1'", "liar",
                                       tuple(LIES), "pricing: {prompt: 2.0, completion: 2.0}"))
        monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
        reset_gateway()
        yield up


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("lie", ["negative", "huge", "string", "boolean", "float", "details", "shape"])
def test_unbelievable_usage_is_counted_by_the_gateway_and_marked_estimated(liar, client, gateway, lie, stream):
    token, key = gateway.keys.create("capped", limit=0.01)
    body = {"model": f"liar/{lie}", "messages": [{"role": "user", "content": "count these words please"}],
            "stream": stream}
    resp = client.post("/api/v1/chat/completions", json=body, headers=bearer(token))
    assert resp.status_code == 200
    if stream:
        usage = json.loads([line for line in resp.text.splitlines() if '"usage"' in line][-1][6:])["usage"]
    else:
        usage = resp.json()["usage"]
    assert usage["estimated"] is True
    assert 0 < usage["prompt_tokens"] < 100 and 0 < usage["completion_tokens"] < 10  # counted by us
    assert 0 <= usage["cost"] < 0.001
    gateway.meter.flush()
    assert gateway.meter.backlog == 0
    mine = client.get("/api/v1/key", headers=bearer(token)).json()["data"]
    assert 0 < mine["usage"] < 0.001 and mine["limit_remaining"] <= 0.01


def test_believable_usage_is_taken_as_sent(liar, client, keys):
    resp = client.post("/api/v1/chat/completions", headers=bearer(keys["dev"]),
                       json={"model": "liar/honest", "messages": [{"role": "user", "content": "hi"}]})
    usage = resp.json()["usage"]
    assert usage["prompt_tokens"] == 10 and usage["completion_tokens"] == 5 and "estimated" not in usage
    assert usage["cost"] == pytest.approx(15 * 2.0 / 1e6)


def test_no_stored_number_can_make_a_key_unreadable(client, keys, gateway):
    """DynamoDB numbers carry up to 38 digits; boto3's reader raised on more, and every request of the key 500ed."""
    from shared.aws import client as aws_client

    token, key = gateway.keys.create("bricked", limit=5)
    aws_client("dynamodb").put_item(TableName=gateway.settings.counters_table, Item={
        "pk": {"S": f"key#{key.key_id}"}, "period": {"S": "total"},
        "cost": {"N": "1" * 41}, "prompt_tokens": {"N": "-" + "9" * 41}, "committed": {"N": "1E+40"}})
    admin = bearer(keys["admin"])
    for resp in (client.get("/api/v1/key", headers=bearer(token)),
                 client.get(f"/api/v1/keys/{key.key_id}", headers=admin),
                 client.patch(f"/api/v1/keys/{key.key_id}", headers=admin, json={"name": "renamed"})):
        assert resp.status_code == 200, resp.text
        assert resp.json()["data"]["usage"] == pytest.approx(1.111e40, rel=1e-2)
    spent = client.post("/api/v1/chat/completions", headers=bearer(token),
                        json={"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]})
    assert spent.status_code == 402


@pytest.mark.parametrize("module, fields", [
    ("anthropic", ("input_tokens", "output_tokens", "cache_read_input_tokens")),
    ("gemini", ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")),
    ("bedrock", ("inputTokens", "outputTokens", "cacheReadInputTokens")),
])
@pytest.mark.parametrize("bad", [-1, 10 ** 40, "12", True, 2.5, None])
def test_every_wire_format_refuses_unbelievable_counts(module, fields, bad):
    import importlib

    usage_of = importlib.import_module(f"shared.providers.{module}").usage_of
    good = {name: 3 for name in fields}
    assert usage_of(good).completion_tokens >= 3
    for name in fields:
        counted = usage_of({**good, name: bad})
        assert counted is not None if bad is None else counted is None
    assert usage_of(None) is None and usage_of([1]) is None
