"""Hostile upstreams over real HTTP (tests/fakes/hostile.py): drips, huge bodies, JSON or garbage in answer to
a stream request, Retry-After abuse. Every adapter, through ChatService, as a caller would meet them."""

import asyncio
import time

import orjson
import pytest
import yaml

from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.config import Settings
from shared.errors import RateLimitedError, UpstreamError, UpstreamTimeoutError
from shared.providers import http
from tests.support import Recorder, catalog_from, run, sse_frames

ADAPTERS = ["fake", "anthropic-fake", "gemini-fake"]  # over our HTTP client (bedrock: botocore, below)
OK = {"fake": "fake/ok", "anthropic-fake": "anthropic-fake/claude-ok", "gemini-fake": "gemini-fake/gemini-ok",
      "bedrock-fake": "bedrock-fake/bedrock-ok"}


@pytest.fixture
def make(fake_upstream, fake_anthropic, fake_gemini, fake_bedrock, tmp_path, monkeypatch):
    keys = {"FAKE_VENDOR_KEY": "vendor-secret-123", "FAKE_ANTHROPIC_KEY": "anthropic-secret-456",
            "FAKE_GEMINI_KEY": "gemini-secret-789"}  # as every test: headers are cached per provider
    for var, value in keys.items():
        monkeypatch.setenv(var, value)
    fakes = (fake_upstream, fake_anthropic, fake_gemini, fake_bedrock)
    parts = [yaml.safe_load(f.catalog_yaml()) for f in fakes]
    parts.append({"providers": [{"id": "sim-x", "kind": "sim"}], "models": [
        {"id": "sim-x/steady", "provider": "sim-x", "upstream_model": "steady",
         "pricing": {"prompt": 1, "completion": 2},
         "sim": {"tokens_per_second": 40, "reply_tokens": 100}}]})  # 2.5 s of chunks, no silence
    text = yaml.safe_dump({key: [x for part in parts for x in part[key]] for key in ("providers", "models")})

    def build(**settings):
        return ChatService(catalog_from(text, tmp_path), Recorder(), Settings(**settings))
    return build


def req(model, **fields):
    return parse_chat_request(orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                                            **fields}))


def complete(service, request):
    return run(service.complete(request, CallContext(key_id="k")))


def stream(service, request):
    """Open the stream (raising here is a plain HTTP error) and read it whole."""
    async def go():
        sse = await service.open_stream(request, CallContext(key_id="k"))
        return sse_frames([frame async for frame in sse])
    frames = run(go())
    return [orjson.loads(f[6:]) for f in frames if f.startswith(b"data: {")]


# -- answers to a stream request that are not event streams --

@pytest.mark.parametrize("script", ["json-to-stream", "json-error-to-stream", "garbage-to-stream"])
@pytest.mark.parametrize("prefix", ADAPTERS + ["bedrock-fake"])
def test_an_answer_that_is_not_an_event_stream_is_a_502_before_the_first_chunk(make, prefix, script):
    service = make(max_retries=0)
    with pytest.raises(UpstreamError) as e:
        stream(service, req(f"{prefix}/{script}", stream=True))
    assert e.value.status == 502 and e.value.metadata["error_type"] == "provider_error"
    assert service.meter.events[-1].status == "failed"


@pytest.mark.parametrize("prefix", ADAPTERS + ["bedrock-fake"])
def test_a_fallback_serves_when_the_first_stream_is_not_an_event_stream(make, prefix):
    chunks = stream(make(max_retries=0), req(f"{prefix}/json-to-stream", models=[OK[prefix]], stream=True))
    assert {c["model"] for c in chunks} == {OK[prefix]} and chunks[-1]["usage"]["completion_tokens"] > 0


# -- size caps --

@pytest.mark.parametrize("script", ["huge", "huge-chunked"])
@pytest.mark.parametrize("prefix", ADAPTERS)
def test_a_body_over_the_cap_is_a_502_saying_it_was_too_large(make, prefix, script):
    service = make(max_retries=0)
    with pytest.raises(UpstreamError) as e:
        complete(service, req(f"{prefix}/{script}"))
    assert e.value.status == 502 and e.value.metadata["error_type"] == "provider_error"
    assert "too large" in e.value.message
    assert service.meter.events[-1].status == "failed"


@pytest.mark.parametrize("script", ["huge", "huge-chunked"])
@pytest.mark.parametrize("prefix", ADAPTERS)
def test_a_stream_line_over_the_cap_is_a_502_saying_it_was_too_large(make, prefix, script):
    with pytest.raises(UpstreamError) as e:
        stream(make(max_retries=0), req(f"{prefix}/{script}", stream=True))
    assert e.value.status == 502 and "too large" in e.value.message


def test_the_caps_are_settings(make, monkeypatch, fake_upstream):
    from shared.config import get_settings

    monkeypatch.setenv("SWITCHYARD_MAX_UPSTREAM_RESPONSE_BYTES", "100")
    get_settings.cache_clear()
    try:
        with pytest.raises(UpstreamError) as e:
            complete(make(max_retries=0), req("fake/ok"))  # ~300 bytes
        assert "too large" in e.value.message and e.value.metadata["limit_bytes"] == 100
    finally:
        monkeypatch.delenv("SWITCHYARD_MAX_UPSTREAM_RESPONSE_BYTES")
        get_settings.cache_clear()


def test_an_unread_stream_holds_at_most_a_bounded_buffer(fake_upstream):
    """The client stops reading from the socket while its buffer is full (TCP pushes back on the upstream)."""
    async def go():
        resp = await http.client().request("POST", fake_upstream.base_url + "/chat/completions",
                                           headers={"Content-Type": "application/json"},
                                           body=orjson.dumps({"model": "huge-chunked", "stream": True}),
                                           connect_timeout=5, first_byte_timeout=5, idle_timeout=5)
        chunks = resp.iter_chunks()
        await chunks.__anext__()
        for _ in range(50):  # the upstream writes 40 MiB as fast as it can meanwhile
            await asyncio.sleep(0.01)
        held = sum(len(c) for c in resp._conn._chunks)
        await chunks.aclose()
        return held
    assert run(go()) <= http.HIGH_WATER + 256 * 1024


# -- deadlines and Retry-After --

def test_the_total_timeout_bounds_the_first_attempt_too(make):
    """The drip's every byte resets the idle timeout; only the call's deadline can end it."""
    service = make(max_retries=0, total_timeout_seconds=0.3)
    with pytest.raises(UpstreamTimeoutError):
        complete(service, req("fake/drip"))
    assert service.meter.events[-1].status == "failed" and service.meter.events[-1].error_code == 504


@pytest.mark.parametrize("model", ["fake/long-stream", "sim-x/steady"])
def test_a_stream_ends_by_the_invocation_deadline(make, model):
    """Chunks keep coming; the deadline the Lambda handler set still ends the stream, whatever the adapter."""
    from shared.providers.base import DEADLINE

    async def go():
        DEADLINE.set(time.perf_counter() + 0.3)
        sse = await service.open_stream(req(model, stream=True), CallContext(key_id="k"))
        return [orjson.loads(f[6:]) for f in sse_frames([frame async for frame in sse]) if f.startswith(b"data: {")]
    service = make()
    chunks = run(go())
    assert chunks[-1]["choices"][0]["finish_reason"] == "error" and chunks[-1]["error"]["code"] == 504
    assert service.meter.events[-1].status == "failed"


@pytest.mark.parametrize("model, expected", [("fake/error-503", (9, 9)), ("fake/error-503-date", (25, 30))])
def test_retry_after_on_a_503_is_honoured_and_passed_on(make, model, expected):
    service = make(max_retries=2, retry_backoff_seconds=0.01, max_retry_wait_seconds=5)
    with pytest.raises(UpstreamError) as e:
        complete(service, req(model))
    low, high = expected
    assert low <= int(e.value.headers["Retry-After"]) <= high
    assert service.meter.events[-1].attempts is None  # longer than the wait limit: passed on, not retried


def test_an_absurd_retry_after_is_capped_before_it_reaches_the_client(make):
    with pytest.raises(RateLimitedError) as e:
        complete(make(max_retries=0), req("fake/error-429-forever"))
    assert e.value.headers["Retry-After"] == "60" and e.value.metadata["retry_after"] == "60"


def test_retry_after_forms_and_cap():
    from shared.providers.base import retry_after_seconds

    assert retry_after_seconds("7") == 7 and retry_after_seconds("999999") == 60
    in_20s = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 20))
    assert retry_after_seconds(in_20s) in (19, 20)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert all(retry_after_seconds(v) is None for v in ("soon", "-3", "", None))
