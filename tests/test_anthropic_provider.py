"""The `anthropic` adapter against a fake Messages API: what we send, what the client gets, streamed and not."""

import orjson
import pytest

from shared.chat.schema import parse_chat_request
from shared.errors import (BadRequestError, ContextLengthExceededError, ProviderOverloadedError, RateLimitedError)
from shared.providers.anthropic import AnthropicProvider
from tests.support import catalog_from, collect as _collect, run

provider = AnthropicProvider()
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def catalog(fake_anthropic, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "anthropic-secret-456")
    return catalog_from(fake_anthropic.catalog_yaml(), tmp_path)




def req(model="claude-ok", messages=None, **fields):
    return parse_chat_request(orjson.dumps({"model": f"anthropic-fake/{model}",
                                            "messages": messages or [{"role": "user", "content": "hi"}], **fields}))


def endpoint(catalog, model="claude-ok"):
    return catalog.get(f"anthropic-fake/{model}").endpoints[0]


def collect(request, ep):
    return _collect(provider, request, ep)


def test_the_request_is_translated_to_the_messages_api(catalog, fake_anthropic):
    image = "data:image/png;base64,iVBORw0KGgo="
    run(provider.complete(req(messages=[
        {"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": image}}]}],
        temperature=1.7, stop="END", tools=WEATHER, tool_choice="required", user="u-7"), endpoint(catalog)))
    sent = fake_anthropic.requests[-1]
    body, headers = sent["body"], sent["headers"]
    assert headers["x-api-key"] == "anthropic-secret-456" and headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Be brief.\n\nUse metric units." and body["max_tokens"] == 1024
    assert body["temperature"] == 1.0 and body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-7"}
    assert body["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][0]["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def test_text_answer_finish_reason_and_usage_with_cache_tokens(catalog):
    done = run(provider.complete(req(), endpoint(catalog)))
    choice = done.body["choices"][0]
    assert choice["message"]["content"] == "Hello from Claude."
    assert choice["finish_reason"] == "stop" and choice["native_finish_reason"] == "end_turn"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.cached_tokens) == (29, 9, 5)


def test_streamed_usage_equals_unstreamed_usage(catalog):
    whole = run(provider.complete(req(), endpoint(catalog)))
    chunks = collect(req(), endpoint(catalog))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole.body["choices"][0]["message"]["content"]
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["prompt_tokens_details"]["cached_tokens"]) == \
        (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.cached_tokens)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


def test_tool_call_round_trip(catalog, fake_anthropic):
    first = run(provider.complete(req("claude-tool", tools=WEATHER), endpoint(catalog, "claude-tool")))
    message = first.body["choices"][0]["message"]
    call = message["tool_calls"][0]
    assert first.finish_reason == "tool_calls" and message["content"] == "Let me check."
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'} and call["id"] == "toolu_01"
    follow = req("claude-tool", tools=WEATHER, messages=[
        {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "sunny, 21C"}])
    done = run(provider.complete(follow, endpoint(catalog, "claude-tool")))
    sent = fake_anthropic.requests[-1]["body"]["messages"]
    assert sent[1]["content"] == [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]
    assert sent[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
                                                    "content": "sunny, 21C"}]}
    assert done.body["choices"][0]["message"]["content"] == "It is sunny."


def test_streamed_tool_call_arguments(catalog):
    chunks = collect(req("claude-tool", tools=WEATHER), endpoint(catalog, "claude-tool"))
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == "toolu_01" and calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads("".join(tc["function"].get("arguments", "") for tc in calls)) == {"city": "Paris"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_json_schema_is_a_forced_tool_whose_input_is_the_answer(catalog, fake_anthropic):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}}}}
    done = run(provider.complete(req("claude-json", response_format=fmt), endpoint(catalog, "claude-json")))
    assert fake_anthropic.requests[-1]["body"]["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert orjson.loads(done.body["choices"][0]["message"]["content"]) == {"name": "Ada", "n": 36}
    assert done.finish_reason == "stop" and "tool_calls" not in done.body["choices"][0]["message"]
    chunks = collect(req("claude-json", response_format=fmt), endpoint(catalog, "claude-json"))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert orjson.loads(text) == {"name": "Ada", "n": 36}
    plain = run(provider.complete(req(response_format={"type": "json_object"}), endpoint(catalog)))
    assert plain.body["choices"][0]["message"]["content"]
    assert "JSON" in fake_anthropic.requests[-1]["body"]["system"]


@pytest.mark.parametrize("model, error, check", [
    ("claude-429", RateLimitedError, lambda e: e.headers["Retry-After"] == "13"),
    ("claude-529", ProviderOverloadedError, lambda e: e.metadata["error_type"] == "provider_overloaded"),
    ("claude-long", ContextLengthExceededError, lambda e: e.metadata["error_type"] == "context_length_exceeded"),
])
def test_vendor_errors_map_to_our_vocabulary(catalog, model, error, check):
    with pytest.raises(error) as e:
        run(provider.complete(req(model), endpoint(catalog, model)))
    assert check(e.value) and e.value.metadata["provider_name"] == "fakeanthropic"


def test_an_error_event_mid_stream_and_unsupported_n(catalog):
    with pytest.raises(ProviderOverloadedError) as e:
        collect(req("claude-midstream-error"), endpoint(catalog, "claude-midstream-error"))
    assert e.value.metadata["error_type"] == "provider_overloaded"
    with pytest.raises(BadRequestError):
        run(provider.complete(req(n=2), endpoint(catalog)))


def test_a_catalog_model_reaches_anthropic_directly_by_its_api_name(fake_anthropic, tmp_path, monkeypatch):
    """The built-in `anthropic` provider (pointed at the fake) serves the generated catalog's Claude models."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-direct-789")
    catalog = catalog_from("providers:\n  - {id: anthropic, kind: anthropic, base_url: '%s', "
                           "api_key_env: ANTHROPIC_API_KEY}\n" % fake_anthropic.base_url, tmp_path)
    direct = catalog.get("anthropic/claude-haiku-4.5").endpoints[0]
    request = parse_chat_request(orjson.dumps({"model": "anthropic/claude-haiku-4.5",
                                               "messages": [{"role": "user", "content": "hi"}]}))
    done = run(provider.complete(request, direct))
    sent = fake_anthropic.requests[-1]
    assert sent["body"]["model"] == "claude-haiku-4-5" and sent["headers"]["x-api-key"] == "anthropic-direct-789"
    assert done.body["choices"][0]["message"]["content"] == "Hello from Claude."
