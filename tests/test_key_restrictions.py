"""Per-key restrictions: models, addresses, origins (with CORS), expiry, limit periods, rotation, the
failed-authentication throttle and zero-log, each allowed and refused."""

import asyncio
import time
from datetime import datetime, timezone

import pytest
from starlette.testclient import TestClient

from shared.errors import AuthenticationError, RateLimitedError
from shared.keys import Authenticator
from shared.keys import restrictions as r
from shared.keys.auth import FailedAuthThrottle
from shared.keys.counters import counter_key, limit_period, periods_of_day
from tests.stores import MemoryKeyStore

CHAT = "/api/v1/chat/completions"


def chat(model="sim/fast", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def new_key(client, admin, **settings):
    response = client.post("/api/v1/keys", headers=admin, json={"name": "restricted", **settings})
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["data"]


def bearer(token, **headers):
    return {"Authorization": f"Bearer {token}", **headers}


# -- the checks themselves --

def test_model_globs_match_whole_ids_only():
    patterns = ("anthropic/*", "meta-llama/llama-3.2-3b-instruct", "*/gpt-4o")
    assert r.model_allowed(patterns, "anthropic/claude-4-haiku")
    assert r.model_allowed(patterns, "meta-llama/llama-3.2-3b-instruct")
    assert r.model_allowed(patterns, "openai/gpt-4o")
    assert not r.model_allowed(patterns, "meta-llama/llama-3.2-3b-instruct-x")
    assert not r.model_allowed(patterns, "openai/gpt-4o-mini")
    assert not r.model_allowed(patterns, "xanthropic/claude")
    assert not r.model_allowed(("a.b/c",), "aXb/c")  # dots are literal


@pytest.mark.parametrize("address,allowed", [
    ("10.1.2.3", True), ("10.255.0.1", True), ("11.0.0.1", False), ("::ffff:10.0.0.9", True),
    ("2001:db8::1", True), ("2001:db9::1", False), ("fe80::1%eth0", False), ("testclient", False), (None, False),
])
def test_ip_allowlists_take_cidrs_of_both_families(address, allowed):
    cidrs = (r.network("10.0.0.0/8"), r.network("2001:db8::/32"))
    assert r.ip_allowed(cidrs, address) is allowed


def test_settings_are_normalised_or_refused():
    assert r.network("10.0.0.7/8") == "10.0.0.0/8" and r.network("192.168.1.1") == "192.168.1.1/32"
    assert r.origin("HTTPS://Your-App.com:443/") == "https://your-app.com"
    assert r.origin("http://localhost:3000") == "http://localhost:3000"
    assert r.origin("https://*.your-app.com") == "https://*.your-app.com"
    assert r.timestamp("2027-01-01T01:00:00+01:00") == "2027-01-01T00:00:00Z"
    for bad in ("your-app.com", "https://your-app.com/path", "ftp://x.com", "https://*", "https://a.*.com",
                "https://user@x.com"):
        with pytest.raises(ValueError):
            r.origin(bad)
    for bad in ("10.0.0.0/33", "nope", ""):
        with pytest.raises(ValueError):
            r.network(bad)


def test_origins_match_exactly_or_as_subdomains():
    patterns = (r.origin("https://your-app.com"), r.origin("https://*.example.org"))
    assert r.origin_allowed(patterns, r.origin_of("https://your-app.com"))
    assert r.origin_allowed(patterns, r.origin_of("https://your-app.com:443/some/page?q=1"))
    assert r.origin_allowed(patterns, r.origin_of("https://a.b.example.org"))
    assert not r.origin_allowed(patterns, r.origin_of("https://example.org"))  # *. is subdomains only
    assert not r.origin_allowed(patterns, r.origin_of("http://your-app.com"))  # another scheme
    assert not r.origin_allowed(patterns, r.origin_of("https://your-app.com.evil.net"))
    assert not r.origin_allowed(patterns, r.origin_of("null"))


@pytest.mark.parametrize("day,week", [("2026-11-29", "week#2026-11-23"),  # a Sunday: the week began Monday
                                      ("2026-11-30", "week#2026-11-30"),  # Monday starts the next
                                      ("2026-12-01", "week#2026-11-30")])
def test_weeks_run_monday_to_sunday(day, week):
    assert periods_of_day(day).week == week


def test_the_limit_period_turns_at_midnight_utc():
    before = datetime(2026, 11, 30, 23, 59, 59, tzinfo=timezone.utc)
    after = datetime(2026, 12, 1, 0, 0, 0, tzinfo=timezone.utc)
    assert limit_period("daily", before) == "day#2026-11-30" and limit_period("daily", after) == "day#2026-12-01"
    assert limit_period("monthly", before) == "month#2026-11" and limit_period("monthly", after) == "month#2026-12"
    assert limit_period("weekly", before) == limit_period("weekly", after) == "week#2026-11-30"
    assert limit_period(None, after) == "total"


# -- the keys API --

def test_every_restriction_is_stored_and_shown(client, admin):
    token, data = new_key(client, admin, allowed_models=["anthropic/*", "sim/fast", "sim/fast"],
                          allowed_ips=["10.0.0.1/8", "::1"], allowed_origins=["https://Your-App.com"],
                          rpm=100, rpd=5000, tpm=100000, limit=5, limit_reset="monthly",
                          expires_at="2099-01-01T00:00:00Z", residency=["us-east-1"], zero_log=True)
    assert data["allowed_models"] == ["anthropic/*", "sim/fast"]
    assert data["allowed_ips"] == ["10.0.0.0/8", "::1/128"] and data["allowed_origins"] == ["https://your-app.com"]
    assert (data["rpm"], data["rpd"], data["tpm"], data["limit_reset"]) == (100, 5000, 100000, "monthly")
    assert data["expires_at"] == "2099-01-01T00:00:00Z" and data["zero_log"] is True
    assert data["residency"] == ["us-east-1"] and data["usage_weekly"] == 0
    warned = client.post("/api/v1/keys", headers=admin, json={"name": "w", "allowed_models": [
        "anthropic/claude-4-haiku", "meta-llama/llama-3.2-3b-instruct", "sim/*"]}).json()
    assert warned["warnings"] == ["allowed_models: 'anthropic/claude-4-haiku' matches no model in the catalog"]
    shown = client.get(f"/api/v1/keys/{data['hash']}", headers=admin).json()["data"]
    assert {k: shown[k] for k in data if k not in ("updated_at",)} == {k: data[k] for k in data if k != "updated_at"}
    cleared = client.patch(f"/api/v1/keys/{data['hash']}", headers=admin,
                           json={"allowed_models": None, "rpm": None, "allowed_origins": None}).json()["data"]
    assert cleared["allowed_models"] is None and cleared["rpm"] is None and cleared["allowed_origins"] is None
    assert cleared["allowed_ips"] == ["10.0.0.0/8", "::1/128"]  # what the PATCH did not name is kept


@pytest.mark.parametrize("settings,field", [
    ({"allowed_ips": ["300.1.1.1"]}, "allowed_ips"), ({"allowed_origins": ["your-app.com"]}, "allowed_origins"),
    ({"allowed_models": ["bad model"]}, "allowed_models"), ({"allowed_models": []}, "allowed_models"),
    ({"rpm": 0}, "rpm"), ({"tpm": -5}, "tpm"), ({"limit_reset": "hourly"}, "limit_reset"),
    ({"expires_at": "tomorrow"}, "expires_at"), ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"residency": ["mars"]}, "residency"), ({"allowed_ips": ["10.0.0.0/8"] * 101}, "allowed_ips"),
])
def test_bad_restrictions_are_a_400_naming_the_field(client, admin, settings, field):
    response = client.post("/api/v1/keys", headers=admin, json={"name": "x", **settings})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["field"].startswith(field)


# -- models --

def test_allowed_models_refuse_the_model_and_any_fallback_named(client, admin):
    token, _ = new_key(client, admin, allowed_models=["sim/fast", "sim/chat"])
    assert client.post(CHAT, headers=bearer(token), json=chat("sim/fast")).status_code == 200
    refused = client.post(CHAT, headers=bearer(token), json=chat("sim/long-context"))
    assert refused.status_code == 403
    meta = refused.json()["error"]["metadata"]
    assert meta["reason"] == "model_not_allowed" and meta["models"] == ["sim/long-context"]
    fallback = client.post(CHAT, headers=bearer(token), json=chat("sim/fast", models=["sim/fast", "sim/down"]))
    assert fallback.status_code == 403 and fallback.json()["error"]["metadata"]["models"] == ["sim/down"]
    variant = client.post(CHAT, headers=bearer(token), json=chat("sim/long-context:nitro"))
    assert variant.status_code == 403  # a variant names its base model


def test_a_policy_routes_only_to_allowed_models(client, admin):
    # switchyard/fallback-demo tries sim/down, then sim/fast
    only_fast, _ = new_key(client, admin, allowed_models=["sim/fast"])
    answered = client.post(CHAT, headers=bearer(only_fast), json=chat("switchyard/fallback-demo"))
    assert answered.status_code == 200 and answered.json()["model"] == "sim/fast"
    only_down, _ = new_key(client, admin, allowed_models=["sim/down"])
    failed = client.post(CHAT, headers=bearer(only_down), json=chat("switchyard/fallback-demo"))
    assert failed.status_code == 502  # sim/down failed (its 503); sim/fast was not the key's to try
    assert failed.json()["error"]["metadata"]["error_type"] == "provider_overloaded"
    none, _ = new_key(client, admin, allowed_models=["anthropic/*"])
    refused = client.post(CHAT, headers=bearer(none), json=chat("switchyard/fallback-demo"))
    assert refused.status_code == 403 and refused.json()["error"]["metadata"]["reason"] == "model_not_allowed"


# -- addresses --

def test_allowed_ips_use_the_socket_address_not_headers(gateway, keys, admin):
    from functions.gateway.app import app

    # (not entered: two lifespans would start two meters; these calls need none)
    inside = TestClient(app, raise_server_exceptions=False, client=("10.1.2.3", 5000))
    outside = TestClient(app, raise_server_exceptions=False, client=("192.0.2.7", 5000))
    token, _ = new_key(inside, admin, allowed_ips=["10.0.0.0/8"])
    assert inside.post(CHAT, headers=bearer(token), json=chat()).status_code == 200
    spoofed = bearer(token, **{"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"})
    refused = outside.post(CHAT, headers=spoofed, json=chat())
    assert refused.status_code == 403
    meta = refused.json()["error"]["metadata"]
    assert meta["reason"] == "ip_not_allowed" and meta["client_ip"] == "192.0.2.7"
    gateway.meter.flush()  # the refused attempt is on the key's record, with where it came from
    record = gateway.usage.get(meta["generation_id"])
    assert record["status"] == "failed" and record["error_code"] == 403 and record["client_ip"] == "192.0.2.7"


def test_a_trusted_proxy_forwards_the_client_address(gateway, keys, admin, monkeypatch):
    from functions.gateway.app import app

    object.__setattr__(gateway, "trusted_proxies", ("192.0.2.0/24",))  # as SWITCHYARD_TRUSTED_PROXIES sets it
    with TestClient(app, raise_server_exceptions=False, client=("192.0.2.7", 5000)) as proxy:
        token, _ = new_key(proxy, admin, allowed_ips=["10.0.0.0/8"])
        # the rightmost address the trusted proxy did not add itself is the client's
        ok = proxy.post(CHAT, headers=bearer(token, **{"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}), json=chat())
        assert ok.status_code == 200
        forged = proxy.post(CHAT, headers=bearer(token, **{"X-Forwarded-For": "10.1.2.3, 203.0.113.9"}),
                            json=chat())
        assert forged.status_code == 403


# -- origins and CORS --

def test_allowed_origins_answer_cors_for_that_origin_only(client, admin):
    token, _ = new_key(client, admin, allowed_origins=["https://your-app.com"])
    ok = client.post(CHAT, headers=bearer(token, Origin="https://your-app.com"), json=chat())
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://your-app.com"
    assert "X-Generation-Id" in ok.headers["access-control-expose-headers"] and ok.headers["vary"] == "Origin"
    evil = client.post(CHAT, headers=bearer(token, Origin="https://evil.example"), json=chat())
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    assert evil.json()["error"]["metadata"]["reason"] == "origin_not_allowed"
    referer = client.post(CHAT, headers=bearer(token, Referer="https://your-app.com/chat"), json=chat())
    assert referer.status_code == 200 and "access-control-allow-origin" not in referer.headers
    nothing = client.post(CHAT, headers=bearer(token), json=chat())
    assert nothing.status_code == 403 and nothing.json()["error"]["metadata"]["origin"] is None


def test_preflight_is_answered_for_origins_some_key_allows(client, admin):
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, x-evil"}
    unknown = client.options(CHAT, headers={"Origin": "https://your-app.com", **preflight})
    assert unknown.status_code == 403 and "access-control-allow-origin" not in unknown.headers
    _, data = new_key(client, admin, allowed_origins=["https://your-app.com", "https://*.apps.example"])
    for origin in ("https://your-app.com", "https://team.apps.example"):
        answer = client.options(CHAT, headers={"Origin": origin, **preflight})
        assert answer.status_code == 204, answer.text
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["access-control-allow-headers"] == "authorization, content-type"
        assert "POST" in answer.headers["access-control-allow-methods"]
    gateway_origins = client.options(CHAT, headers={"Origin": "https://other.example", **preflight})
    assert gateway_origins.status_code == 403
    client.delete(f"/api/v1/keys/{data['hash']}", headers=admin)
    assert client.options(CHAT, headers={"Origin": "https://your-app.com", **preflight}).status_code == 403
    assert client.options(CHAT, headers={"Origin": "https://your-app.com"}).status_code == 400  # not a preflight


# -- expiry --

def test_an_expired_key_is_refused_from_its_expiry_on():
    store = MemoryKeyStore()
    token, key = store.create("app", expires_at="2030-01-01T00:00:00Z")
    now = [datetime(2029, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()]
    auth = Authenticator(store, ttl=60, clock=lambda: now[0])
    assert asyncio.run(auth.authenticate(f"Bearer {token}", kind="inference")).key_id == key.key_id
    now[0] += 1
    with pytest.raises(AuthenticationError) as e:
        asyncio.run(auth.authenticate(f"Bearer {token}", kind="inference"))  # cached, and still refused
    assert e.value.metadata["reason"] == "key_expired" and e.value.status == 401


def test_an_expired_key_gets_a_401_through_the_api(client, admin, gateway):
    token, data = new_key(client, admin)
    gateway.keys.update(data["hash"], expires_at="2020-01-01T00:00:00Z")  # (the API refuses past times)
    gateway.auth.forget(data["hash"])
    refused = client.post(CHAT, headers=bearer(token), json=chat())
    assert refused.status_code == 401 and refused.json()["error"]["metadata"]["reason"] == "key_expired"


# -- limit periods --

def test_a_limit_with_a_reset_applies_to_the_current_period_only(client, admin, gateway):
    token, data = new_key(client, admin, limit=0.001, limit_reset="daily")
    key_id = data["hash"]
    yesterday = "day#2000-01-01"
    gateway.keys.spend.table.update({"pk": counter_key(key_id), "period": yesterday},
                                    "SET cost = :c, committed = :c, holds = :h", values={":c": 5.0, ":h": {}})
    gateway.keys.spend.table.update({"pk": counter_key(key_id), "period": "total"},
                                    "SET cost = :c, committed = :c", values={":c": 5.0})
    gateway.auth.forget(key_id)
    assert client.post(CHAT, headers=bearer(token), json=chat(max_tokens=5)).status_code == 200  # a new day
    gateway.meter.flush()
    today = limit_period("daily", datetime.now(timezone.utc))
    row = gateway.keys.spend.table.get({"pk": counter_key(key_id), "period": today}, consistent=True)
    assert row["cost"] > 0 and row["holds"] == {} and abs(float(row["committed"]) - float(row["cost"])) < 1e-12
    shown = client.get("/api/v1/key", headers=bearer(token)).json()["data"]
    assert shown["limit_reset"] == "daily" and shown["usage"] > 5 and shown["usage_daily"] == row["cost"]
    assert shown["limit_remaining"] == pytest.approx(0.001 - row["cost"])
    # today's spend reaches the limit: refused until midnight UTC
    gateway.keys.spend.table.update({"pk": counter_key(key_id), "period": today}, "ADD committed :c",
                                    values={":c": 0.001})
    refused = client.post(CHAT, headers=bearer(token), json=chat(max_tokens=5))
    assert refused.status_code == 402


# -- rotation --

def test_rotation_keeps_the_old_secret_for_its_grace_only(client, admin, gateway):
    token, data = new_key(client, admin)
    assert client.post(CHAT, headers=bearer(token), json=chat()).status_code == 200
    rotated = client.post(f"/api/v1/keys/{data['hash']}/rotate", headers=admin, json={"grace_seconds": 60})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new, shown = body["key"], body["data"]
    assert new != token and shown["hash"] == data["hash"] and shown["rotation_grace_until"]
    assert body["old_secret_refused_within_seconds"] == 60 + gateway.settings.key_cache_seconds
    assert client.post(CHAT, headers=bearer(new), json=chat()).status_code == 200
    assert client.post(CHAT, headers=bearer(token), json=chat()).status_code == 200  # within the grace
    again = client.post(f"/api/v1/keys/{data['hash']}/rotate", headers=admin, json={"grace_seconds": 0})
    newest = again.json()["key"]
    for old in (token, new):
        refused = client.post(CHAT, headers=bearer(old), json=chat())
        assert refused.status_code == 401 and refused.json()["error"]["metadata"]["reason"] == "key_invalid"
    assert client.post(CHAT, headers=bearer(newest), json=chat()).status_code == 200
    assert client.post("/api/v1/keys/000000000000/rotate", headers=admin, json={}).status_code == 404


def test_a_grace_ends_on_time_and_a_new_secret_works_at_once_elsewhere():
    store = MemoryKeyStore()
    token, key = store.create("app")
    now = [1_000_000.0]
    other_process = Authenticator(store, ttl=60, clock=lambda: now[0])
    assert asyncio.run(other_process.authenticate(f"Bearer {token}", kind="inference"))  # cached there
    import time as clock

    new, _ = store.rotate(key.key_id, grace_seconds=30)
    now[0] = clock.time()
    # the other process's cache holds the key from before the rotation: the new secret reloads it
    assert asyncio.run(other_process.authenticate(f"Bearer {new}", kind="inference")).key_id == key.key_id
    assert asyncio.run(other_process.authenticate(f"Bearer {token}", kind="inference"))
    now[0] += 31
    with pytest.raises(AuthenticationError):
        asyncio.run(other_process.authenticate(f"Bearer {token}", kind="inference"))


# -- failed authentication --

def test_a_source_that_keeps_failing_is_throttled_without_lookups():
    store = MemoryKeyStore()
    token, _ = store.create("app")
    lookups = []
    get = store.get
    store.get = lambda key_id: lookups.append(key_id) or get(key_id)
    now = [0.0]
    auth = Authenticator(store, ttl=0, throttle=FailedAuthThrottle(most=20, window=60, clock=lambda: now[0]))
    from shared.keys.tokens import new_key as fresh

    for _ in range(20):
        with pytest.raises(AuthenticationError):
            asyncio.run(auth.authenticate(f"Bearer {fresh()[0]}", kind="inference", source="198.51.100.1"))
    before = len(lookups)
    with pytest.raises(RateLimitedError) as e:
        asyncio.run(auth.authenticate(f"Bearer {fresh()[0]}", kind="inference", source="198.51.100.1"))
    assert e.value.metadata["reason"] == "auth_throttled" and e.value.headers["Retry-After"] == "60"
    assert len(lookups) == before  # refused before any lookup
    assert asyncio.run(auth.authenticate(f"Bearer {token}", kind="inference", source="198.51.100.2"))
    now[0] = 61
    assert asyncio.run(auth.authenticate(f"Bearer {token}", kind="inference", source="198.51.100.1"))


def test_throttled_sources_get_a_429_through_the_api(client):
    from shared.keys.tokens import new_key as fresh

    statuses = [client.post(CHAT, headers=bearer(fresh()[0]), json=chat()).status_code for _ in range(25)]
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 5
    last = client.post(CHAT, headers=bearer(fresh()[0]), json=chat())
    assert last.json()["error"]["metadata"]["reason"] == "auth_throttled" and int(last.headers["Retry-After"]) > 0
    assert last.headers["X-RateLimit-Limit"] == "20" and last.headers["X-RateLimit-Remaining"] == "0"
    assert int(last.headers["X-RateLimit-Reset"]) > time.time() * 1000


# -- zero-log --

def test_zero_log_records_keep_no_identity(client, admin, gateway):
    token, data = new_key(client, admin, zero_log=True)
    headers = bearer(token, **{"User-Agent": "secret-agent/1.0", "X-Title": "My App",
                               "HTTP-Referer": "https://my-app.example"})
    answer = client.post(CHAT, headers=headers, json=chat(user="user-42"))
    assert answer.status_code == 200
    gateway.meter.flush()
    record = gateway.usage.get(answer.json()["id"])
    assert record["prompt_tokens"] > 0 and record["cost"] > 0 and record["model"] == "sim/fast"
    for field in ("client_ip", "user_agent", "app", "app_title", "app_referer", "prompt_fingerprint"):
        assert record.get(field) is None, field
    assert "secret-agent" not in str(record) and "my-app" not in str(record).lower()


@pytest.mark.parametrize("body,status", [(None, 200), ({"grace_seconds": -1}, 400), ({"grace_seconds": "x"}, 400),
                                         ({"grace": 5}, 400), ({"grace_seconds": 10**9}, 400)])
def test_rotation_bodies(client, admin, body, status):
    _, data = new_key(client, admin)
    kwargs = {} if body is None else {"json": body}
    response = client.post(f"/api/v1/keys/{data['hash']}/rotate", headers=admin, **kwargs)
    assert response.status_code == status, response.text


@pytest.mark.parametrize("path,body", [
    ("/api/v1/messages", {"model": "sim/fast", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    ("/api/v1/completions", {"model": "sim/fast", "prompt": "hi", "max_tokens": 8}),
    ("/api/v1/embeddings", {"model": "sim/embed", "input": "hi"}),
])
def test_every_inference_front_keeps_the_keys_restrictions(client, admin, path, body):
    limited, _ = new_key(client, admin, rpm=1)
    assert client.post(path, headers=bearer(limited), json=body).status_code == 200
    refused = client.post(path, headers=bearer(limited), json=body)
    assert refused.status_code == 429 and refused.json()["error"]["metadata"]["reason"] == "rpm"
    only_chat, _ = new_key(client, admin, allowed_models=["sim/chat"])
    assert client.post(path, headers=bearer(only_chat), json=body).status_code == 403
    browser, _ = new_key(client, admin, allowed_origins=["https://your-app.com"])
    assert client.post(path, headers=bearer(browser, Origin="https://evil.example"), json=body).status_code == 403
