import asyncio

import orjson
import pytest

from shared.catalog import load_catalog
from shared.chat.schema import parse_chat_request
from shared.errors import RateLimitedError, UpstreamError
from shared.providers.sim import SimProvider, count_tokens

sim = SimProvider()
CATALOG = load_catalog()


def req(**fields):
    return parse_chat_request(orjson.dumps({"model": "sim/fast",
                                            "messages": [{"role": "user", "content": "Explain routing"}], **fields}))


def endpoint(model="sim/fast"):
    return CATALOG.get(model).endpoints[0]


async def collect(request, ep):
    return [c async for c in sim.stream(request, ep)]


def test_same_request_same_answer_and_usage_counts_the_text():
    a = asyncio.run(sim.complete(req(seed=1), endpoint()))
    b = asyncio.run(sim.complete(req(seed=1), endpoint()))
    c = asyncio.run(sim.complete(req(seed=2), endpoint()))
    text = a.body["choices"][0]["message"]["content"]
    assert text == b.body["choices"][0]["message"]["content"] != c.body["choices"][0]["message"]["content"]
    assert a.usage.completion_tokens == count_tokens(text) and a.usage.prompt_tokens > 0


def test_stream_is_chunked_and_its_usage_equals_the_unstreamed_answer():
    request = req(seed=3)
    whole = asyncio.run(sim.complete(request, endpoint()))
    chunks = asyncio.run(collect(request, endpoint()))
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == whole.body["choices"][0]["message"]["content"]
    assert len(chunks) > 10  # realistic chunking, not one blob
    assert chunks[-1]["usage"]["completion_tokens"] == whole.usage.completion_tokens
    assert chunks[-1]["usage"]["prompt_tokens"] == whole.usage.prompt_tokens


def test_tool_calls_follow_the_schema_and_the_tool_result_finishes():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"]}}}]
    first = asyncio.run(sim.complete(req(tools=tools), endpoint()))
    call = first.body["choices"][0]["message"]["tool_calls"][0]
    assert first.finish_reason == "tool_calls" and call["function"]["name"] == "get_weather"
    args = orjson.loads(call["function"]["arguments"])
    assert isinstance(args["city"], str) and isinstance(args["days"], int)
    follow = req(tools=tools, messages=[{"role": "user", "content": "weather?"},
                                        {"role": "assistant", "content": None, "tool_calls": [call]},
                                        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}])
    done = asyncio.run(sim.complete(follow, endpoint()))
    assert done.finish_reason == "stop" and "sunny" in done.body["choices"][0]["message"]["content"]
    chunks = asyncio.run(collect(req(tools=tools), endpoint()))
    streamed = "".join(tc["function"].get("arguments", "") for c in chunks if c["choices"]
                       for tc in c["choices"][0]["delta"].get("tool_calls") or [])
    assert orjson.loads(streamed) == args


def test_json_mode_returns_json_matching_the_schema():
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "score": {"type": "number"},
                                               "tags": {"type": "array", "items": {"type": "string"}}}}
    out = asyncio.run(sim.complete(req(response_format={"type": "json_schema",
                                                        "json_schema": {"name": "x", "schema": schema}}), endpoint()))
    value = orjson.loads(out.body["choices"][0]["message"]["content"])
    assert set(value) == {"name", "score", "tags"}
    plain = asyncio.run(sim.complete(req(response_format={"type": "json_object"}), endpoint()))
    assert isinstance(orjson.loads(plain.body["choices"][0]["message"]["content"]), dict)


def test_broken_json_model_breaks_json():
    broken = 0
    for seed in range(20):
        out = asyncio.run(sim.complete(req(seed=seed, response_format={"type": "json_object"}),
                                       endpoint("sim/broken-json")))
        try:
            orjson.loads(out.body["choices"][0]["message"]["content"])
        except orjson.JSONDecodeError:
            broken += 1
    assert broken == 20


def test_max_tokens_truncates_with_finish_reason_length():
    out = asyncio.run(sim.complete(req(max_tokens=5), endpoint()))
    assert out.finish_reason == "length" and out.usage.completion_tokens <= 5
    assert asyncio.run(sim.complete(req(), endpoint("sim/truncating"))).finish_reason == "length"


def test_failure_injection():
    with pytest.raises(UpstreamError) as e:
        asyncio.run(sim.complete(req(), endpoint("sim/down")))
    assert e.value.metadata["upstream_status"] == 503
    with pytest.raises(RateLimitedError) as e:
        asyncio.run(sim.complete(req(), endpoint("sim/rate-limited")))
    assert e.value.headers["Retry-After"] == "7"
    outcomes = []
    for _ in range(400):
        try:
            asyncio.run(sim.complete(req(), endpoint("sim/flaky")))
            outcomes.append(True)
        except UpstreamError:
            outcomes.append(False)
    assert 140 < sum(outcomes) < 260  # error_rate 0.5 (binomial 400 draws: ±6 sigma)


def test_n_choices():
    out = asyncio.run(sim.complete(req(n=3), endpoint()))
    assert [c["index"] for c in out.body["choices"]] == [0, 1, 2]
