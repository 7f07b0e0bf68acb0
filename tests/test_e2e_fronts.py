"""End to end on the local stack (what `make run` starts): the official `anthropic` SDK against /api/v1/messages
(base URL `.../api`, as with OpenRouter), and the openai SDK's embeddings and legacy completions."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.test_e2e import generation, sdk

pytestmark = pytest.mark.e2e
HI = [{"role": "user", "content": "Say hello"}]
WEATHER = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def claude(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url + "/api", api_key=stack.key("dev-key"), max_retries=0)


def test_the_anthropic_sdk_completes_a_message_a_stream_and_a_tool_round_trip(local_stack):
    client = claude(local_stack)
    message = client.messages.create(model="sim/fast", max_tokens=256, messages=HI)
    assert message.content[0].text and message.stop_reason == "end_turn"
    stats = generation(local_stack, message.id)
    assert stats["tokens_completion"] == message.usage.output_tokens and stats["total_cost"] > 0

    with client.messages.stream(model="sim/chat", max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text and final.usage.output_tokens > 0
    assert generation(local_stack, final.id)["streamed"] is True

    first = client.messages.create(model="anthropic-fake/claude-tool", max_tokens=256, tools=[WEATHER], messages=HI)
    call = first.content[-1]
    assert first.stop_reason == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    done = client.messages.create(model="anthropic-fake/claude-tool", max_tokens=256, tools=[WEATHER], messages=[
        *HI, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]}])
    assert done.content[0].text == "It is sunny."
    with client.messages.stream(model="sim/fast", max_tokens=256, tools=[WEATHER], messages=HI) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use" and isinstance(streamed.content[-1].input, dict)


def test_openai_sdk_embeddings_and_legacy_completions(local_stack):
    client = sdk(local_stack)
    vectors = client.embeddings.create(model="sim/embed", input=["hello world", "goodbye"])
    assert [len(d.embedding) for d in vectors.data] == [256, 256]
    assert generation(local_stack, vectors.id)["tokens_prompt"] == vectors.usage.prompt_tokens
    vendor = client.embeddings.create(model="fake/embed", input="hi", encoding_format="float")
    assert vendor.data[0].embedding == [1.0, 0.5, -0.5, 0.25] and vendor.usage.prompt_tokens == 5
    text = client.completions.create(model="sim/fast", prompt="Say hello", max_tokens=16)
    assert text.choices[0].text and text.object == "text_completion"
    assert generation(local_stack, text.id)["tokens_completion"] == text.usage.completion_tokens
    streamed = list(client.completions.create(model="fake/ok", prompt="Say hello", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "Hello from the fake upstream."
    assert json.loads(streamed[-1].model_dump_json())["usage"]["completion_tokens"] == 7


def test_a_200k_token_prompt_with_middle_out_is_answered_by_a_128k_model_and_says_so(local_stack):
    huge = " ".join(f"word{i}" for i in range(200_000))  # 200,000 sim tokens; sim/chat's context is 131,072
    client = sdk(local_stack)
    raw = client.chat.completions.with_raw_response.create(
        model="sim/chat", messages=[{"role": "user", "content": huge}], max_tokens=16,
        extra_body={"transforms": ["middle-out"]})
    answer = raw.parse()
    assert answer.choices[0].message.content and raw.headers["x-switchyard-transforms"] == "middle-out"
    report = answer.model_extra["transforms"][0]
    assert report["id"] == "middle-out" and report["compressed"] is True
    assert report["prompt_tokens_before"] > 200_000 and answer.usage.prompt_tokens <= 131_072


def test_the_responses_api_through_the_openai_sdk(local_stack):
    client = sdk(local_stack)
    answer = client.responses.create(model="sim/fast", input="Say hello", instructions="Be brief.")
    assert answer.output_text and generation(local_stack, answer.id)["status"] == "completed"
    events = [e.type for e in client.responses.create(model="sim/fast", input="Say hello", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
