"""The `bedrock` adapter through botocore against a fake Converse API (REST JSON and binary event streams)."""

import asyncio

import orjson
import pytest

from shared.chat.schema import parse_chat_request
from shared.errors import BadRequestError, ContextLengthExceededError, RateLimitedError
from shared.providers.bedrock import BedrockProvider, _client
from tests.support import catalog_from, collect as _collect

provider = BedrockProvider()
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def catalog(fake_bedrock, tmp_path):
    _client.cache_clear()
    return catalog_from(fake_bedrock.catalog_yaml(), tmp_path)


def req(model="bedrock-ok", messages=None, **fields):
    return parse_chat_request(orjson.dumps({"model": f"bedrock-fake/{model}",
                                            "messages": messages or [{"role": "user", "content": "hi"}], **fields}))


def endpoint(catalog, model="bedrock-ok"):
    return catalog.get(f"bedrock-fake/{model}").endpoints[0]


def collect(request, ep):
    return _collect(provider, request, ep)


def test_the_request_is_translated_and_signed(catalog, fake_bedrock):
    asyncio.run(provider.complete(req(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
        temperature=0.2, max_tokens=64, stop="END", tools=WEATHER, tool_choice="required"), endpoint(catalog)))
    sent = fake_bedrock.requests[-1]
    body = sent["body"]
    assert sent["action"] == "converse" and sent["model"] == "bedrock-ok"
    assert sent["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256")  # botocore signed it
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2, "stopSequences": ["END"]}
    assert body["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"] == {"city": {"type": "string"}}
    with pytest.raises(BadRequestError):
        asyncio.run(provider.complete(req(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]), endpoint(catalog)))


def test_text_and_usage_streamed_or_not(catalog):
    whole = asyncio.run(provider.complete(req(), endpoint(catalog)))
    assert whole.body["choices"][0]["message"]["content"] == "Hello from Bedrock." and whole.finish_reason == "stop"
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.cached_tokens) == (17, 5, 4)
    chunks = collect(req(), endpoint(catalog))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello from Bedrock."
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["prompt_tokens_details"]["cached_tokens"]) == \
        (17, 5, 4)


def test_tool_call_round_trip_and_streamed_arguments(catalog, fake_bedrock):
    first = asyncio.run(provider.complete(req("bedrock-tool", tools=WEATHER), endpoint(catalog, "bedrock-tool")))
    call = first.body["choices"][0]["message"]["tool_calls"][0]
    assert first.finish_reason == "tool_calls" and call["function"] == {"name": "get_weather",
                                                                        "arguments": '{"city":"Paris"}'}
    follow = req("bedrock-tool", tools=WEATHER, messages=[
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}])
    done = asyncio.run(provider.complete(follow, endpoint(catalog, "bedrock-tool")))
    sent = fake_bedrock.requests[-1]["body"]["messages"]
    assert sent[1]["content"] == [{"toolUse": {"toolUseId": "tooluse_01", "name": "get_weather", "input": {"city": "Paris"}}}]
    assert sent[2]["content"] == [{"toolResult": {"toolUseId": "tooluse_01", "content": [{"text": "sunny"}]}}]
    assert done.body["choices"][0]["message"]["content"] == "It is sunny."
    chunks = collect(req("bedrock-tool", tools=WEATHER), endpoint(catalog, "bedrock-tool"))
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] == "tooluse_01" and orjson.loads("".join(tc["function"]["arguments"] for tc in calls)) == \
        {"city": "Paris"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_json_schema_forced_tool_and_errors(catalog):
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}}
    done = asyncio.run(provider.complete(req("bedrock-json", response_format=fmt), endpoint(catalog, "bedrock-json")))
    assert orjson.loads(done.body["choices"][0]["message"]["content"]) == {"name": "Ada", "n": 36}
    assert done.finish_reason == "stop"
    chunks = collect(req("bedrock-json", response_format=fmt), endpoint(catalog, "bedrock-json"))
    assert orjson.loads("".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])) == \
        {"name": "Ada", "n": 36}
    with pytest.raises(RateLimitedError):
        asyncio.run(provider.complete(req("bedrock-throttle"), endpoint(catalog, "bedrock-throttle")))
    with pytest.raises(ContextLengthExceededError) as e:
        asyncio.run(provider.complete(req("bedrock-long"), endpoint(catalog, "bedrock-long")))
    assert e.value.metadata["error_type"] == "context_length_exceeded"
    with pytest.raises(RateLimitedError):
        collect(req("bedrock-midstream"), endpoint(catalog, "bedrock-midstream"))
