"""End to end: `python -m infra.local` (what `make run` starts) with the official openai SDK as the client."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import openai
import pytest

from tests.conftest import LocalProcess

pytestmark = pytest.mark.e2e
HI = [{"role": "user", "content": "Say hello"}]


def sdk(stack: LocalProcess, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/api/v1", api_key=key or stack.key("dev-key"), max_retries=0)


def get_json(stack: LocalProcess, path: str, key: str) -> tuple[int, dict]:
    req = urllib.request.Request(stack.url + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def generation(stack: LocalProcess, gen_id: str, key: str | None = None, want: str | None = None) -> dict:
    """The call's stats (polled briefly: a client can ask before its stream's finally-block has run)."""
    for _ in range(100):
        status, body = get_json(stack, f"/api/v1/generation?id={gen_id}", key or stack.key("dev-key"))
        if status == 200 and (want is None or body["data"]["status"] == want):
            return body["data"]
        time.sleep(0.05)
    raise AssertionError(f"no generation {gen_id}: {status} {body}")


def test_local_stack_wrote_keys_and_serves_health(local_stack):
    assert local_stack.key("dev-key").startswith("sk-sy-v1-")
    assert local_stack.key("admin-key").startswith("sk-sy-mgmt-v1-")
    assert (local_stack.state_dir / "pepper").stat().st_mode & 0o077 == 0


def test_sdk_completes_a_sim_model_and_generation_reports_cost(local_stack):
    answer = sdk(local_stack).chat.completions.create(model="sim/fast", messages=HI)
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
    assert answer.model == "sim/fast" and answer.usage.completion_tokens > 0
    stats = generation(local_stack, answer.id)
    assert stats["tokens_prompt"] == answer.usage.prompt_tokens
    assert stats["tokens_completion"] == answer.usage.completion_tokens
    assert stats["total_cost"] == pytest.approx(answer.model_extra["usage"]["cost"] if "usage" in answer.model_extra
                                                else answer.usage.model_extra["cost"])
    assert stats["total_cost"] > 0 and stats["provider_name"] == "sim" and stats["status"] == "completed"


def test_sdk_streams_with_a_final_usage_chunk(local_stack):
    chunks = list(sdk(local_stack).chat.completions.create(model="sim/fast", messages=HI, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) > 20 and len(chunks) > 5
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.model_extra["cost"] > 0
    assert len({c.id for c in chunks}) == 1
    stats = generation(local_stack, chunks[0].id)
    assert stats["streamed"] is True and stats["tokens_completion"] == chunks[-1].usage.completion_tokens
    assert stats["time_to_first_token"] is not None


def test_sdk_exception_classes(local_stack):
    client = sdk(local_stack)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody/no-such-model", messages=HI)
    with pytest.raises(openai.AuthenticationError):
        sdk(local_stack, "sk-sy-v1-000000000000-wrongwrongwrongwrongwrongwrongwr000000").chat.completions.create(
            model="sim/fast", messages=HI)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="sim/rate-limited", messages=HI)
    assert e.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="sim/fast", messages=HI, temperature=9)


def test_sdk_gets_402_when_the_credit_limit_is_spent(local_stack):
    req = urllib.request.Request(local_stack.url + "/api/v1/keys", method="POST",
                                 data=json.dumps({"name": "tiny", "limit": 0.0001}).encode(),
                                 headers={"Authorization": f"Bearer {local_stack.key('admin-key')}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
        token = json.loads(r.read())["key"]
    client = sdk(local_stack, token)
    client.chat.completions.create(model="sim/fast", messages=HI, max_tokens=8)  # its worst case fits
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="sim/fast", messages=HI)  # 4,096 tokens at most: it does not
    assert e.value.status_code == 402 and "can only afford" in e.value.message


def test_openai_kind_upstream_complete_and_stream_are_metered_from_vendor_usage(local_stack, fake_upstream):
    client = sdk(local_stack)
    answer = client.chat.completions.create(model="fake/ok", messages=HI)
    assert answer.choices[0].message.content == "Hello from the fake upstream."
    assert fake_upstream.requests[-1]["headers"]["Authorization"] == "Bearer vendor-secret-123"
    assert answer.usage.prompt_tokens == 13 and answer.usage.model_extra["cost"] == pytest.approx((13 + 14) / 1e6)
    chunks = list(client.chat.completions.create(model="fake/ok", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake upstream."
    assert chunks[-1].usage.completion_tokens == 7
    stats = generation(local_stack, chunks[0].id)
    assert stats["native_tokens_cached"] == 4 and stats["usage_estimated"] is False


def _raw_stream(stack: LocalProcess, model: str) -> str:
    req = urllib.request.Request(stack.url + "/api/v1/chat/completions", method="POST",
                                 data=json.dumps({"model": model, "messages": HI, "stream": True}).encode(),
                                 headers={"Authorization": f"Bearer {stack.key('dev-key')}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read().decode()


@pytest.mark.parametrize("model", ["fake/slow-stream", "fake/slow-headers"])
def test_keepalive_comments_flow_while_the_upstream_is_silent(local_stack, model):
    raw = _raw_stream(local_stack, model)  # 0.6 s of silence (after or before its headers); keep-alive every 0.2 s
    assert raw.startswith(": SWITCHYARD PROCESSING\n\n")  # the line is kept alive before the first data
    assert raw.rstrip().endswith("data: [DONE]")
    assert '"usage"' in raw


def test_an_upstream_failure_after_bytes_were_sent_ends_with_an_error_event(local_stack):
    raw = _raw_stream(local_stack, "fake/mid-error")
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    assert events[-1]["choices"][0]["finish_reason"] == "error" and events[-1]["error"]["code"] == 502
    assert raw.rstrip().endswith("data: [DONE]")
    assert generation(local_stack, events[0]["id"])["status"] == "failed"


def test_a_client_that_disconnects_mid_stream_is_still_metered(local_stack):
    body = json.dumps({"model": "fake/long-stream", "messages": HI, "stream": True}).encode()
    head = (f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {local_stack.key('dev-key')}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", local_stack.port)) as s:
        s.sendall(head + body)
        seen = b""
        while seen.count(b"data: {") < 10:
            seen += s.recv(65536)
    gen_id = json.loads(seen.split(b"data: ", 1)[1].split(b"\n", 1)[0])["id"]
    stats = generation(local_stack, gen_id, want="cancelled")
    assert stats["cancelled"] is True and stats["tokens_completion"] > 0 and stats["usage_estimated"] is True
    assert stats["total_cost"] > 0


def test_keys_and_usage_survive_a_restart(tmp_path):
    stack = LocalProcess(tmp_path, {}).start()
    try:
        answer = sdk(stack).chat.completions.create(model="sim/fast", messages=HI)
        generation(stack, answer.id)
        dev_key = stack.key("dev-key")
    finally:
        stack.stop()
    assert "new inference key" in stack.output
    again = LocalProcess(tmp_path, {}).start()
    try:
        assert again.key("dev-key") == dev_key
        assert generation(again, answer.id)["tokens_completion"] == answer.usage.completion_tokens
        status, own = get_json(again, "/api/v1/key", dev_key)
        assert status == 200 and own["data"]["usage"] > 0
    finally:
        again.stop()
    assert "new inference key" not in again.output


WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.mark.parametrize("prefix", ["anthropic-fake/claude-tool", "gemini-fake/gemini-tool", "bedrock-fake/bedrock-tool"])
def test_tool_call_round_trip_through_the_sdk_on_every_adapter(local_stack, prefix):
    client = sdk(local_stack)
    first = client.chat.completions.create(model=prefix, messages=HI, tools=WEATHER)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    done = client.chat.completions.create(model=prefix, tools=WEATHER, messages=[
        *HI, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert done.choices[0].message.content == "It is sunny."
    streamed = list(client.chat.completions.create(model=prefix, messages=HI, tools=WEATHER, stream=True))
    arguments = "".join(tc.function.arguments or "" for c in streamed if c.choices
                        for tc in c.choices[0].delta.tool_calls or [])
    assert json.loads(arguments) == {"city": "Paris"} and streamed[-1].usage.completion_tokens > 0


def test_anthropic_through_the_sdk_tool_round_trip_and_exact_streamed_cost(local_stack, fake_anthropic):
    client = sdk(local_stack)
    first = client.chat.completions.create(model="anthropic-fake/claude-tool", messages=HI, tools=WEATHER)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert fake_anthropic.requests[-1]["headers"]["x-api-key"] == "anthropic-secret-456"
    done = client.chat.completions.create(model="anthropic-fake/claude-tool", tools=WEATHER, messages=[
        *HI, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
    assert done.choices[0].message.content == "It is sunny."

    whole = client.chat.completions.create(model="anthropic-fake/claude-ok", messages=HI)
    chunks = list(client.chat.completions.create(model="anthropic-fake/claude-ok", messages=HI, stream=True))
    streamed = chunks[-1].usage
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (whole.usage.prompt_tokens,
                                                                     whole.usage.completion_tokens) == (29, 9)
    assert streamed.model_extra["cost"] == whole.usage.model_extra["cost"] == pytest.approx((29 * 3 + 9 * 15) / 1e6)
    assert generation(local_stack, chunks[0].id)["native_tokens_cached"] == 5


def test_a_policy_whose_first_model_always_fails_still_answers_and_generation_shows_both_attempts(local_stack):
    """The routing acceptance: switchyard/fallback-demo tries sim/down (a 503 every time), then sim/fast."""
    client = sdk(local_stack)
    for stream in (False, True):
        if stream:
            chunks = list(client.chat.completions.create(model="switchyard/fallback-demo", messages=HI, stream=True))
            gen_id, served = chunks[0].id, {c.model for c in chunks}
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = client.chat.completions.create(model="switchyard/fallback-demo", messages=HI)
            gen_id, served = answer.id, {answer.model}
            assert answer.choices[0].message.content
        assert served == {"sim/fast"}
        stats = generation(local_stack, gen_id)
        assert stats["model"] == "sim/fast" and stats["route"] == "switchyard/fallback-demo"
        tried = [(r["model"], r["status"], r["error_type"]) for r in stats["provider_responses"]]
        assert tried[0] == ("sim/down", 503, "provider_overloaded") and tried[-1] == ("sim/fast", 200, None)
        assert stats["total_cost"] > 0 and stats["status"] == "completed"


def test_request_level_models_fallback_through_the_sdk(local_stack):
    answer = sdk(local_stack).chat.completions.create(model="sim/down", messages=HI,
                                                      extra_body={"models": ["sim/chat"]})
    assert answer.model == "sim/chat" and answer.model_extra["provider"] == "sim"
