"""The inference fronts besides chat (messages, completions, embeddings): each through its official SDK (in-process,
over Starlette's test transport), each call metered exactly once on the key's record, bad input a 400 naming the
field. The same against the real local stack: tests/test_e2e_fronts.py."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

HI = [{"role": "user", "content": "Say hello"}]
WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def fake_gateway(aws, fake_upstream, tmp_path, monkeypatch):
    """The gateway with the fake OpenAI-compatible vendor (and its embeddings models) in its catalog."""
    from functions.gateway.state import gateway
    from tests.conftest import reset_gateway

    config = tmp_path / "switchyard.yaml"
    config.write_text(fake_upstream.catalog_yaml())
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
    monkeypatch.setenv("FAKE_VENDOR_KEY", "vendor-secret-123")
    reset_gateway()
    return gateway()


@pytest.fixture
def app_client(fake_gateway):
    from starlette.testclient import TestClient

    from functions.gateway.app import app

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def dev(fake_gateway) -> str:
    token, _ = fake_gateway.keys.create("dev")
    return token


@pytest.fixture
def recorded(fake_gateway, monkeypatch) -> list:
    """Every usage record the meter is handed, in order."""
    events: list = []
    record = fake_gateway.meter.record
    monkeypatch.setattr(fake_gateway.meter, "record", lambda e: (events.append(e), record(e)))
    return events


def claude(client, key: str, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url="http://testserver/api", api_key=key, http_client=client, max_retries=0, **kw)


def gpt(client, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/api/v1", api_key=key, http_client=client, max_retries=0)


# -- POST /messages ----------------------------------------------------------------------------------------------
def test_a_message_through_the_anthropic_sdk_is_metered_once(app_client, dev, recorded):
    message = claude(app_client, dev).messages.create(model="sim/fast", max_tokens=200, messages=HI)
    assert message.type == "message" and message.role == "assistant" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text.startswith('On "Say hello"')
    assert message.model == "sim/fast" and message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert [e.id for e in recorded] == [message.id]
    event = recorded[0]
    assert event.status == "completed" and event.prompt_tokens == message.usage.input_tokens
    assert event.completion_tokens == message.usage.output_tokens and event.cost > 0


def test_the_key_may_come_as_bearer_too(app_client, dev):
    message = claude(app_client, "unused", default_headers={"Authorization": f"Bearer {dev}", "x-api-key": ""}) \
        .messages.create(model="sim/fast", max_tokens=20, messages=HI)
    assert message.content[0].text
    with pytest.raises(anthropic.AuthenticationError):
        claude(app_client, "sk-sy-v1-000000000000-wrongwrongwrongwrongwrongwrongwr000000").messages.create(
            model="sim/fast", max_tokens=20, messages=HI)


def test_a_streamed_message_matches_the_whole_one(app_client, dev, recorded):
    client = claude(app_client, dev)
    whole = client.messages.create(model="sim/fast", max_tokens=200, messages=HI)
    with client.messages.stream(model="sim/fast", max_tokens=200, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (whole.usage.input_tokens,
                                                                     whole.usage.output_tokens)
    assert [e.streamed for e in recorded] == [False, True] and recorded[1].id == final.id


def test_the_raw_event_sequence_is_anthropics(app_client, dev):
    with app_client.stream("POST", "/api/v1/messages", headers={"x-api-key": dev}, json={
            "model": "sim/fast", "max_tokens": 50, "messages": HI, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream") and r.headers["x-generation-id"]
        raw = r.read().decode()
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[1] == "content_block_start"
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    datas = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    assert [d["type"] for d in datas] == names  # each event's data names its own type, as Anthropic's do


def test_a_tool_round_trip_through_the_anthropic_sdk(app_client, dev, recorded):
    client = claude(app_client, dev)
    first = client.messages.create(model="sim/fast", max_tokens=200, tools=[WEATHER], messages=HI)
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and isinstance(call.input["city"], str)
    done = client.messages.create(model="sim/fast", max_tokens=200, tools=[WEATHER], messages=[
        *HI, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]}])
    assert done.stop_reason == "end_turn" and done.content[0].text.startswith("The tool returned sunny.")
    with client.messages.stream(model="sim/fast", max_tokens=200, tools=[WEATHER], messages=HI) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use" and streamed.content[-1].input == call.input
    assert streamed.content[-1].id == call.id and len(recorded) == 3


def test_tool_choice_and_system_reach_the_model(app_client, dev, fake_upstream):
    client = claude(app_client, dev)
    client.messages.create(model="fake/ok", max_tokens=30, system="Be brief.", messages=HI, tools=[WEATHER],
                           tool_choice={"type": "any", "disable_parallel_tool_use": True}, stop_sequences=["END"],
                           metadata={"user_id": "u-1"}, extra_body={"temperature": 0.5, "top_k": 5})
    sent = fake_upstream.requests[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert (sent["stop"], sent["temperature"], sent["top_k"], sent["user"]) == (["END"], 0.5, 5, "u-1")


def test_images_and_tool_results_translate_in_order(app_client, dev, fake_upstream):
    claude(app_client, dev).messages.create(model="fake/ok", max_tokens=30, tools=[WEATHER], messages=[
        {"role": "user", "content": [{"type": "text", "text": "Look"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "tu_1", "name": "get_weather",
                                           "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "cold",
                                      "is_error": True}, {"type": "text", "text": "And now?"}]}])
    sent = fake_upstream.requests[-1]["body"]["messages"]
    assert sent[0]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert sent[2] == {"role": "tool", "tool_call_id": "tu_1", "content": "Error: cold"}
    assert sent[3] == {"role": "user", "content": [{"type": "text", "text": "And now?"}]}


@pytest.mark.parametrize("body, field", [
    ({"model": "sim/fast", "messages": []}, "messages"),
    ({"model": "sim/fast", "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"model": "sim/fast", "messages": HI, "temperature": 1.5}, "temperature"),
    ({"model": "sim/fast", "messages": HI, "container": "c1"}, "container"),
    ({"model": "sim/fast", "messages": HI, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "tools[0].type"),
    ({"model": "sim/fast", "messages": HI, "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"model": "sim/fast", "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x", "name": "f",
                                                                      "input": {}}]}]}, "messages[0].content[0]"),
    ({"model": "sim/fast", "messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png"}}]}]}, "messages[0].content[0].source.data"),
])
def test_bad_messages_are_a_400_naming_the_field_and_metered(app_client, dev, recorded, body, field):
    r = app_client.post("/api/v1/messages", headers={"x-api-key": dev}, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == 400 and error["metadata"]["field"] == field
    assert [e.id for e in recorded] == [error["metadata"]["generation_id"]] and recorded[0].error_code == 400


def test_a_failure_before_the_stream_is_an_sdk_error_and_after_it_an_error_event(app_client, dev):
    client = claude(app_client, dev)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="sim/rate-limited", max_tokens=20, messages=HI, stream=True)
    with pytest.raises(anthropic.APIStatusError) as e:
        with client.messages.stream(model="fake/mid-error", max_tokens=20, messages=HI) as stream:
            for _ in stream:
                pass
    assert "upstream overloaded" in str(e.value)


# -- POST /completions -------------------------------------------------------------------------------------------
def test_legacy_completions_through_the_openai_sdk(app_client, dev, recorded):
    client = gpt(app_client, dev)
    answer = client.completions.create(model="sim/fast", prompt="Once upon a time", max_tokens=30)
    assert answer.object == "text_completion" and answer.choices[0].text.startswith('On "Once upon a time"')
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage.completion_tokens > 0
    chunks = list(client.completions.create(model="sim/fast", prompt="Once upon a time", max_tokens=30, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == answer.choices[0].text
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
    assert [e.id for e in recorded] == [answer.id, chunks[0].id]


def test_completions_pass_logprobs_on_and_refuse_what_they_cannot_do(app_client, dev, fake_upstream, recorded):
    client = gpt(app_client, dev)
    client.completions.create(model="fake/ok", prompt="x", logprobs=3)
    sent = fake_upstream.requests[-1]["body"]
    assert sent["messages"] == [{"role": "user", "content": "x"}]
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 3)
    for extra, field in (({"echo": True}, "echo"), ({"suffix": "end"}, "suffix"), ({"best_of": 2}, "best_of")):
        with pytest.raises(openai.BadRequestError) as e:
            client.completions.create(model="sim/fast", prompt="x", extra_body=extra)
        assert e.value.body["metadata"]["field"] == field
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="sim/fast", prompt=["one", "two"])
    assert e.value.body["metadata"]["field"] == "prompt"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="sim/fast", prompt="x", temperature=7)
    assert e.value.body["metadata"]["field"] == "temperature"
    assert len(recorded) == 6 and all(r.error_code == 400 for r in recorded[1:])
    scored = client.completions.create(model="sim/fast", prompt="x", logprobs=2, max_tokens=10).choices[0]
    assert "".join(scored.logprobs.tokens) == scored.text and len(scored.logprobs.top_logprobs[0]) == 2
    assert scored.logprobs.text_offset[0] == 0 and all(lp <= 0 for lp in scored.logprobs.token_logprobs)


# -- POST /embeddings --------------------------------------------------------------------------------------------
def test_sim_embeddings_through_the_openai_sdk(app_client, dev, recorded):
    client = gpt(app_client, dev)
    answer = client.embeddings.create(model="sim/embed", input=["the cat sat", "the cat sat down", "stocks fell"])
    vectors = [d.embedding for d in answer.data]  # (the SDK asked for base64 and decoded it)
    assert [len(v) for v in vectors] == [256] * 3 and answer.model == "sim/embed"

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert answer.usage.prompt_tokens == 3 + 4 + 2 == recorded[0].prompt_tokens
    assert recorded[0].completion_tokens == 0 and recorded[0].cost == pytest.approx(9 * 0.02 / 1e6)
    floats = client.embeddings.create(model="sim/embed", input="the cat sat", dimensions=16, encoding_format="float")
    assert len(floats.data[0].embedding) == 16
    assert [e.id for e in recorded] == [answer.id, floats.id]


def test_openai_kind_embeddings_pass_the_body_and_keep_the_vendor_count(app_client, dev, fake_upstream, recorded):
    client = gpt(app_client, dev)
    answer = client.embeddings.create(model="fake/embed", input=["a", "b"], dimensions=4)
    assert fake_upstream.requests[-1]["path"] == "/v1/embeddings"
    sent = fake_upstream.requests[-1]["body"]
    assert (sent["model"], sent["input"], sent["dimensions"]) == ("embed", ["a", "b"], 4)
    assert [d.embedding for d in answer.data] == [[1.0, 0.5, -0.5, 0.25], [2.0, 0.5, -0.5, 0.25]]
    assert answer.usage.prompt_tokens == 10 and recorded[-1].usage_estimated is False
    counted = client.embeddings.create(model="fake/embed-no-usage", input="one two three")
    assert counted.usage.prompt_tokens > 0 and recorded[-1].usage_estimated is True


def test_embeddings_fall_back_and_refuse_chat_models(app_client, dev, recorded):
    client = gpt(app_client, dev)
    answer = client.embeddings.create(model="fake/embed-error-500", input="x", extra_body={"models": ["sim/embed"]})
    assert answer.model == "sim/embed" and [a["status"] for a in recorded[-1].attempts] == [500, 200]
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="sim/fast", input="x")
    assert "not an embeddings model" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="sim/embed", input=[])
    assert e.value.body["metadata"]["field"] == "input"
    assert len(recorded) == 3


def test_key_restrictions_apply_to_every_front(app_client, fake_gateway, recorded):
    token, _ = fake_gateway.keys.create("narrow", allowed_models=["sim/fast"])
    with pytest.raises(openai.PermissionDeniedError):
        gpt(app_client, token).embeddings.create(model="sim/embed", input="x")
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(app_client, token).messages.create(model="sim/chat", max_tokens=5, messages=HI)
    with pytest.raises(openai.PermissionDeniedError):
        gpt(app_client, token).completions.create(model="sim/chat", prompt="x")
    assert [e.error_code for e in recorded] == [403, 403, 403]
    listed = app_client.get("/api/v1/models/user", headers={"Authorization": f"Bearer {token}"}).json()["data"]
    assert {m["id"] for m in listed} == {"sim/fast", "switchyard/fallback-demo", "switchyard/auto"}  # policies: by
    # the models they route to (a call to one is served by the models the key may call)


# -- listings ----------------------------------------------------------------------------------------------------
def test_model_count_providers_and_embeddings_models(app_client, dev):
    every = app_client.get("/api/v1/models").json()["data"]
    assert app_client.get("/api/v1/models/count").json() == {"data": {"count": len(every)}}
    providers = app_client.get("/api/v1/providers").json()["data"]
    by_slug = {p["slug"]: p for p in providers}
    assert by_slug["sim"]["name"] == "Switchyard Simulator" and by_slug["sim"]["available"] is True
    assert by_slug["fakevendor"]["kind"] == "openai" and by_slug["fakevendor"]["models"] > 10
    assert {"privacy_policy_url", "terms_of_service_url", "status_page_url"} <= set(by_slug["openai"])
    embeds = app_client.get("/api/v1/embeddings/models").json()["data"]
    assert {m["id"] for m in embeds} == {"sim/embed", "fake/embed", "fake/embed-no-usage", "fake/embed-error-500"}
    everything = app_client.get("/api/v1/models/user", headers={"Authorization": f"Bearer {dev}"}).json()["data"]
    assert len(everything) == len(every)
    assert app_client.get("/api/v1/models/user").status_code == 401


# -- POST /responses ---------------------------------------------------------------------------------------------
FN = [{"type": "function", "name": "get_weather", "parameters": WEATHER["input_schema"]}]


def test_responses_text_tools_and_their_round_trip(app_client, dev, recorded):
    client = gpt(app_client, dev)
    text = client.responses.create(model="sim/fast", instructions="Be brief.", input="Say hello")
    assert text.status == "completed" and text.output_text.startswith('On "Say hello"')
    assert text.usage.output_tokens == recorded[-1].completion_tokens and text.id == recorded[-1].id
    first = client.responses.create(model="sim/fast", input="Weather?", tools=FN)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments)["city"]
    done = client.responses.create(model="sim/fast", tools=FN, input=[
        {"role": "user", "content": "Weather?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert done.output_text.startswith("The tool returned sunny.")
    cut = client.responses.create(model="sim/fast", input="Say hello", max_output_tokens=5)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert len(recorded) == 4


def test_responses_stream_events_in_order(app_client, dev):
    client = gpt(app_client, dev)
    whole = client.responses.create(model="sim/fast", input="Say hello")
    events = list(client.responses.create(model="sim/fast", input="Say hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == whole.output_text
    assert events[-1].response.output_text == whole.output_text and events[-1].response.usage.output_tokens > 0
    with client.responses.stream(model="sim/fast", input="Weather?", tools=FN) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "function_call" and json.loads(final.output[0].arguments)


def test_responses_json_format_reaches_the_model_and_state_is_refused(app_client, dev, fake_upstream):
    client = gpt(app_client, dev)
    client.responses.create(model="fake/ok", input="x", text={"format": {
        "type": "json_schema", "name": "answer", "schema": {"type": "object"}}}, truncation="auto")
    sent = fake_upstream.requests[-1]["body"]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer",
                                                                              "schema": {"type": "object"}}}
    assert "transforms" not in sent  # (a gateway field: middle-out, not forwarded)
    for extra, field in (({"previous_response_id": "resp_1"}, "previous_response_id"), ({"store": True}, "store"),
                         ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
                         ({"input": [{"type": "file_search_call", "id": "x"}]}, "input[0].type"),
                         ({"include": ["reasoning.encrypted_content"]}, "include")):
        r = app_client.post("/api/v1/responses", headers={"Authorization": f"Bearer {dev}"},
                            json={"model": "sim/fast", "input": "x", **extra})
        assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == field, r.text
