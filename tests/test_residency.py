"""Data residency: the region convention, endpoints' regions, and routing that only considers endpoints in the
key's and the organisation's regions — a clear 403 when a model has none there, and fallbacks that never leave."""

import orjson
import pytest

from shared.catalog import Endpoint
from shared.catalog.schema import ModelConfig, ProviderConfig
from shared.chat.context import CallContext
from shared.chat.schema import parse_chat_request
from shared.chat.service import ChatService
from shared.config import Settings
from shared.errors import ForbiddenError, SwitchyardError
from shared.governance import regions
from shared.governance.source import GovernanceSource
from shared.governance.store import OrgSettings
from tests.stores import MemoryGovernanceStore
from tests.support import Recorder, catalog_from, run

CHAT = "/api/v1/chat/completions"


# -- the convention --

@pytest.mark.parametrize("wanted,served,met", [
    ("us-east-1", "us-east-1", True), ("us-east-1", "us-west-2", False), ("us", "us-east-1", True),
    ("us", "us-gov-west-1", True), ("us", "eu-west-1", False), ("us-east-1", "us", False), ("us", "us", True),
    ("eu", "eu-central-1", True), ("eu", "europe-1", False), ("global", "ap-south-1", True),
    ("global", "global", True), ("us", "global", False), ("ap", "apac-1", False),
])
def test_a_region_is_met_by_itself_an_area_by_its_regions_and_nothing_by_a_vaguer_one(wanted, served, met):
    assert regions.within(wanted, served) is met


def test_an_endpoint_without_regions_meets_no_constraint():
    assert not regions.meets(("global",), ())
    assert regions.meets(("eu", "us-east-1"), ("us-east-1",))


def test_region_names_are_validated_in_one_convention():
    for good in ("us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "us", "eu", "global"):
        assert regions.region(good) == good
    for bad in ("mars", "US-EAST-1", "us-east", "useast1", "", "eu-west-1 ", "europe"):
        with pytest.raises(ValueError):
            regions.region(bad)


def test_endpoints_carry_their_provider_s_regions_unless_they_name_their_own():
    sim = ProviderConfig(id="s", kind="sim", regions=("us-east-1",))
    assert Endpoint(sim, ModelConfig(id="a/b", provider="s")).regions == ("us-east-1",)
    assert Endpoint(sim, ModelConfig(id="a/b", provider="s", regions=("eu-west-1",))).regions == ("eu-west-1",)
    assert Endpoint(ProviderConfig(id="n", kind="sim"), ModelConfig(id="a/b", provider="n")).regions == ()
    bedrock = ProviderConfig(id="b", kind="bedrock", region="eu-central-1")
    assert Endpoint(bedrock, ModelConfig(id="a/b", provider="b", upstream_model="anthropic.claude-x")).regions \
        == ("eu-central-1",)
    # a cross-region inference profile may run anywhere in its area: it is no longer in eu-central-1 alone
    assert Endpoint(bedrock, ModelConfig(id="a/b", provider="b", upstream_model="eu.anthropic.claude-x")).regions \
        == ("eu",)
    with pytest.raises(ValueError):
        ProviderConfig(id="x", kind="sim", regions=("moon-base-1a",))


def test_the_built_in_simulators_serve_from_a_region_each(gateway):
    catalog = gateway.catalogs.latest()
    assert catalog.get("sim/fast").endpoints[0].regions == ("us-east-1",)
    assert {e.provider.id: e.regions for e in catalog.get("sim/regional").endpoints} == \
        {"sim": ("us-east-1",), "sim-eu": ("eu-west-1",)}


# -- routing (in process) --

CATALOG = """
providers:
  - {id: sim-us, kind: sim, regions: [us-east-1]}
  - {id: sim-eu, kind: sim, regions: [eu-west-1]}
  - {id: sim-nowhere, kind: sim}
models:
  - {id: acme/two, provider: sim-us, sim: {error_rate: 1.0, error_status: 503}, pricing: {prompt: 0.1}}
  - {id: acme/two, provider: sim-eu, sim: {}, pricing: {prompt: 5}}
  - {id: acme/eu-only, provider: sim-eu, sim: {}}
  - {id: acme/anywhere, provider: sim-nowhere, sim: {}}
  - {id: acme/us, provider: sim-us, sim: {}}
routes:
  - {id: acme/policy, default: {model: acme/eu-only, fallbacks: [acme/us]}}
"""


@pytest.fixture
def service(tmp_path):
    def build(org: tuple[str, ...] | None = None):
        store = MemoryGovernanceStore()
        store.settings = OrgSettings(residency=org)
        return ChatService(catalog_from(CATALOG, tmp_path), Recorder(), Settings(max_retries=0),
                           governance=GovernanceSource(store))
    return build


def call(service, model, residency=None, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    ctx = CallContext(key_id="k", residency=residency)
    return run(service.complete(parse_chat_request(orjson.dumps(body)), ctx))


def test_without_residency_a_failing_endpoint_falls_back_to_another_region(service):
    s = service()
    assert call(s, "acme/two")["provider"] == "sim-eu"  # the cheaper US endpoint fails: the EU one answers


def test_a_fallback_never_leaves_the_key_s_region(service):
    s = service()
    with pytest.raises(SwitchyardError) as e:
        call(s, "acme/two", residency=("us-east-1",))
    assert e.value.status in (502, 503)  # the US endpoint's failure, not an answer from Europe
    attempts = s.meter.events[-1].attempts or [{"provider": s.meter.events[-1].provider}]
    assert {a["provider"] for a in attempts} == {"sim-us"}
    with pytest.raises(SwitchyardError) as e:  # nor does a fallback model in the request's `models`
        call(s, "acme/two", residency=("us",), models=["acme/eu-only"])
    assert e.value.status in (502, 503)
    assert all(a["provider"] == "sim-us" for a in s.meter.events[-1].attempts or [])


def test_a_model_with_no_endpoint_in_the_region_is_a_clear_403(service):
    s = service()
    with pytest.raises(ForbiddenError) as e:
        call(s, "acme/eu-only", residency=("us-east-1",))
    meta = e.value.metadata
    assert meta["reason"] == "residency" and meta["model"] == "acme/eu-only" and meta["regions"] == ["us-east-1"]
    assert meta["endpoints"] == [{"provider": "sim-eu", "regions": ["eu-west-1"]}]
    assert "us-east-1" in e.value.message and "acme/eu-only" in e.value.message
    with pytest.raises(ForbiddenError) as e:  # undeclared: never a match, even for "global"
        call(s, "acme/anywhere", residency=("global",))
    assert e.value.metadata["endpoints"] == [{"provider": "sim-nowhere", "regions": []}]


def test_residency_keeps_only_the_endpoints_there(service):
    s = service()
    assert call(s, "acme/two", residency=("eu",))["provider"] == "sim-eu"
    assert call(s, "acme/eu-only", residency=("us-east-1", "eu-west-1"))["provider"] == "sim-eu"


def test_a_policy_s_targets_are_held_to_the_region_too(service):
    s = service()
    assert call(s, "acme/policy", residency=("us",))["model"] == "acme/us"  # its EU head skipped
    with pytest.raises(ForbiddenError) as e:
        call(s, "acme/policy", residency=("ap",))
    assert e.value.metadata["reason"] == "residency" and e.value.metadata["model"] == "acme/eu-only"


def test_the_organisation_s_residency_holds_every_key_and_adds_to_a_key_s(service):
    s = service(org=("eu",))
    assert call(s, "acme/two")["provider"] == "sim-eu"
    with pytest.raises(ForbiddenError) as e:
        call(s, "acme/us")
    assert e.value.metadata["residency"] == {"organisation": ["eu"]}
    with pytest.raises(ForbiddenError) as e:  # both must be met: the key's US and the organisation's EU
        call(s, "acme/two", residency=("us",))
    assert e.value.metadata["residency"] == {"key": ["us"], "organisation": ["eu"]}


# -- through the API, with the built-in simulators --

@pytest.fixture
def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def chat(model="sim/fast"):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def key_with(client, admin, **settings):
    response = client.post("/api/v1/keys", headers=admin, json={"name": "resident", **settings})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def test_a_key_forced_to_us_east_is_served_there_or_refused(client, admin):
    us = key_with(client, admin, residency=["us-east-1"])
    for _ in range(10):
        served = client.post(CHAT, headers=us, json=chat("sim/regional"))
        assert served.status_code == 200 and served.json()["provider"] == "sim"
    eu = key_with(client, admin, residency=["eu"])
    for _ in range(10):
        assert client.post(CHAT, headers=eu, json=chat("sim/regional")).json()["provider"] == "sim-eu"
    refused = client.post(CHAT, headers=eu, json=chat("sim/fast"))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["metadata"]["reason"] == "residency" and error["metadata"]["regions"] == ["eu"]
    assert error["metadata"]["model"] == "sim/fast" and error["metadata"]["generation_id"]


def test_the_organisation_setting_applies_to_every_key(client, admin, keys):
    dev = {"Authorization": f"Bearer {keys['dev']}"}
    put = client.put("/api/v1/governance", headers=admin, json={"residency": ["eu-west-1"]})
    assert put.status_code == 200 and put.json()["data"]["residency"] == ["eu-west-1"]
    assert client.post(CHAT, headers=dev, json=chat("sim/regional")).json()["provider"] == "sim-eu"
    refused = client.post(CHAT, headers=dev, json=chat("sim/fast"))
    assert refused.status_code == 403 and refused.json()["error"]["metadata"]["reason"] == "residency"
    lifted = client.put("/api/v1/governance", headers=admin, json={"residency": None})
    assert lifted.json()["data"]["residency"] is None
    assert client.post(CHAT, headers=dev, json=chat("sim/fast")).status_code == 200
