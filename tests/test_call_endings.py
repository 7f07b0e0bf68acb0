"""How calls end when they do not complete: when a stream's 200 is committed, what a failed or abandoned call
is billed, and a client that leaves a non-streamed call (under uvicorn, over real HTTP)."""

import asyncio

import orjson
import pytest

from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.config import Settings
from shared.errors import UpstreamTimeoutError
from tests.support import Recorder, catalog_from, run, sse_frames

SIM = "  - {id: sim-a, kind: sim}\n"
MODELS = r"""
  - {id: acme/ok, provider: sim-a, upstream_model: ok, pricing: {prompt: 1, completion: 2}, sim: {}}
  - {id: acme/silent, provider: sim-a, upstream_model: silent, timeout_seconds: 0.3,
     pricing: {prompt: 1, completion: 2}, sim: {timeout_rate: 1.0}}
"""


@pytest.fixture
def make(tmp_path, fake_upstream, monkeypatch):
    monkeypatch.setenv("FAKE_VENDOR_KEY", "vendor-secret-123")  # as everywhere: headers are cached
    providers, models = fake_upstream.catalog_yaml().split("models:\n")
    text = providers + SIM + "models:\n" + models + MODELS

    def build(**settings):
        return ChatService(catalog_from(text, tmp_path), Recorder(), Settings(**settings))
    return build


def req(model, **fields):
    messages = [{"role": "user", "content": "hi " * 20}]
    return parse_chat_request(orjson.dumps({"model": model, "messages": messages, "stream": True, **fields}))


def frames(service, request):
    async def go():
        sse = await service.open_stream(request, CallContext(key_id="k"))
        return sse_frames([frame async for frame in sse])
    return run(go())


def chunks_of(raw):
    return [orjson.loads(f[6:]) for f in raw if f.startswith(b"data: {")]


# -- when the 200 is committed --

def test_a_first_byte_timeout_within_the_keepalive_interval_is_a_plain_http_error(make):
    """acme/silent times out after 0.3 s, inside the 5 s during which the status waits for a first chunk."""
    service = make(max_retries=0, keepalive_seconds=5)
    with pytest.raises(UpstreamTimeoutError):
        frames(service, req("acme/silent"))
    event = service.meter.events[-1]
    assert event.status == "failed" and event.error_code == 504


def test_the_timeout_within_the_interval_still_moves_to_the_fallback(make):
    service = make(max_retries=0, keepalive_seconds=5)
    raw = frames(service, req("acme/silent", models=["acme/ok"]))
    assert not raw[0].startswith(b": ")  # nothing was committed while the first model was silent
    assert {c["model"] for c in chunks_of(raw)} == {"acme/ok"}


def test_silence_past_the_keepalive_interval_commits_the_200_and_then_fails_as_an_event(make):
    service = make(max_retries=0, keepalive_seconds=0.05)
    raw = frames(service, req("acme/silent"))
    assert raw[0].startswith(b": ") and chunks_of(raw)[-1]["error"]["code"] == 504


def test_sim_slow_streamed_is_an_http_504_as_the_readme_promises(client, keys):
    resp = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                       json={"model": "sim/slow", "stream": True,
                             "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 504 and resp.json()["error"]["code"] == 504


# -- what an unfinished stream is billed --

@pytest.mark.parametrize("keepalive", [5, 0.05])  # failing as an HTTP error, and after the 200 was committed
def test_a_stream_that_failed_before_any_output_bills_nothing(make, keepalive):
    service = make(max_retries=0, keepalive_seconds=keepalive)
    try:
        frames(service, req("acme/silent"))
    except UpstreamTimeoutError:
        pass
    event = service.meter.events[-1]
    assert event.status == "failed" and event.prompt_tokens == 0 and event.completion_tokens == 0
    assert event.cost == 0


def test_a_stream_that_is_not_an_event_stream_bills_nothing(make):
    service = make(max_retries=0)
    with pytest.raises(Exception):
        frames(service, req("fake/json-to-stream"))
    assert service.meter.events[-1].cost == 0 and service.meter.events[-1].prompt_tokens == 0


def test_a_stream_that_failed_mid_way_bills_what_was_generated(make):
    service = make(max_retries=0)
    chunks = chunks_of(frames(service, req("fake/mid-error")))
    assert chunks[-1]["choices"][0]["finish_reason"] == "error"
    event = service.meter.events[-1]
    assert event.status == "failed" and event.completion_tokens > 0 and event.prompt_tokens > 0
    assert event.cost > 0


# -- a client that leaves a non-streamed call --

@pytest.fixture
def fake_gateway(aws, fake_upstream, tmp_path, monkeypatch):
    """The gateway with the fake OpenAI-compatible vendor in its catalog."""
    from functions.gateway.state import gateway
    from tests.conftest import reset_gateway

    config = tmp_path / "switchyard.yaml"
    config.write_text(fake_upstream.catalog_yaml())
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
    monkeypatch.setenv("FAKE_VENDOR_KEY", "vendor-secret-123")  # as everywhere: headers are cached
    reset_gateway()
    return gateway()


def test_a_client_that_leaves_a_non_streamed_call_is_metered_cancelled(fake_gateway, fake_upstream,
                                                                        monkeypatch):
    """Under uvicorn: the client goes away while the upstream (a drip, 2 s) is still answering."""
    import uvicorn

    from functions.gateway.app import app

    recorder = Recorder()
    monkeypatch.setattr(fake_gateway.chat.recorder, "meter", recorder)
    key, _ = fake_gateway.keys.create("leaver")
    body = orjson.dumps({"model": "fake/drip", "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode()

    async def go():
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="error")
        server = uvicorn.Server(config)
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        seen = len(fake_upstream.requests)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body)
        await writer.drain()
        for _ in range(500):  # until the upstream has the call
            if len(fake_upstream.requests) > seen and fake_upstream.requests[-1]["body"]["model"] == "drip":
                break
            await asyncio.sleep(0.01)
        writer.close()
        for _ in range(500):  # until the call is metered
            if recorder.events:
                break
            await asyncio.sleep(0.01)
        server.should_exit = True
        await serving
    asyncio.run(go())
    (event,) = recorder.events
    assert event.status == "cancelled" and event.model == "fake/drip" and event.cost == 0
