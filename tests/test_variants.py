"""Model variants on any id: :free, :floor (cheapest first) and :nitro (fastest measured first)."""

import pytest

from shared.catalog import load_catalog
from shared.chat.service import ChatService
from shared.config import get_settings
from shared.errors import ModelNotFoundError, NoProviderError
from tests.test_sim import req

CONFIG = """
providers:
  - {id: sim-pricey, kind: sim}
  - {id: sim-free, kind: sim}
models:
  - {id: acme/m, provider: sim-pricey, upstream_model: m, pricing: {prompt: 2, completion: 8}, sim: {}}
  - {id: acme/m, provider: sim-free, upstream_model: m, pricing: {prompt: 0, completion: 0}, sim: {}}
  - {id: acme/paid, provider: sim-pricey, upstream_model: p, pricing: {prompt: 1, completion: 1}, sim: {}}
"""


@pytest.fixture
def service(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return ChatService(load_catalog(path), meter=None, settings=get_settings())  # type: ignore[arg-type]


def provider_for(service, model):
    return service.route(req(model=model)).endpoint.provider.id


def test_plain_floor_and_free(service):
    assert provider_for(service, "acme/m") == "sim-free"  # default: inverse-square price weighting
    assert provider_for(service, "acme/m:floor") == "sim-free"
    assert provider_for(service, "acme/m:free") == "sim-free"
    with pytest.raises(NoProviderError) as e:
        provider_for(service, "acme/paid:free")
    assert e.value.metadata["variant"] == "free"
    with pytest.raises(ModelNotFoundError):
        provider_for(service, "acme/m:turbo")


def test_nitro_follows_measured_throughput(service):
    service.routing.throughput[("sim-free", "acme/m")] = 40.0
    service.routing.throughput[("sim-pricey", "acme/m")] = 400.0
    assert provider_for(service, "acme/m:nitro") == "sim-pricey"
    service.routing.throughput[("sim-free", "acme/m")] = 900.0
    assert provider_for(service, "acme/m:nitro") == "sim-free"  # not cached: it follows the measurements


def test_variants_through_the_gateway_record_throughput(client, keys, gateway):
    resp = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                       json={"model": "sim/chat:floor", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200 and resp.json()["model"] == "sim/chat"
    # sim/chat: 250 ms to the first token, then 80 tokens/s; unstreamed, the whole call counts
    assert 0 < gateway.chat.routing.throughput[("sim", "sim/chat")] < 80
    streamed = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                           json={"model": "sim/chat", "stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert streamed.status_code == 200
    assert 0 < gateway.chat.routing.throughput[("sim", "sim/chat")] < 120


def test_a_variant_on_a_routing_policy_applies_to_the_models_it_routes_to(client, keys, gateway):
    auth = {"Authorization": f"Bearer {keys['dev']}"}
    resp = client.post("/api/v1/chat/completions", headers=auth,
                       json={"model": "switchyard/fallback-demo:floor", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200 and resp.json()["model"] == "sim/fast"
    gateway.meter.flush()
    record = gateway.usage.get(resp.json()["id"])
    assert record["route"] == "switchyard/fallback-demo"
    assert [a["model"] for a in record["attempts"]] == ["sim/down", "sim/fast"]
    free = client.post("/api/v1/chat/completions", headers=auth,
                       json={"model": "switchyard/fallback-demo:free", "messages": [{"role": "user", "content": "hi"}]})
    assert free.status_code == 503 and free.json()["error"]["metadata"]["variant"] == "free"  # no free endpoint
    online = client.post("/api/v1/chat/completions", headers=auth,
                         json={"model": "switchyard/auto:online", "messages": [{"role": "user", "content": "hi"}]})
    assert online.status_code == 400 and online.json()["error"]["metadata"]["variant"] == "online"
