"""What the catalog API (management key) may not do: send the gateway's secrets or requests where they must not go.

SWITCHYARD_CONFIG stays unrestricted (the operator's own file); header names and values are checked for every
source. Also: DELETE answers 404 for what is not there and 409 for what the files define, the routes API sees
the catalog table on a fresh process, and pools are keyed by (scheme, host, port).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from shared.catalog.schema import ModelConfig, ProviderConfig
from shared.config import get_settings


def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def settings_env(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def put_provider(client, keys, **fields):
    body = {"id": "team", "kind": "openai", "base_url": "https://llm.example.com/v1", **fields}
    return client.put("/api/v1/catalog/providers", headers=admin(keys), json=body)


def refused(resp, field):
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["metadata"]["field"] == field, error
    assert field.split(".")[0] in error["message"]
    return error["message"]


# -- key env vars and secrets -------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ["SWITCHYARD_PEPPER", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HOME",
                                 "FAKE_VENDOR_KEY", "switchyard_pepper"])
def test_the_api_refuses_key_env_vars_outside_the_allowlist(client, keys, gateway, env):
    refused(put_provider(client, keys, api_key_env=env), "api_key_env")
    assert gateway.catalogs.store.load()[0].providers == []


def test_the_built_in_vendors_key_envs_are_allowed_by_default(client, keys):
    resp = put_provider(client, keys, api_key_env="OPENAI_API_KEY")
    assert resp.status_code == 200 and resp.json()["data"]["added_by_api"] is True


def test_the_operator_allowlist_takes_names_and_prefixes_but_never_our_own_secrets(client, keys, monkeypatch):
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_KEY_ENVS="FAKE_*, TEAM_KEY, *")
    for env in ("FAKE_VENDOR_KEY", "TEAM_KEY", "ANYTHING"):
        assert put_provider(client, keys, api_key_env=env).status_code == 200
    for env in ("SWITCHYARD_PEPPER", "AWS_SECRET_ACCESS_KEY"):
        refused(put_provider(client, keys, api_key_env=env), "api_key_env")
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_KEY_ENVS="")  # none at all
    refused(put_provider(client, keys, api_key_env="OPENAI_API_KEY"), "api_key_env")


@pytest.mark.parametrize("secret, ok", [
    ("switchyard/vendors/openai", True),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:switchyard/vendors/openai-AbCdEf", True),
    ("switchyard/pepper", False),
    ("arn:aws:secretsmanager:us-east-1:123456789012:secret:switchyard-pepper-AbCdEf", False),
    ("switchyard/vendors/../pepper", False),
    ("other/vendors/openai", False),
])
def test_the_api_takes_secrets_only_under_the_vendor_prefix(client, keys, secret, ok):
    resp = put_provider(client, keys, api_key_secret=secret)
    if ok:
        assert resp.status_code == 200, resp.text
    else:
        assert "switchyard/vendors/" in refused(resp, "api_key_secret")


def test_the_gateways_pepper_never_reaches_a_provider_added_through_the_api(client, keys, fake_upstream):
    """The attack itself: a provider pointing at the caller's server, keyed with the pepper's env var."""
    before = len(fake_upstream.requests)
    resp = put_provider(client, keys, base_url=fake_upstream.base_url, api_key_env="SWITCHYARD_PEPPER")
    assert resp.status_code == 400
    assert all("test-pepper-not-secret" not in str(r["headers"]) for r in fake_upstream.requests[before:])


def test_a_replaced_provider_never_sends_the_key_of_the_one_it_replaced(client, keys, fake_upstream, monkeypatch):
    """The openai adapter caches each provider's built headers (the vendor key included) for minutes: a provider
    replaced through the API under the same id, at another address and with no key, must not get the old ones."""
    from tests.fakes.openai_upstream import FakeUpstream

    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_ALLOW_PRIVATE="true", OPENAI_API_KEY="sk-the-gateways-own-key")
    chat = {"model": "acme/cached", "messages": [{"role": "user", "content": "hi"}]}
    inference = {"Authorization": f"Bearer {keys['dev']}"}
    assert put_provider(client, keys, id="openai", base_url=fake_upstream.base_url,
                        api_key_env="OPENAI_API_KEY").status_code == 200
    assert client.put("/api/v1/catalog/models", headers=admin(keys), json={
        "id": "acme/cached", "provider": "openai", "upstream_model": "ok"}).status_code == 200
    assert client.post("/api/v1/chat/completions", headers=inference, json=chat).status_code == 200
    assert fake_upstream.requests[-1]["headers"]["Authorization"] == "Bearer sk-the-gateways-own-key"

    with FakeUpstream() as elsewhere:
        assert put_provider(client, keys, id="openai", base_url=elsewhere.base_url).status_code == 200
        assert client.post("/api/v1/chat/completions", headers=inference, json=chat).status_code == 200
        (sent,) = elsewhere.requests
        assert "sk-the-gateways-own-key" not in str(sent["headers"]) and "Authorization" not in sent["headers"]


# -- headers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers, field", [
    ({"X-Team": "a\r\nX-Injected: 1"}, "headers.X-Team"),
    ({"X-Team": "a\nb"}, "headers.X-Team"),
    ({"X-Team": "a\x00b"}, "headers.X-Team"),
    ({"X Team": "a"}, "headers.X Team.[key]"),
    ({"X-Team:": "a"}, "headers.X-Team:.[key]"),
    ({"Content-Length": "0"}, "headers.Content-Length.[key]"),
    ({"Transfer-Encoding": "chunked"}, "headers.Transfer-Encoding.[key]"),
])
def test_header_names_must_be_tokens_and_values_single_lines(client, keys, headers, field):
    refused(put_provider(client, keys, headers=headers), field)


@pytest.mark.parametrize("headers", [{"X-Team": "a\r\nX-Injected: 1"}, {"Bad Name": "v"}])
def test_the_catalog_file_gets_the_same_header_checks(tmp_path, headers):
    import yaml

    from shared.catalog import CatalogError, load_catalog

    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"providers": [{"id": "team", "kind": "openai",
                                                   "base_url": "https://llm.example.com/v1", "headers": headers}]}))
    with pytest.raises(CatalogError):
        load_catalog(path)


def test_a_file_may_use_any_key_env_and_any_address(tmp_path):
    from shared.catalog import load_catalog

    path = tmp_path / "catalog.yaml"
    path.write_text("providers: [{id: local, kind: openai, base_url: 'http://169.254.1.1:8000/v1', "
                    "api_key_env: SWITCHYARD_ANYTHING, headers: {X-Team: ok}}]\n")
    assert load_catalog(path).providers["local"].added_by_api is False


def test_urls_with_whitespace_or_control_characters_are_refused_everywhere(client, keys):
    refused(put_provider(client, keys, base_url="http://llm.example.com/v1 HTTP/1.1"), "base_url")
    with pytest.raises(ValueError):
        ProviderConfig(id="x", kind="openai", base_url="http://llm.example.com/\tv1")


# -- addresses ------------------------------------------------------------------------------------------------
ALWAYS_REFUSED = ["http://169.254.169.254/latest", "http://[fd00:ec2::254]/latest", "http://0xa9fea9fe/",
                  "http://2852039166/", "http://0251.0376.0251.0376/", "http://169.254.43518/",
                  "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/", "http://169.254.170.2/v2",
                  "http://[fe80::1]/v1", "http://169.254.10.10/v1", "http://0.0.0.0:8000/v1", "http://[::]/v1",
                  "http://169.254.169.254./latest"]
PRIVATE = ["http://127.0.0.1:8000/v1", "http://127.1:8000/v1", "http://0x7f000001/v1", "http://localhost:8000/v1",
           "http://api.localhost/v1", "http://[::1]:8000/v1", "http://10.0.0.5:8000/v1", "http://192.168.1.2/v1",
           "http://172.16.0.1/v1", "http://100.64.0.1/v1", "http://[fd12:3456::1]/v1"]


@pytest.mark.parametrize("url", ALWAYS_REFUSED + PRIVATE)
def test_metadata_link_local_loopback_and_private_addresses_are_refused(client, keys, url):
    refused(put_provider(client, keys, base_url=url), "base_url")


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_metadata_and_link_local_stay_refused_when_private_addresses_are_allowed(client, keys, monkeypatch, url):
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_ALLOW_PRIVATE="true")
    refused(put_provider(client, keys, base_url=url), "base_url")


@pytest.mark.parametrize("url", PRIVATE)
def test_the_operator_can_allow_private_addresses(client, keys, monkeypatch, url):
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_ALLOW_PRIVATE="true")
    assert put_provider(client, keys, base_url=url).status_code == 200


def test_a_host_name_that_resolves_to_a_refused_address_is_refused(client, keys, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "metadata.attacker.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert "169.254.169.254" in refused(put_provider(client, keys, base_url="http://metadata.attacker.example/"),
                                        "base_url")


def test_bedrock_endpoints_cannot_be_set_through_the_api(client, keys):
    refused(client.put("/api/v1/catalog/providers", headers=admin(keys), json={
        "id": "br", "kind": "bedrock", "region": "us-east-1", "base_url": "https://collector.example.com"}),
        "base_url")
    assert client.put("/api/v1/catalog/providers", headers=admin(keys), json={
        "id": "br", "kind": "bedrock", "region": "us-east-1"}).status_code == 200
    refused(client.put("/api/v1/catalog/providers", headers=admin(keys), json={
        "id": "br", "kind": "bedrock", "region": "x.example.com/"}), "region")


def test_the_body_cannot_claim_to_come_from_a_file(client, keys):
    resp = put_provider(client, keys, base_url="http://127.0.0.1:9/v1", added_by_api=False)
    refused(resp, "base_url")


def test_a_stored_provider_the_settings_no_longer_allow_is_skipped(client, keys, gateway, monkeypatch):
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_ALLOW_PRIVATE="true")
    assert put_provider(client, keys, base_url="http://10.0.0.5:8000/v1").status_code == 200
    assert "team" in gateway.catalogs.refresh_now().providers
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_ALLOW_PRIVATE="false")
    assert "team" not in gateway.catalogs.refresh_now().providers


def test_dns_rebinding_is_refused_when_connecting(client, keys, fake_upstream, monkeypatch):
    """The name resolved to a public address when the provider was added; by the call it points at loopback.
    The HTTP client resolves once, checks, and connects to the address it checked."""
    port = fake_upstream.port
    answers = {"rebind.attacker.example": "93.184.216.34"}
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert put_provider(client, keys, id="rebind", base_url=f"http://rebind.attacker.example:{port}/v1",
                        headers={"X-Marker": "rebind-test"}).status_code == 200
    assert client.put("/api/v1/catalog/models", headers=admin(keys), json={
        "id": "acme/rebound", "provider": "rebind", "upstream_model": "ok"}).status_code == 200
    answers["rebind.attacker.example"] = "127.0.0.1"
    before = len(fake_upstream.requests)
    body = {"model": "acme/rebound", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"}, json=body)
    assert answer.status_code == 502 and "refusing to connect" in answer.json()["error"]["message"]
    assert not any(r["headers"].get("X-Marker") == "rebind-test" for r in fake_upstream.requests[before:])

    # Allowed private addresses: the same call connects to the very address it checked (our fake on 127.0.0.1).
    settings_env(monkeypatch, SWITCHYARD_CATALOG_API_ALLOW_PRIVATE="true")
    from functions.gateway.state import gateway

    gateway().catalogs.refresh_now()  # the guard takes the setting at load
    answer = client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"}, json=body)
    assert answer.status_code == 200, answer.text
    sent = [r for r in fake_upstream.requests[before:] if r["headers"].get("X-Marker") == "rebind-test"]
    assert len(sent) == 1 and sent[0]["headers"]["Host"] == f"rebind.attacker.example:{port}"


def test_the_http_client_refuses_a_guarded_origin_that_resolves_to_loopback(fake_upstream):
    from shared.providers import http

    url = f"http://localhost:{fake_upstream.port}/v1/chat/completions"
    T = {"headers": {"Content-Type": "application/json"}, "body": b'{"model": "ok", "messages": []}',
         "connect_timeout": 2.0, "first_byte_timeout": 2.0, "idle_timeout": 2.0}

    async def go(allow_private):
        http.guard_origins([url], allow_private=allow_private)
        client = http.HTTPClient()
        try:
            resp = await client.request("POST", url, **T)
            await resp.read()
            return resp.status
        finally:
            client.close()
            http.guard_origins([], allow_private=False)

    with pytest.raises(http.ConnectError, match="loopback"):
        asyncio.run(go(False))
    assert asyncio.run(go(True)) == 200


# -- delete ---------------------------------------------------------------------------------------------------
def test_deleting_what_is_not_there_is_404(client, keys):
    assert client.delete("/api/v1/routes/acme/nothing", headers=admin(keys)).status_code == 404
    assert client.delete("/api/v1/catalog/models/acme/nothing?provider=sim", headers=admin(keys)).status_code == 404
    assert client.delete("/api/v1/catalog/providers/nobody", headers=admin(keys)).status_code == 404


def test_what_the_files_define_cannot_be_deleted_through_the_api(client, keys):
    resp = client.delete("/api/v1/routes/switchyard/auto", headers=admin(keys))
    assert resp.status_code == 409 and "file" in resp.json()["error"]["message"]
    assert client.get("/api/v1/routes/switchyard/auto", headers=admin(keys)).status_code == 200
    resp = client.delete("/api/v1/catalog/models/sim/fast?provider=sim", headers=admin(keys))
    assert resp.status_code == 409 and "PATCH" in resp.json()["error"]["message"]
    resp = client.delete("/api/v1/catalog/providers/openai", headers=admin(keys))
    assert resp.status_code == 409


def test_a_provider_is_deleted_once_no_stored_model_uses_it(client, keys):
    assert client.put("/api/v1/catalog/providers", headers=admin(keys), json={"id": "team-sim", "kind": "sim"}
                      ).status_code == 200
    assert client.put("/api/v1/catalog/models", headers=admin(keys), json={
        "id": "acme/helper", "provider": "team-sim", "sim": {}}).status_code == 200
    resp = client.delete("/api/v1/catalog/providers/team-sim", headers=admin(keys))
    assert resp.status_code == 409 and resp.json()["error"]["metadata"]["models"] == ["acme/helper"]
    assert client.delete("/api/v1/catalog/models/acme/helper?provider=team-sim", headers=admin(keys)).json() == \
        {"deleted": True}
    assert client.delete("/api/v1/catalog/providers/team-sim", headers=admin(keys)).json() == {"deleted": True}
    assert client.delete("/api/v1/catalog/providers/team-sim", headers=admin(keys)).status_code == 404
    assert all(m["id"] != "acme/helper" for m in client.get("/api/v1/models").json()["data"])


def test_deleting_an_override_of_a_file_policy_brings_the_files_back(client, keys):
    listed = client.get("/api/v1/routes/switchyard/auto", headers=admin(keys)).json()["data"]
    mine = {"id": "switchyard/auto", "default": {"model": "sim/fast"}}
    assert client.put("/api/v1/routes", headers=admin(keys), json=mine).status_code == 200
    assert client.get("/api/v1/routes/switchyard/auto", headers=admin(keys)).json()["data"] != listed
    assert client.delete("/api/v1/routes/switchyard/auto", headers=admin(keys)).json() == {"deleted": True}
    assert client.get("/api/v1/routes/switchyard/auto", headers=admin(keys)).json()["data"] == listed


# -- a fresh process sees the table ---------------------------------------------------------------------------
def test_the_routes_api_sees_stored_models_on_a_fresh_process(client, keys, gateway):
    from shared.routing.policy import RoutePolicy

    gateway.catalogs.store.put_model(ModelConfig(id="acme/stored", provider="sim", sim={}))  # by another process
    gateway.catalogs.store.put_route(RoutePolicy.model_validate({"id": "acme/stored-route",
                                                                "default": {"model": "sim/fast"}}))
    listed = {r["id"] for r in client.get("/api/v1/routes", headers=admin(keys)).json()["data"]}
    assert "acme/stored-route" in listed
    resp = client.put("/api/v1/routes", headers=admin(keys), json={"id": "acme/r", "default": {"model": "acme/stored"}})
    assert resp.status_code == 200, resp.text


# -- pools ----------------------------------------------------------------------------------------------------
def test_every_path_on_one_origin_shares_its_connections():
    from shared.providers.http import HTTPClient, origin

    assert origin("https://generativelanguage.googleapis.com/v1beta/models/a:generateContent") == \
        origin("https://generativelanguage.googleapis.com/v1beta/models/b:streamGenerateContent?alt=sse")
    connections = 0

    async def go():
        nonlocal connections

        async def on_connect(reader, writer):
            nonlocal connections
            connections += 1
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.split(b" ")[1] in (b"/a/chat", b"/b/chat?x=1")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HTTPClient()
        for path in ("/a/chat", "/b/chat?x=1", "/a/chat", "/b/chat?x=1"):
            resp = await client.request("GET", f"http://127.0.0.1:{port}{path}", headers={}, connect_timeout=1,
                                        first_byte_timeout=1, idle_timeout=1)
            assert await resp.read() == b"ok"
        client.close()
        server.close()

    asyncio.run(go())
    assert connections == 1


# -- infra/load_catalog.py without a configured region -----------------------------------------------------------
def test_load_catalog_runs_with_no_region_configured(gateway, tmp_path, monkeypatch, capsys):
    from infra.load_catalog import main

    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert main(["--stack", "no-such-stack", "--hide", "sim/chat"]) == 1  # no NoRegionError traceback
    err = capsys.readouterr().err
    assert "using us-east-1" in err and "nothing written" in err
    assert main(["--table", gateway.settings.catalog_table, "--region", "us-east-1", "--hide", "sim/chat"]) == 0
    assert "1 hidden" in capsys.readouterr().out
