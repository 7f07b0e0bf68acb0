"""OpenRouter's parameters and shapes that were accepted and ignored: now served, or refused with a 400 naming them."""

from __future__ import annotations

from datetime import datetime

import pytest

CHAT = "/api/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def post(client, keys, **body):
    return client.post(CHAT, headers={"Authorization": f"Bearer {keys['dev']}"},
                       json={"model": "sim/fast", "messages": HI, **body})


@pytest.mark.parametrize("body, field", [
    ({"provider": {"quantizations": ["fp8"]}}, "provider.quantizations"),
    ({"provider": {"order": ["sim"], "zdr": True}}, "provider.zdr"),
    ({"usage": {"include": "yes"}}, "usage.include"),
    ({"usage": {"include": True, "detail": 1}}, "usage.detail"),
    ({"transforms": ["middle-out", "squash"]}, "transforms[1]"),
])
def test_unserved_fields_are_a_400_naming_them(client, keys, body, field):
    r = post(client, keys, **body)
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == field, r.text


def test_usage_include_is_accepted_and_usage_is_there(client, keys):
    r = post(client, keys, usage={"include": True})
    assert r.status_code == 200 and r.json()["usage"]["cost"] > 0


@pytest.mark.parametrize("model, variant", [("sim/fast:online", "online"), ("sim/fast:thinking", "thinking"),
                                            ("sim/chat:exacto", "exacto")])
def test_variants_we_cannot_honour_are_refused_clearly(client, keys, model, variant):
    r = post(client, keys, model=model)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["metadata"]["variant"] == variant and error["metadata"]["field"] == "model"
    assert post(client, keys, model="nobody/none:online").status_code == 404  # still an unknown model


def test_models_filters_input_modalities_and_refuses_unknown_ones(client):
    every = client.get("/api/v1/models").json()["data"]
    images = client.get("/api/v1/models?input_modalities=image").json()["data"]
    assert images and len(images) < len(every)
    assert all("image" in m["architecture"]["input_modalities"] for m in images)
    assert "sim/chat" in {m["id"] for m in images} and "sim/fast" not in {m["id"] for m in images}
    r = client.get("/api/v1/models?category=programming")
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "category"


def test_generation_has_openrouters_shape(client, keys):
    answer = post(client, keys).json()
    stats = client.get(f"/api/v1/generation?id={answer['id']}",
                       headers={"Authorization": f"Bearer {keys['dev']}"}).json()["data"]
    assert stats["created_at"].endswith("Z") and datetime.fromisoformat(stats["created_at"]).tzinfo is not None
    assert stats["upstream_inference_cost"] == stats["total_cost"] > 0
    assert stats["cache_discount"] == 0.0 and stats["num_media_prompt"] is None


def test_cache_discount_is_what_cached_tokens_saved_at_the_endpoints_prices(gateway):
    from functions.gateway.routes.generation import cache_discount

    record = {"cached_tokens": 1000, "model": "openai/gpt-4o", "provider": "openai"}
    assert cache_discount(record) == pytest.approx(1000 * (2.5 - 1.25) / 1e6)
    assert cache_discount({**record, "model": "gone/model"}) is None
    assert cache_discount({**record, "cached_tokens": 0}) == 0.0


def test_routing_policies_are_listed_in_models_like_openrouter_auto(client):
    listed = {m["id"]: m for m in client.get("/api/v1/models").json()["data"]}
    auto = listed["switchyard/auto"]
    assert auto["routing_policy"] is True and auto["pricing"]["prompt"] == "-1"
    assert set(auto["models"]) == {"sim/fast", "sim/chat", "sim/long-context"}
    assert auto["context_length"] == 1_000_000 and "Long prompts" in auto["description"]
    assert auto["architecture"]["input_modalities"] == ["text"] and "tools" in auto["supported_parameters"]
    assert client.get("/api/v1/models/count").json()["data"]["count"] == len(listed)
    tools = {m["id"] for m in client.get("/api/v1/models?supported_parameters=tools").json()["data"]}
    assert "switchyard/auto" in tools
