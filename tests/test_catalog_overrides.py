"""Operators add providers and models, and hide models, through the API: stored in DynamoDB, no deploy."""

import pytest


@pytest.fixture(autouse=True)
def _fakes_listen_on_loopback(monkeypatch):
    """The fake upstreams run on 127.0.0.1: providers added here through the API must be allowed to reach them."""
    from shared.config import get_settings

    monkeypatch.setenv("SWITCHYARD_CATALOG_API_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()


def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def test_add_a_provider_and_a_model_then_call_it(client, keys):
    resp = client.put("/api/v1/catalog/providers", headers=admin(keys), json={"id": "team-sim", "kind": "sim"})
    assert resp.status_code == 200
    resp = client.put("/api/v1/catalog/models", headers=admin(keys), json={
        "id": "acme/helper", "provider": "team-sim", "context_length": 4096,
        "pricing": {"prompt": 0.1, "completion": 0.2}, "sim": {}})
    assert resp.status_code == 200 and resp.json()["data"]["pricing"]["prompt"] == "0.0000001"
    assert any(m["id"] == "acme/helper" for m in client.get("/api/v1/models").json()["data"])
    answer = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                         json={"model": "acme/helper", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200 and answer.json()["provider"] == "team-sim"


def test_hide_and_show_a_model(client, keys):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    body = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}
    assert client.patch("/api/v1/catalog/models/sim/fast", headers=admin(keys), json={"hidden": True}).status_code == 200
    assert all(m["id"] != "sim/fast" for m in client.get("/api/v1/models").json()["data"])
    assert client.post("/api/v1/chat/completions", headers=headers, json=body).status_code == 404
    client.patch("/api/v1/catalog/models/sim/fast", headers=admin(keys), json={"hidden": False})
    assert client.post("/api/v1/chat/completions", headers=headers, json=body).status_code == 200


@pytest.mark.parametrize("path, method, body, status", [
    ("/api/v1/catalog/models", "put", {"id": "acme/x", "provider": "nobody"}, 400),
    ("/api/v1/catalog/models", "put", {"id": "no-slash", "provider": "sim"}, 400),
    ("/api/v1/catalog/providers", "put", {"id": "up", "kind": "openai"}, 400),  # openai needs a base_url
    ("/api/v1/catalog/models/nobody/nothing", "patch", {"hidden": True}, 404),
])
def test_bad_changes_are_refused(client, keys, path, method, body, status):
    resp = getattr(client, method)(path, headers=admin(keys), json=body)
    assert resp.status_code == status and resp.json()["error"]["code"] == status


def test_only_management_keys_change_the_catalog(client, keys):
    resp = client.put("/api/v1/catalog/providers", headers={"Authorization": f"Bearer {keys['dev']}"},
                      json={"id": "x", "kind": "sim"})
    assert resp.status_code == 403


def test_another_process_sees_the_change_after_its_refresh(client, keys, gateway):
    from shared.catalog.source import CatalogSource

    other = CatalogSource(gateway.settings.config, gateway.catalogs.store, ttl=0)
    other.maybe_refresh()
    assert "acme/late" not in {m.id for m in other.current}
    client.put("/api/v1/catalog/models", headers=admin(keys), json={"id": "acme/late", "provider": "sim", "sim": {}})
    other.refresh_now()
    assert "acme/late" in {m.id for m in other.current}


def test_one_bad_stored_override_cannot_keep_the_others_out(client, keys, gateway):
    from shared.catalog.schema import ModelConfig

    client.put("/api/v1/catalog/models", headers=admin(keys), json={"id": "acme/good", "provider": "sim", "sim": {}})
    gateway.catalogs.store.put_model(ModelConfig(id="acme/orphan", provider="gone"))  # written around the API
    catalog = gateway.catalogs.refresh_now()
    ids = {m.id for m in catalog}
    assert "acme/good" in ids and "acme/orphan" not in ids



@pytest.fixture(params=["dynamodb", "memory"])
def store(request):
    """The gateway's CatalogStore, and the in-memory one: both keep the same contract."""
    from tests.stores import MemoryCatalogStore

    return request.getfixturevalue("gateway").catalogs.store if request.param == "dynamodb" else MemoryCatalogStore()


def test_a_catalog_store_adds_replaces_hides_and_deletes(store):
    from shared.catalog.schema import ModelConfig, ProviderConfig
    from shared.catalog.source import CatalogSource
    from shared.routing.policy import RoutePolicy

    source = CatalogSource(None, store, ttl=0)
    store.put_provider(ProviderConfig(id="team-sim", kind="sim"))
    store.put_model(ModelConfig(id="acme/a", provider="team-sim", sim={}))
    store.put_model(ModelConfig(id="acme/a", provider="team-sim", context_length=4096, sim={}))  # replaces it
    store.put_route(RoutePolicy.model_validate({"id": "acme/r", "default": {"model": "acme/a"}}))
    store.set_hidden("sim/fast", True)
    catalog = source.refresh_now()
    assert [e.config.context_length for e in catalog.get("acme/a").endpoints] == [4096]
    assert "acme/r" in catalog.policies.by_id and "sim/fast" not in catalog
    store.set_hidden("sim/fast", False)
    assert store.delete_route("acme/r") and not store.delete_route("acme/r")
    assert store.delete_model("acme/a", "team-sim") and not store.delete_model("acme/a", "team-sim")
    assert store.delete_provider("team-sim") and not store.delete_provider("team-sim")
    catalog = source.refresh_now()
    assert "sim/fast" in catalog and "acme/a" not in catalog and "acme/r" not in catalog.policies.by_id
    overrides, hidden = store.load()
    assert (overrides.providers, overrides.models, overrides.routes, hidden) == ([], [], [], frozenset())

CATALOG_FILE = """
providers:
  - {id: team-sim, kind: sim}
models:
  - {id: acme/bulk, provider: team-sim, context_length: 4096, pricing: {prompt: 0.1, completion: 0.2}, sim: {}}
routes:
  - {id: acme/bulk-route, default: {model: sim/down, fallbacks: [acme/bulk]}}
"""


def test_load_catalog_writes_a_file_into_the_table_and_the_gateway_serves_it(client, keys, gateway, tmp_path, capsys):
    from infra.load_catalog import main

    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG_FILE)
    table = gateway.settings.catalog_table
    assert main([str(path), "--table", table, "--hide", "sim/chat"]) == 0
    assert "1 providers, 1 models, 1 routes, 1 hidden" in capsys.readouterr().out
    gateway.catalogs.refresh_now()  # what every process does on its own within 30 s
    answer = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                         json={"model": "acme/bulk-route", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200 and answer.json()["model"] == "acme/bulk"
    assert all(m["id"] != "sim/chat" for m in client.get("/api/v1/models").json()["data"])


@pytest.mark.parametrize("text, complaint", [
    ("models: [{id: acme/x, provider: nobody}]", "unknown providers"),
    ("routes: [{id: acme/r, default: {model: nobody/nothing}}]", "unknown models"),
    ("models: [{id: no-slash, provider: sim}]", "validation error"),
])
def test_load_catalog_refuses_a_bad_file_and_writes_nothing(gateway, tmp_path, capsys, text, complaint):
    from infra.load_catalog import main

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main([str(path), "--table", gateway.settings.catalog_table]) == 1
    assert complaint in capsys.readouterr().err
    assert list(gateway.catalogs.store.table.scan()) == []
