"""The `openai` adapter against a fake vendor speaking the real wire format."""

import asyncio

import orjson
import pytest

from shared.catalog import load_catalog
from shared.chat.schema import parse_chat_request
from shared.errors import (ContextLengthExceededError, ProviderAuthError, ProviderUnreachableError, RateLimitedError,
                           UpstreamError, UpstreamTimeoutError)
from shared.providers.openai import OpenAIProvider
from tests.support import catalog_from, chunks_of, run

provider = OpenAIProvider()


@pytest.fixture
def catalog(fake_upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VENDOR_KEY", "vendor-secret-123")
    return catalog_from(fake_upstream.catalog_yaml(), tmp_path)




def req(model="fake/ok", **fields):
    return parse_chat_request(orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                                            "api_base": "http://evil.invalid", **fields}))


def test_completion_sends_the_upstream_model_and_vendor_key(catalog, fake_upstream):
    done = run(provider.complete(req(temperature=0.1), catalog.get("fake/ok").endpoints[0]))
    sent = fake_upstream.requests[-1]
    assert sent["body"]["model"] == "ok" and sent["body"]["temperature"] == 0.1
    assert sent["headers"]["Authorization"] == "Bearer vendor-secret-123"
    assert "api_base" not in sent["body"]
    assert done.usage.prompt_tokens == 13 and done.usage.cached_tokens == 4 and done.usage.reasoning_tokens == 2
    assert done.body["choices"][0]["message"]["content"] == "Hello from the fake upstream."


def test_stream_asks_for_usage_and_passes_chunks_through(catalog, fake_upstream):
    chunks = run(chunks_of(provider.stream(req(), catalog.get("fake/ok").endpoints[0])))
    assert fake_upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from the fake upstream."
    assert chunks[-1]["usage"]["completion_tokens"] == 7


@pytest.mark.parametrize("model, error, check", [
    ("fake/error-429", RateLimitedError, lambda e: e.headers["Retry-After"] == "11"),
    ("fake/error-500", UpstreamError, lambda e: e.metadata["upstream_status"] == 500),
    ("fake/error-context", ContextLengthExceededError, lambda e: e.metadata["error_type"] == "context_length_exceeded"),
    ("fake/garbage", UpstreamError, lambda e: "not a chat completion" in e.message),
])
def test_vendor_errors_map_to_our_errors(catalog, model, error, check):
    with pytest.raises(error) as e:
        run(provider.complete(req(model), catalog.get(model).endpoints[0]))
    assert check(e.value) and e.value.metadata["provider_name"] == "fakevendor"


def test_built_headers_are_reused_only_for_the_very_provider_config_they_were_built_for(catalog):
    from shared.catalog import Endpoint

    ep = catalog.get("fake/ok").endpoints[0]
    first = provider.headers(ep)
    assert provider.headers(ep) is first and first["Authorization"] == "Bearer vendor-secret-123"  # the cache
    moved = ep.provider.model_copy(update={"base_url": "http://127.0.0.1:9/v1", "api_key_env": None})
    assert "Authorization" not in provider.headers(Endpoint(moved, ep.config))  # same id, another provider
    assert provider.headers(ep)["Authorization"] == "Bearer vendor-secret-123"


def test_a_vendor_echoing_our_key_never_leaks_it(catalog):
    with pytest.raises(ProviderAuthError) as e:
        run(provider.complete(req("fake/error-401"), catalog.get("fake/error-401").endpoints[0]))
    text = str(e.value.body())
    assert "vendor-se" not in text and "[redacted]" in text
    assert e.value.metadata["error_type"] == "provider_auth_failed" and e.value.status == 502


def test_unreachable_upstream_is_502_and_silence_is_504(tmp_path):
    from infra.local import free_port
    port = free_port()
    path = tmp_path / "c.yaml"
    path.write_text(f"providers: [{{id: gone, kind: openai, base_url: 'http://127.0.0.1:{port}/v1'}}]\n"
                    "models: [{id: gone/m, provider: gone, timeout_seconds: 0.3}]\n")
    catalog = load_catalog(path)
    with pytest.raises(ProviderUnreachableError) as e:
        run(provider.complete(req("gone/m"), catalog.get("gone/m").endpoints[0]))
    assert e.value.metadata["error_type"] == "provider_unavailable"

    async def silent_server():
        server = await asyncio.start_server(lambda r, w: asyncio.sleep(5), "127.0.0.1", port)
        async with server:
            return await provider.complete(req("gone/m"), catalog.get("gone/m").endpoints[0])
    with pytest.raises(UpstreamTimeoutError):
        run(silent_server())


def test_mid_stream_error_event_is_raised(catalog):
    with pytest.raises(UpstreamError, match="mid-stream"):
        run(chunks_of(provider.stream(req("fake/mid-error"), catalog.get("fake/mid-error").endpoints[0])))


def test_a_model_whose_provider_has_no_credentials_is_503(tmp_path, monkeypatch):
    from shared.chat.service import ChatService
    from shared.config import get_settings
    from shared.errors import NoProviderError

    monkeypatch.delenv("NOT_CONFIGURED_KEY", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("providers: [{id: paid, kind: openai, base_url: 'https://api.example.com/v1', "
                    "api_key_env: NOT_CONFIGURED_KEY}]\nmodels: [{id: paid/model, provider: paid}]\n")
    catalog = load_catalog(path)
    assert catalog.get("paid/model").to_openrouter()["available"] is False
    with pytest.raises(NoProviderError) as e:
        ChatService(catalog, meter=None, settings=get_settings()).route(req("paid/model"))  # type: ignore[arg-type]
    assert e.value.status == 503 and e.value.metadata["providers"] == ["paid"]


@pytest.mark.parametrize("api_version, path, query", [
    ("2024-10-21", "/openai/deployments/ok/chat/completions", {"api-version": "2024-10-21"}),
    (None, "/openai/v1/chat/completions", {}),
])
def test_azure_deployments_api_version_and_api_key_header(fake_upstream, tmp_path, monkeypatch, api_version, path, query):
    from shared.providers.openai import AzureProvider

    monkeypatch.setenv("AZURE_KEY", "azure-secret-000")
    version = f", api_version: '{api_version}'" if api_version else ""
    config = tmp_path / "c.yaml"
    config.write_text(f"providers: [{{id: azure-{api_version or 'v1'}, kind: azure, "
                      f"base_url: 'http://127.0.0.1:{fake_upstream.port}', api_key_env: AZURE_KEY{version}}}]\n"
                      f"models: [{{id: azure/gpt, provider: azure-{api_version or 'v1'}, upstream_model: ok}}]\n")
    ep = load_catalog(config).get("azure/gpt").endpoints[0]
    done = run(AzureProvider().complete(req("azure/gpt"), ep))
    sent = fake_upstream.requests[-1]
    assert sent["path"] == path and sent["query"] == query
    assert sent["headers"]["api-key"] == "azure-secret-000" and "Authorization" not in sent["headers"]
    assert done.body["choices"][0]["message"]["content"] == "Hello from the fake upstream."


@pytest.mark.parametrize("status, message, code", [
    (400, "Your request was rejected as a result of our safety system.", "content_policy_violation"),
    (400, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
     "content_filter"),
])
def test_content_refusals_have_their_own_error_type(status, message, code):
    from shared.providers.base import upstream_error

    error = upstream_error(status, message, provider="p", code=code)
    assert error.status == 400 and error.metadata["error_type"] == "content_policy_violation"
    assert upstream_error(400, "bad temperature", provider="p").metadata["error_type"] == "invalid_request"


def test_azure_streams_with_usage(fake_upstream, tmp_path, monkeypatch):
    from shared.providers.openai import AzureProvider
    from tests.support import collect

    monkeypatch.setenv("AZURE_KEY", "azure-secret-000")
    catalog = catalog_from(f"providers: [{{id: az-stream, kind: azure, base_url: 'http://127.0.0.1:{fake_upstream.port}', "
                           "api_key_env: AZURE_KEY, api_version: '2024-10-21'}]\n"
                           "models: [{id: azure/stream, provider: az-stream, upstream_model: ok}]\n", tmp_path)
    chunks = collect(AzureProvider(), req("azure/stream"), catalog.get("azure/stream").endpoints[0])
    sent = fake_upstream.requests[-1]
    assert sent["path"] == "/openai/deployments/ok/chat/completions" and sent["body"]["stream"] is True
    assert sent["body"]["stream_options"] == {"include_usage": True}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from the fake upstream." and chunks[-1]["usage"]["completion_tokens"] == 7
