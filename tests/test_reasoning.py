"""`reasoning` ({effort, max_tokens, exclude}): a thinking budget for Anthropic, Gemini and the sim, its text
returned as OpenRouter returns it (`message.reasoning`, `delta.reasoning`) unless excluded, billed either way."""

from __future__ import annotations

import json

import anthropic
import pytest
import yaml

from shared.chat import reasoning
from shared.chat.schema import parse_chat_request

HI = [{"role": "user", "content": "Say hello"}]


def chat(**body):
    return parse_chat_request(json.dumps({"model": "sim/fast", "messages": HI, **body}).encode())


def test_budgets_follow_openrouters_shares_within_the_output_limit():
    assert reasoning.budget(chat(), 4096) is None
    assert reasoning.budget(chat(reasoning={"effort": "high"}), 10_000) == 8000
    assert reasoning.budget(chat(reasoning={"effort": "low"}), 10_000) == 2000
    assert reasoning.budget(chat(reasoning={"effort": "high"}), 100_000) == 32_000
    assert reasoning.budget(chat(reasoning={"enabled": True}), 4096) == 2048
    assert reasoning.budget(chat(reasoning={"max_tokens": 3000}), 2000) == 1999
    assert reasoning.budget(chat(reasoning={"effort": "high", "enabled": False}), 4096) is None
    assert reasoning.budget(chat(reasoning={"exclude": True}), 4096) is None  # (the model's own default)


@pytest.fixture
def app_client(aws, fake_anthropic, fake_gemini, tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from functions.gateway.app import app
    from functions.gateway.state import gateway
    from tests.conftest import reset_gateway

    parts = [yaml.safe_load(f.catalog_yaml()) for f in (fake_anthropic, fake_gemini)]
    config = tmp_path / "switchyard.yaml"
    config.write_text(yaml.safe_dump({k: [x for p in parts for x in p[k]] for k in ("providers", "models")}))
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "anthropic-secret-456")
    monkeypatch.setenv("FAKE_GEMINI_KEY", "gemini-secret-789")
    reset_gateway()
    token, _ = gateway().keys.create("dev")
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def post(client, **body):
    r = client.post("/api/v1/chat/completions", json={"messages": HI, **body})
    assert r.status_code == 200, r.text
    return r.json()


def streamed(client, **body) -> list[dict]:
    r = client.post("/api/v1/chat/completions", json={"messages": HI, "stream": True, **body})
    return [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]


def test_the_sim_thinks_when_asked_and_bills_it(app_client):
    plain = post(app_client, model="sim/fast")
    thought = post(app_client, model="sim/fast", reasoning={"effort": "low"})
    message = thought["choices"][0]["message"]
    assert "reasoning" not in plain["choices"][0]["message"]
    assert message["reasoning"].startswith("Let me think this through.") and message["content"]
    used = thought["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert used > 0 and thought["usage"]["completion_tokens"] > used
    hidden = post(app_client, model="sim/fast", reasoning={"effort": "low", "exclude": True})
    assert "reasoning" not in hidden["choices"][0]["message"]
    assert hidden["usage"]["completion_tokens_details"]["reasoning_tokens"] == used
    chunks = streamed(app_client, model="sim/fast", reasoning={"effort": "low"})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert "".join(d.get("reasoning", "") for d in deltas) == message["reasoning"]
    assert all("reasoning" not in d for d in deltas[first_content:])
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == used


def test_anthropic_gets_a_thinking_budget_and_its_thinking_comes_back(app_client, fake_anthropic):
    answer = post(app_client, model="anthropic-fake/claude-think", max_tokens=1024 * 4, temperature=0.3,
                  reasoning={"effort": "medium"})
    sent = fake_anthropic.requests[-1]["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048} and "temperature" not in sent
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from Claude.",
                                               "reasoning": "Weighing it."}
    chunks = streamed(app_client, model="anthropic-fake/claude-think", max_tokens=4096, reasoning={"max_tokens": 1500})
    assert fake_anthropic.requests[-1]["body"]["thinking"]["budget_tokens"] == 1500
    assert "".join(c["choices"][0]["delta"].get("reasoning", "") for c in chunks if c["choices"]) == "Weighing it."
    r = app_client.post("/api/v1/chat/completions", json={"model": "anthropic-fake/claude-think", "messages": HI,
                                                          "max_tokens": 512, "reasoning": {"effort": "high"}})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "reasoning"


def test_gemini_gets_a_thinking_config_and_its_thoughts_come_back(app_client, fake_gemini):
    answer = post(app_client, model="gemini-fake/gemini-think", max_tokens=10_000, reasoning={"effort": "high"})
    config = fake_gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"]
    assert config == {"includeThoughts": True, "thinkingBudget": 8000}
    assert answer["choices"][0]["message"]["reasoning"] == "Weighing it."
    post(app_client, model="gemini-fake/gemini-think", reasoning={"enabled": False})
    assert fake_gemini.requests[-1]["body"]["generationConfig"]["thinkingConfig"] == {"includeThoughts": False,
                                                                                      "thinkingBudget": 0}
    hidden = post(app_client, model="gemini-fake/gemini-think", reasoning={"exclude": True})
    assert "reasoning" not in hidden["choices"][0]["message"]


def test_a_bad_reasoning_object_is_a_400(app_client):
    r = app_client.post("/api/v1/chat/completions", json={"model": "sim/fast", "messages": HI,
                                                          "reasoning": {"effort": "extreme"}})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "reasoning.effort"


def test_anthropic_sdk_thinking_through_messages(app_client):
    token = app_client.headers["Authorization"].removeprefix("Bearer ")
    client = anthropic.Anthropic(base_url="http://testserver/api", api_key=token, http_client=app_client,
                                 max_retries=0)
    message = client.messages.create(model="sim/fast", max_tokens=2048, messages=HI,
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking.startswith("Let me think")
    with client.messages.stream(model="sim/fast", max_tokens=2048, messages=HI,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == message.content[0].thinking


# -- logprobs (here too: the same fakes) ---------------------------------------------------------------------------
def test_logprobs_from_the_sim_and_gemini_and_a_400_where_the_vendor_has_none(app_client, fake_gemini):
    sim = post(app_client, model="sim/fast", logprobs=True, top_logprobs=2)
    scored = sim["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in scored) == sim["choices"][0]["message"]["content"]
    assert all(t["logprob"] <= 0 and len(t["top_logprobs"]) == 2 for t in scored)
    assert post(app_client, model="sim/fast")["choices"][0]["logprobs"] is None
    chunks = streamed(app_client, model="sim/fast", logprobs=True)
    assert any(c["choices"] and c["choices"][0]["logprobs"] for c in chunks)
    gemini = post(app_client, model="gemini-fake/gemini-ok", logprobs=True, top_logprobs=2)
    config = fake_gemini.requests[-1]["body"]["generationConfig"]
    assert (config["responseLogprobs"], config["logprobs"]) == (True, 2)
    content = gemini["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == ["Hello", " from", " Gemini."]
    assert content[0]["top_logprobs"][1] == {"token": " Hi", "logprob": -2.5, "bytes": list(b" Hi")}
    r = app_client.post("/api/v1/chat/completions", json={"model": "anthropic-fake/claude-ok", "messages": HI,
                                                          "logprobs": True})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "logprobs"
    r = app_client.post("/api/v1/chat/completions", json={"model": "sim/fast", "messages": HI, "top_logprobs": 3})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "top_logprobs"
