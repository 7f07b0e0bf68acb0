"""The `gemini` adapter against a fake Gemini API: what we send, what the client gets, streamed and not."""

import orjson
import pytest

from shared.chat.schema import parse_chat_request
from shared.errors import ContextLengthExceededError, RateLimitedError
from shared.providers.gemini import GeminiProvider
from tests.support import catalog_from, collect as _collect, run

provider = GeminiProvider()
WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture
def catalog(fake_gemini, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_GEMINI_KEY", "gemini-secret-789")
    return catalog_from(fake_gemini.catalog_yaml(), tmp_path)




def req(model="gemini-ok", messages=None, **fields):
    return parse_chat_request(orjson.dumps({"model": f"gemini-fake/{model}",
                                            "messages": messages or [{"role": "user", "content": "hi"}], **fields}))


def endpoint(catalog, model="gemini-ok"):
    return catalog.get(f"gemini-fake/{model}").endpoints[0]


def collect(request, ep):
    return _collect(provider, request, ep)


def test_the_request_is_translated(catalog, fake_gemini):
    run(provider.complete(req(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}],
        temperature=0.3, top_p=0.9, max_tokens=50, stop=["END"], seed=4, tools=WEATHER, tool_choice="auto"),
        endpoint(catalog)))
    sent = fake_gemini.requests[-1]
    body = sent["body"]
    assert sent["headers"]["x-goog-api-key"] == "gemini-secret-789" and sent["action"] == "generateContent"
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    assert body["generationConfig"] == {"temperature": 0.3, "topP": 0.9, "seed": 4, "maxOutputTokens": 50,
                                        "stopSequences": ["END"]}
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_text_and_usage_streamed_or_not(catalog, fake_gemini):
    whole = run(provider.complete(req(), endpoint(catalog)))
    assert whole.body["choices"][0]["message"]["content"] == "Hello from Gemini."
    assert whole.body["choices"][0]["native_finish_reason"] == "STOP" and whole.finish_reason == "stop"
    u = whole.usage
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens) == (17, 10, 2, 4)
    chunks = collect(req(), endpoint(catalog))
    assert fake_gemini.requests[-1]["action"] == "streamGenerateContent" and fake_gemini.requests[-1]["query"] == {"alt": "sse"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from Gemini."
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["prompt_tokens_details"]["cached_tokens"],
            usage["completion_tokens_details"]["reasoning_tokens"]) == (17, 10, 2, 4)


def test_tool_call_round_trip_and_streamed_calls(catalog, fake_gemini):
    first = run(provider.complete(req("gemini-tool", tools=WEATHER), endpoint(catalog, "gemini-tool")))
    call = first.body["choices"][0]["message"]["tool_calls"][0]
    assert first.finish_reason == "tool_calls" and call["function"] == {"name": "get_weather",
                                                                        "arguments": '{"city":"Paris"}'}
    follow = req("gemini-tool", tools=WEATHER, messages=[
        {"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"sky": "sunny"}'}])
    done = run(provider.complete(follow, endpoint(catalog, "gemini-tool")))
    contents = fake_gemini.requests[-1]["body"]["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}
    assert contents[2] == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                           "response": {"sky": "sunny"}}}]}
    assert done.body["choices"][0]["message"]["content"] == "It is sunny."
    chunks = collect(req("gemini-tool", tools=WEATHER), endpoint(catalog, "gemini-tool"))
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["index"] == 0
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_json_mode_safety_and_errors(catalog, fake_gemini):
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "object"}}}
    done = run(provider.complete(req("gemini-json", response_format=fmt), endpoint(catalog, "gemini-json")))
    assert fake_gemini.requests[-1]["body"]["generationConfig"] == {"responseMimeType": "application/json",
                                                                     "responseJsonSchema": {"type": "object"}}
    assert orjson.loads(done.body["choices"][0]["message"]["content"]) == {"name": "Ada", "n": 36}
    blocked = run(provider.complete(req("gemini-safety"), endpoint(catalog, "gemini-safety")))
    assert blocked.finish_reason == "content_filter" and blocked.body["choices"][0]["native_finish_reason"] == "SAFETY"
    with pytest.raises(RateLimitedError) as e:
        run(provider.complete(req("gemini-429"), endpoint(catalog, "gemini-429")))
    assert e.value.metadata["upstream_code"] == "RESOURCE_EXHAUSTED"
    with pytest.raises(ContextLengthExceededError) as e:
        run(provider.complete(req("gemini-long"), endpoint(catalog, "gemini-long")))
    assert e.value.metadata["error_type"] == "context_length_exceeded"
