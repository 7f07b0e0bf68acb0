"""The SDK and the CLI (sdk/switchyard_client) against the gateway under uvicorn on loopback, over moto."""

from __future__ import annotations

import asyncio
import json
from typing import Iterator

import pytest
from switchyard_client import APIError, Client
from switchyard_client.cli import main

from shared.config import get_settings
from tests.support import Served


@pytest.fixture
def served(gateway, monkeypatch) -> Iterator[Served]:
    from functions.gateway.app import create_app

    monkeypatch.setenv("SWITCHYARD_CATALOG_API_ALLOW_PRIVATE", "true")  # as `make run` sets it
    get_settings.cache_clear()
    with Served(create_app()) as served:
        yield served
        _close_upstream_connections()
    get_settings.cache_clear()


def _close_upstream_connections() -> None:
    """Close the upstream connections the served app pooled, on its own loop while it runs (uvicorn runs it
    with lifespan off, so nothing else does): a later app's shutdown must not find them on a closed loop."""
    from shared.providers import http

    if http._client is not None and http._loop is not None and http._loop.is_running():
        asyncio.run_coroutine_threadsafe(http.close(), http._loop).result(10)


@pytest.fixture
def sy(served, keys) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{served.port}", keys["admin"]) as client:
        yield client


def cli(served, key: str, *args: str, capsys) -> tuple[int, str, str]:
    code = main(["--base-url", f"http://127.0.0.1:{served.port}", "--key", key, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_round_trip(sy, served):
    created = sy.create_key("ci", limit=5, allowed_models=["sim/*"], rpm=60)
    key_hash, secret = created["data"]["hash"], created["key"]
    assert secret.startswith("sk-sy-v1-") and created["data"]["limit"] == 5
    assert key_hash in {k["hash"] for k in sy.list_keys()["data"]}
    assert sy.get_key(key_hash)["data"]["name"] == "ci"
    assert sy.update_key(key_hash, disabled=True, name="ci-2")["data"]["disabled"] is True
    assert sy.update_key(key_hash, disabled=False)["data"]["disabled"] is False
    assert sy.rotate_key(key_hash)["key"] != secret  # no body fields: the API's defaults
    rotated = sy.rotate_key(key_hash, grace_seconds=0)
    assert rotated["key"] != secret
    with Client(f"http://127.0.0.1:{served.port}", rotated["key"]) as own:
        assert own.current_key()["data"]["limit"] == 5
        with pytest.raises(APIError) as e:
            own.list_keys()  # an inference key cannot manage keys
        assert e.value.status in (401, 403)
    assert sy.delete_key(key_hash) == {"deleted": True}
    with pytest.raises(APIError) as e:
        sy.get_key(key_hash)
    assert e.value.status == 404 and e.value.message


def test_an_invalid_request_raises_with_the_field(sy):
    with pytest.raises(APIError) as e:
        sy.create_key("x", rpm=0)
    assert e.value.status == 400 and e.value.metadata.get("field") == "rpm", e.value.metadata


def test_a_management_key_with_scopes(sy):
    created = sy.create_key("ops", management=True, scopes=["keys:read"])
    assert created["key"].startswith("sk-sy-mgmt-v1-")
    assert sy.list_keys(management=True)["data"]


def test_a_local_provider_and_a_chat_through_it(sy, fake_upstream):
    sy.put_provider({"id": "local-fake", "kind": "openai", "base_url": fake_upstream.base_url})
    sy.put_model({"id": "local-fake/ok", "provider": "local-fake", "upstream_model": "ok", "context_length": 4096})
    assert any(p["slug"] == "local-fake" for p in sy.list_providers()["data"])
    assert sy.model_endpoints("local-fake/ok")["data"]["endpoints"]
    dev = sy.create_key("dev")["key"]
    with Client(sy.base_url, dev) as inference:
        answer = inference.chat("local-fake/ok", [{"role": "user", "content": "Say hello"}])
        assert answer["choices"][0]["message"]["content"]
        assert inference.get_generation(answer["id"])["data"]["provider_name"] == "local-fake"
    sy.set_model_hidden("local-fake/ok")
    assert "local-fake/ok" not in {m["id"] for m in sy.list_models()["data"]}
    assert sy.delete_model("local-fake/ok", provider="local-fake") == {"deleted": True}
    assert sy.delete_provider("local-fake") == {"deleted": True}


def test_routes_governance_audit_templates(sy):
    sy.put_route({"id": "team/fast", "default": {"model": "sim/fast", "fallbacks": ["sim/chat"]}})
    assert sy.get_route("team/fast")["data"]["id"] == "team/fast"
    assert "team/fast" in {r["id"] for r in sy.list_routes()["data"]}
    sy.delete_route("team/fast")
    assert sy.governance()["data"] is not None
    assert "data" in sy.list_approvals()
    actions = [entry["action"] for entry in sy.audit(limit=50)["data"]]
    assert "route.put" in actions or any(a.startswith("route") for a in actions), actions
    assert sy.verify_audit()["valid"] is True
    assert sy.export_audit().count(b"\n") >= len(actions)
    templates = sy.list_templates()["data"]
    assert templates and sy.get_template(templates[0]["name"])


def test_the_client_refuses_what_it_cannot_do(sy):
    with pytest.raises(ValueError, match="stream"):
        sy.chat("sim/fast", [], stream=True)
    with pytest.raises(ValueError, match="author/slug"):
        sy.get_route("no-slash")


def test_a_method_cannot_send_what_its_operation_does_not_declare():
    from switchyard_client._operations import call, operation

    class Sloppy(Client):
        @operation("GET", "/api/v1/keys", query={"offset"})
        def keys_with_a_typo(self):
            return call(query={"ofset": 1})

        @operation("GET", "/api/v1/keys/{key_hash}")
        def key_without_its_hash(self):
            return call()

    with Sloppy("http://127.0.0.1:9", "k") as sloppy:
        with pytest.raises(TypeError, match="ofset"):
            sloppy.keys_with_a_typo()
        with pytest.raises(TypeError, match="path parameters"):
            sloppy.key_without_its_hash()


def test_the_cli_stays_quiet_on_stderr_without_a_terminal(served, keys, capsys):
    code, out, err = cli(served, keys["admin"], "keys", "create", "quiet", "--count", "2", capsys=capsys)
    assert code == 0 and err == "" and len(out.splitlines()) == 2


def test_an_unreachable_gateway_is_one_error():
    from infra.local import free_port

    with Client(f"http://127.0.0.1:{free_port()}", "k") as sy, pytest.raises(APIError) as e:
        sy.credits()
    assert e.value.status == 0 and "cannot reach" in e.value.message


# -- the CLI in-process -------------------------------------------------------------------------------------
def test_cli_creates_keys_in_bulk_and_prints_each(served, keys, capsys):
    code, out, err = cli(served, keys["admin"], "--progress", "keys", "create", "bulk", "--count", "3", "--limit",
                         "1", capsys=capsys)
    assert code == 0, err
    assert "keys: 100%" in err and "3/3" in err  # the bar, on stderr
    created = [json.loads(line) for line in out.splitlines()]
    assert [c["data"]["name"] for c in created] == ["bulk-1", "bulk-2", "bulk-3"]
    assert all(c["key"].startswith("sk-sy-v1-") for c in created)


def test_cli_error_is_one_line_and_exit_1(served, keys, capsys):
    code, out, err = cli(served, keys["admin"], "keys", "get", "000000000000", capsys=capsys)
    assert code == 1 and out == ""
    assert err.startswith("switchyard: error: 404: ") and err.count("\n") == 1, err
    code, _, err = cli(served, keys["dev"], "keys", "list", capsys=capsys)
    assert code == 1 and err.startswith("switchyard: error: 40"), err


def test_cli_catalog_load_writes_every_entry(served, keys, capsys, tmp_path):
    file = tmp_path / "catalog.yaml"
    file.write_text("providers:\n  - {id: team-sim, kind: sim}\n"
                    "models:\n  - {id: team/one, provider: team-sim, upstream_model: fast, context_length: 4096}\n"
                    "  - {id: team/two, provider: team-sim, upstream_model: fast, context_length: 4096}\n")
    code, out, err = cli(served, keys["admin"], "--progress", "catalog", "load", str(file), capsys=capsys)
    assert code == 0, err
    assert "catalog: 100%" in err and "3/3" in err
    assert json.loads(out)["written"] == {"provider": 1, "model": 2, "route": 0, "hidden": 0, "shown": 0}
    code, out, _ = cli(served, keys["admin"], "models", "list", capsys=capsys)
    assert {"team/one", "team/two"} <= {m["id"] for m in json.loads(out)["data"]}


def test_cli_catalog_load_stops_at_the_first_refusal_naming_it(served, keys, capsys, tmp_path):
    file = tmp_path / "catalog.yaml"
    file.write_text("models:\n  - {id: team/orphan, provider: nobody-here, upstream_model: x}\n")
    code, _, err = cli(served, keys["admin"], "catalog", "load", str(file), capsys=capsys)
    assert code == 1 and "model team/orphan" in err and "nobody-here" in err and err.count("\n") == 1, err
    code, _, err = cli(served, keys["admin"], "catalog", "load", str(tmp_path / "missing.yaml"), capsys=capsys)
    assert code == 1 and "missing.yaml" in err


def test_cli_add_local_lists_the_servers_models_when_none_are_named(served, keys, capsys, fake_upstream):
    code, out, err = cli(served, keys["admin"], "providers", "add-local", "llamacpp", "--base-url",
                         fake_upstream.base_url, "--context-length", "4096", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["models"] == ["llamacpp/ok", "llamacpp/served-model"]
    code, out, err = cli(served, keys["dev"], "chat", "llamacpp/served-model", "Say hello", capsys=capsys)
    assert code == 0 and out.strip(), err
    assert fake_upstream.requests[-1]["body"]["model"] == "org/served-model"


def test_cli_add_local_says_when_the_server_cannot_be_listed(served, keys, capsys):
    from infra.local import free_port

    code, _, err = cli(served, keys["admin"], "providers", "add-local", "vllm", "--base-url",
                       f"http://127.0.0.1:{free_port()}/v1", capsys=capsys)
    assert code == 1 and "--model" in err and err.count("\n") == 1, err
