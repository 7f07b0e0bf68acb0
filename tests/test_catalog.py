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
