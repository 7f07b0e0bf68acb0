"""Middle-out (`transforms: ["middle-out"]`): a prompt past the model's context is cut from the middle until it fits,
the answer says so, and without the transform the same prompt still fails as too long."""

from __future__ import annotations

import pytest

from shared.catalog import load_catalog
from shared.chat import middle_out
from shared.chat.context import CallContext
from shared.chat.schema import parse_chat_request
from shared.providers.sim import prompt_tokens

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def words(n: int, start: int = 0) -> str:
    return " ".join(f"{WORDS[i % 8]}{i}" for i in range(start, start + n))


def request(messages, **extra):
    import orjson
    return parse_chat_request(orjson.dumps({"model": "sim/chat", "messages": messages,
                                            "transforms": ["middle-out"], **extra}))


@pytest.fixture(scope="module")
def chat_endpoint():
    return load_catalog().get("sim/chat").endpoints[0]  # a 131,072-token (128k) context


def test_one_huge_message_keeps_its_start_and_end(chat_endpoint):
    ctx = CallContext(key_id="k")
    sent = middle_out.fitted(request([{"role": "user", "content": words(200_000)}]), chat_endpoint, ctx)
    text = sent.messages[0].text()
    assert prompt_tokens(sent.messages) <= 131_072
    assert text.startswith("alpha0 bravo1") and text.endswith(words(3, 199_997))
    assert "removed by middle-out" in text
    report = ctx.transforms[0]
    assert report["id"] == "middle-out" and report["compressed"] is True and report["messages_truncated"] == 1
    assert report["prompt_tokens_before"] > 200_000 >= 131_072 >= report["prompt_tokens_after"] > 120_000
    assert sent._raw["messages"][0]["content"] == text  # what an OpenAI-compatible upstream is sent


def test_middle_messages_go_first_and_tool_results_go_with_their_calls(chat_endpoint):
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "first " + words(20_000)}]
    for i in range(10):
        messages += [{"role": "assistant", "content": None, "tool_calls": [{**call, "id": f"c{i}"}]},
                     {"role": "tool", "tool_call_id": f"c{i}", "content": words(20_000, i)},
                     {"role": "user", "content": f"turn {i}"}]
    messages.append({"role": "user", "content": "the question"})
    ctx = CallContext(key_id="k")
    sent = middle_out.fitted(request(messages, max_tokens=1000), chat_endpoint, ctx)
    assert prompt_tokens(sent.messages) <= 131_072 - 1000
    roles = [m.role for m in sent.messages]
    assert roles[:2] == ["system", "user"] and sent.messages[-1].text() == "the question"
    ids = [m.tool_call_id for m in sent.messages if m.role == "tool"]
    calls = [c.id for m in sent.messages for c in m.tool_calls or ()]
    assert ids == calls and ctx.transforms[0]["messages_removed"] > 0
    assert ctx.transforms[0]["messages_truncated"] == 0


def test_a_prompt_that_fits_is_left_alone(chat_endpoint):
    ctx = CallContext(key_id="k")
    asked = request([{"role": "user", "content": "hi"}])
    assert middle_out.fitted(asked, chat_endpoint, ctx) is asked and ctx.transforms is None


def test_unknown_transforms_are_refused(client, keys):
    r = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                    json={"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}],
                          "transforms": ["squeeze"]})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "transforms[0]"


def test_a_200k_token_prompt_to_a_128k_model_is_answered_and_says_it_was_compressed(client, keys):
    auth = {"Authorization": f"Bearer {keys['dev']}"}
    body = {"model": "sim/chat", "messages": [{"role": "user", "content": words(200_000)}], "max_tokens": 8}
    refused = client.post("/api/v1/chat/completions", headers=auth, json=body)
    assert refused.status_code == 400 and refused.json()["error"]["metadata"]["error_type"] == \
        "context_length_exceeded"
    answered = client.post("/api/v1/chat/completions", headers=auth, json={**body, "transforms": ["middle-out"]})
    assert answered.status_code == 200, answered.text
    data = answered.json()
    assert data["choices"][0]["message"]["content"] and answered.headers["x-switchyard-transforms"] == "middle-out"
    assert data["transforms"][0]["compressed"] is True and data["usage"]["prompt_tokens"] <= 131_072 - 8
    plugin = client.post("/api/v1/chat/completions", headers=auth,
                         json={**body, "plugins": [{"id": "context-compression"}], "stream": True})
    assert plugin.status_code == 200 and plugin.headers["x-switchyard-transforms"] == "middle-out"
    assert "data: [DONE]" in plugin.text
