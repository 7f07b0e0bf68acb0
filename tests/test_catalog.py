"""The model catalog: generated from genai-prices, large enough, priced, and honest about availability."""

import yaml

from infra.build_catalog import OUT, entries
from shared.catalog import Pricing, load_catalog
from shared.metering import cost_of


def test_models_yaml_is_what_genai_prices_says_today():
    assert yaml.safe_load(OUT.read_text())["models"] == entries(), "re-run: python -m infra.build_catalog"


def test_at_least_120_models_from_at_least_10_labs_with_prices_and_context():
    catalog = load_catalog()
    real = [m for m in catalog if m.author != "sim"]
    assert len(real) >= 120 and len({m.author for m in real}) >= 10
    assert {"openai", "anthropic", "google", "mistralai", "deepseek", "qwen", "microsoft", "nvidia", "cohere",
            "x-ai"} <= {m.author for m in real}
    for m in real:
        listed = m.to_openrouter()
        assert listed["context_length"] > 0 and float(listed["pricing"]["prompt"]) >= 0
        assert listed["name"] and listed["providers"] == ["openrouter"]


def test_cached_prompt_tokens_cost_the_cache_read_price():
    pricing = Pricing(prompt=3.0, completion=15.0, cache_read=0.3)
    assert cost_of(pricing, 1000, 100, cached_tokens=400) == (600 * 3.0 + 400 * 0.3 + 100 * 15.0) / 1e6
    assert cost_of(Pricing(prompt=3.0, completion=15.0), 1000, 100, cached_tokens=400) == (1000 * 3 + 100 * 15) / 1e6
    assert cost_of(pricing, 0, 0) == 0


def test_availability_follows_the_provider_credentials(monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    model = next(m for m in load_catalog() if m.author == "anthropic")
    assert model.to_openrouter()["available"] is False
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    assert model.to_openrouter()["available"] is True


def test_a_catalog_model_without_credentials_is_503_through_the_gateway(client, keys, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    resp = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                       json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 503 and resp.json()["error"]["metadata"]["providers"] == ["openrouter"]
    listed = client.get("/api/v1/models").json()["data"]
    assert len(listed) >= 120


def test_models_filters(client):
    every = client.get("/api/v1/models").json()["data"]
    tools = client.get("/api/v1/models?supported_parameters=tools,response_format").json()["data"]
    assert 0 < len(tools) <= len(every) and all({"tools", "response_format"} <= set(m["supported_parameters"])
                                                for m in tools)
    assert client.get("/api/v1/models?supported_parameters=no_such_param").json()["data"] == []
    assert len(client.get("/api/v1/models?output_modalities=text").json()["data"]) == len(every)
    assert client.get("/api/v1/models?output_modalities=audio").json()["data"] == []


def test_endpoints_report_uptime_and_latency_from_usage_records(client, keys, gateway, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    for _ in range(4):
        client.post("/api/v1/chat/completions", headers=headers,
                    json={"model": "sim/flaky", "messages": [{"role": "user", "content": "hi"}]})
    gateway.meter.flush()
    data = client.get("/api/v1/models/sim/flaky/endpoints").json()["data"]
    (endpoint,) = data["endpoints"]
    assert data["id"] == "sim/flaky" and endpoint["provider_id"] == "sim" and endpoint["requests_last_30m"] == 4
    records = list(gateway.meter.writer.usage.scan())
    failed = sum(1 for r in records if r["status"] == "failed")
    assert endpoint["uptime_last_30m"] == round(1 - failed / 4, 4)
    if failed < 4:
        assert set(endpoint["latency_last_30m"]) == {"p50", "p75", "p90", "p99"}
    assert endpoint["pricing"]["prompt"] == "0.0000005" and endpoint["status"] == 0
    quiet = client.get("/api/v1/models/sim/chat/endpoints").json()["data"]["endpoints"][0]
    assert quiet["requests_last_30m"] == 0 and quiet["uptime_last_30m"] is None
    assert client.get("/api/v1/models/nobody/nothing/endpoints").status_code == 404
    catalog_model = client.get("/api/v1/models/openai/gpt-4o-mini/endpoints").json()["data"]["endpoints"][0]
    assert catalog_model["provider_id"] == "openrouter" and catalog_model["kind"] == "openai"
