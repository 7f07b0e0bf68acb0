"""Key governance tried as an attacker would: escalation through a restricted management key, settings that a
key would silently ignore, values that once answered 500 or 503, the failed-authentication throttle under
concurrency, origins in every form a browser sends, and an audit table edited behind the gateway's back."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from starlette.testclient import TestClient

from shared.errors import AuthenticationError, RateLimitedError
from shared.keys import Authenticator
from shared.keys import restrictions as r
from shared.keys.auth import FailedAuthThrottle
from shared.keys.tokens import new_key as fresh
from tests.stores import MemoryKeyStore

CHAT = "/api/v1/chat/completions"
KEYS = "/api/v1/keys"


def chat(**extra):
    return {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def made(response):
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["data"]


def refused(response, status, reason=None, field=None):
    assert response.status_code == status, response.text
    meta = response.json()["error"]["metadata"]
    if reason is not None:
        assert meta.get("reason") == reason, meta
    if field is not None:
        assert meta.get("field") == field, meta
    return meta


def soon(days):
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat(timespec="seconds").replace("+00:00", "Z")


def manager(client, admin, **settings):
    token, data = made(client.post(KEYS, headers=admin, json={"name": "mgr", "management": True,
                                                              "scopes": ["keys:write", "analytics:read"],
                                                              **settings}))
    return bearer(token), data


# -- no key gives more than it holds --

def test_a_management_key_that_expires_gives_only_keys_that_expire_no_later(client, admin):
    mgr, me = manager(client, admin, expires_at=soon(1))
    body = {"name": "sub", "management": True, "scopes": ["keys:read"]}
    refused(client.post(KEYS, headers=mgr, json=body), 403, "expiry_exceeds_own")
    refused(client.post(KEYS, headers=mgr, json={**body, "expires_at": soon(30)}), 403, "expiry_exceeds_own")
    made(client.post(KEYS, headers=mgr, json={**body, "expires_at": soon(0.5)}))
    refused(client.patch(f"{KEYS}/{me['hash']}", headers=mgr, json={"expires_at": None}), 403, "expiry_exceeds_own")
    assert client.get(f"{KEYS}/{me['hash']}", headers=admin).json()["data"]["expires_at"] == me["expires_at"]
    made(client.post(KEYS, headers=mgr, json={"name": "app"}))  # an inference key's life is not a right


def test_a_management_key_with_allowed_ips_gives_only_narrower_ones(gateway, keys, admin):
    from functions.gateway.app import app

    inside = TestClient(app, raise_server_exceptions=False, client=("10.1.2.3", 5000))
    mgr, me = manager(inside, admin, allowed_ips=["10.0.0.0/8"])
    body = {"name": "sub", "management": True, "scopes": ["keys:read"]}
    refused(inside.post(KEYS, headers=mgr, json=body), 403, "ips_exceed_own")
    refused(inside.post(KEYS, headers=mgr, json={**body, "allowed_ips": ["10.0.0.0/7"]}), 403, "ips_exceed_own")
    refused(inside.post(KEYS, headers=mgr, json={**body, "allowed_ips": ["2001:db8::/32"]}), 403, "ips_exceed_own")
    made(inside.post(KEYS, headers=mgr, json={**body, "allowed_ips": ["10.1.0.0/16", "10.2.3.4"]}))
    refused(inside.patch(f"{KEYS}/{me['hash']}", headers=mgr, json={"allowed_ips": None}), 403, "ips_exceed_own")


def test_a_lifetime_limit_cannot_give_a_limit_that_resets(client, admin):
    mgr, _ = manager(client, admin, limit=5)
    refused(client.post(KEYS, headers=mgr, json={"name": "a", "limit": 5, "limit_reset": "daily"}), 403,
            "limit_reset_exceeds_own")
    made(client.post(KEYS, headers=mgr, json={"name": "a", "limit": 5}))
    monthly, _ = manager(client, admin, limit=5, limit_reset="monthly")
    refused(client.post(KEYS, headers=monthly, json={"name": "b", "limit": 1, "limit_reset": "weekly"}), 403,
            "limit_reset_exceeds_own")
    made(client.post(KEYS, headers=monthly, json={"name": "b", "limit": 1, "limit_reset": "monthly"}))
    made(client.post(KEYS, headers=monthly, json={"name": "c", "limit": 1}))


def test_scopes_cannot_be_cleared_into_every_scope(client, admin):
    mgr, me = manager(client, admin)
    refused(client.patch(f"{KEYS}/{me['hash']}", headers=admin, json={"scopes": None}), 400, field="scopes")
    assert client.get(f"{KEYS}/{me['hash']}", headers=admin).json()["data"]["scopes"] == ["keys:write",
                                                                                         "analytics:read"]


@pytest.mark.parametrize("setting", [{"allowed_models": ["sim/*"]}, {"allowed_origins": ["https://a.com"]},
                                     {"rpm": 10}, {"rpd": 10}, {"tpm": 1000}, {"residency": ["us-east-1"]},
                                     {"zero_log": True}])
def test_a_management_key_refuses_settings_it_would_ignore(client, admin, setting):
    body = {"name": "m", "management": True, "scopes": ["keys:read"], **setting}
    refused(client.post(KEYS, headers=admin, json=body), 400, field=next(iter(setting)))
    _, me = manager(client, admin)
    refused(client.patch(f"{KEYS}/{me['hash']}", headers=admin, json=setting), 400, field=next(iter(setting)))


def test_an_ip_restricted_management_key_is_checked_on_every_route(gateway, keys, admin):
    from functions.gateway.app import app

    inside = TestClient(app, raise_server_exceptions=False, client=("10.1.2.3", 5000))
    outside = TestClient(app, raise_server_exceptions=False, client=("192.0.2.7", 5000))
    mgr, _ = manager(inside, admin, allowed_ips=["10.0.0.0/8"])
    for path in ("/api/v1/analytics", "/api/v1/activity", "/api/v1/credits", "/api/v1/key"):
        assert inside.get(path, headers=mgr).status_code == 200, path
        refused(outside.get(path, headers=mgr), 403, "ip_not_allowed")
    app_key, _ = made(inside.post(KEYS, headers=admin, json={"name": "app", "allowed_ips": ["10.0.0.0/8"]}))
    refused(outside.get("/api/v1/generation?id=gen-x", headers=bearer(app_key)), 403, "ip_not_allowed")
    # the dependency's own arguments are not query parameters a caller can set
    refused(outside.get("/api/v1/models/user?admitted=false", headers=bearer(app_key)), 403, "ip_not_allowed")
    assert outside.get(f"/api/v1/models/user?authorization=Bearer%20{app_key}").status_code == 401


# -- values that once answered 500 or 503 --

@pytest.mark.parametrize("settings,field", [
    ({"expires_at": "9999-12-31T23:59:59-01:00"}, "expires_at"),
    ({"expires_at": "0001-01-01T00:00:00+01:00"}, "expires_at"),
    ({"limit": 1e-300}, "limit"),
    ({"rpm": "10"}, "rpm"),
    ({"zero_log": 1}, "zero_log"),
    ({"limit": "5"}, "limit"),
    ({"name": "a\x00b"}, "name"),
    ({"name": "evil\u202etxt.exe"}, "name"),
    ({"name": "   "}, "name"),
    ({"limit_reset": "daily"}, "limit_reset"),
])
def test_hostile_settings_are_a_400_naming_the_field(client, admin, settings, field):
    response = client.post(KEYS, headers=admin, json={"name": "x", **settings})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert field in str(error["metadata"]) or field in error["message"], error


def test_clearing_the_limit_clears_its_reset(client, admin):
    _, key = made(client.post(KEYS, headers=admin, json={"name": "x", "limit": 1, "limit_reset": "daily"}))
    changed = client.patch(f"{KEYS}/{key['hash']}", headers=admin, json={"limit": None})
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["limit"] is None and changed.json()["data"]["limit_reset"] is None


def test_a_spent_key_says_why_in_its_402(client, admin, gateway):
    token, _ = made(client.post(KEYS, headers=admin, json={"name": "x", "limit": 0}))
    meta = refused(client.post(CHAT, headers=bearer(token), json=chat()), 402)
    assert meta["reason"] in ("limit_spent", "limit_insufficient")
    remaining = client.get("/api/v1/key", headers=bearer(token)).json()["data"]["limit_remaining"]
    assert remaining == 0


@pytest.mark.parametrize("value", ["yes", 1, None, "true"])
def test_governance_switches_are_strict(client, admin, value):
    refused(client.put("/api/v1/governance", headers=admin, json={"model_approval": value}), 400)
    assert client.get("/api/v1/governance", headers=admin).json()["data"]["model_approval"] == "off"


# -- the failed-authentication throttle --

def _auth(now):
    store = MemoryKeyStore()
    token, _ = store.create("app")
    lookups = []
    get = store.get
    store.get = lambda key_id: lookups.append(key_id) or get(key_id)
    return store, token, lookups, Authenticator(store, ttl=0, throttle=FailedAuthThrottle(
        most=20, window=60, clock=lambda: now[0]))


def test_concurrent_guesses_are_counted_before_their_lookups():
    now = [0.0]
    _, _, lookups, auth = _auth(now)

    async def guess():
        return await asyncio.gather(*(auth.authenticate(f"Bearer {fresh()[0]}", kind="inference",
                                                        source="198.51.100.1") for _ in range(200)),
                                    return_exceptions=True)

    outcomes = asyncio.run(guess())
    invalid = [o for o in outcomes if isinstance(o, AuthenticationError)]
    throttled = [o for o in outcomes if isinstance(o, RateLimitedError)]
    assert len(invalid) == 20 and len(throttled) == 180 and len(lookups) == 20


def test_a_good_key_behind_a_throttled_address_still_works():
    now = [0.0]
    _, token, _, auth = _auth(now)
    source = "198.51.100.1"
    assert asyncio.run(auth.authenticate(f"Bearer {token}", kind="inference", source=source))
    for _ in range(25):
        with pytest.raises((AuthenticationError, RateLimitedError)):
            asyncio.run(auth.authenticate(f"Bearer {fresh()[0]}", kind="inference", source=source))
    with pytest.raises(RateLimitedError):
        asyncio.run(auth.authenticate(f"Bearer {fresh()[0]}", kind="inference", source=source))
    assert asyncio.run(auth.authenticate(f"Bearer {token}", kind="inference", source=source))  # known: served


def test_missing_keys_and_valid_concurrent_calls_do_not_count():
    now = [0.0]
    _, token, _, auth = _auth(now)
    for _ in range(50):
        with pytest.raises(AuthenticationError) as e:
            asyncio.run(auth.authenticate(None, kind="inference", source="198.51.100.1"))
        assert e.value.metadata["reason"] == "key_missing"

    async def burst():
        return await asyncio.gather(*(auth.authenticate(f"Bearer {token}", kind="inference",
                                                        source="198.51.100.1") for _ in range(100)))

    assert len(asyncio.run(burst())) == 100
    assert auth.throttle._failures.get("198.51.100.1", [0, 0])[1] == 0


# -- origins as browsers send them --

def test_origins_are_compared_in_the_form_browsers_send():
    assert r.origin("http://[::1]:8080") == "http://[::1]:8080"
    assert r.origin_of("http://[0:0::1]:8080") == "http://[::1]:8080"
    assert r.origin("https://bücher.de") == "https://xn--bcher-kva.de" == r.origin_of("https://BÜCHER.de/x")
    assert r.origin_allowed((r.origin("https://bücher.de"),), r.origin_of("https://xn--bcher-kva.de"))
    assert r.origin_of("https://*.example.com") is None and r.origin_of("https://a..b") is None
    forms = r.origin_forms("https://a.b.c.example.com")
    assert len(forms) == len(set(forms)) == 5 and r.origin_forms("http://[::1]:8080") == ["http://[::1]:8080"]
    assert r.network("::ffff:10.0.0.0/104") == "10.0.0.0/8"
    assert r.ip_allowed((r.network("::ffff:10.0.0.0/104"),), "::ffff:10.9.9.9")


def test_preflights_never_answer_5xx_and_match_the_call(client, admin):
    deep = "https://" + ".".join(f"l{i}" for i in range(15)) + ".your-app.com"
    token, _ = made(client.post(KEYS, headers=admin, json={"name": "browser",
                                                           "allowed_origins": ["https://*.your-app.com"]}))

    def preflight(origin):
        return client.options(CHAT, headers={"Origin": origin, "Access-Control-Request-Method": "POST"})

    assert preflight(deep).status_code == 204  # the call's check allows it, so does its preflight
    assert client.post(CHAT, headers={**bearer(token), "Origin": deep}, json=chat()).status_code == 200
    for origin in ("https://*", "https://*.your-app.com", "null", "https://a..your-app.com", "x" * 5000):
        refused(preflight(origin), 403, "origin_not_allowed")
    refused(client.options(CHAT, headers={"Access-Control-Request-Method": "POST"}), 400, "not_a_preflight")


def test_an_ipv6_origin_is_stored_as_browsers_send_it(client, admin):
    token, data = made(client.post(KEYS, headers=admin, json={"name": "v6", "allowed_origins": ["http://[::1]:3000"]}))
    assert data["allowed_origins"] == ["http://[::1]:3000"]
    ok = client.post(CHAT, headers={**bearer(token), "Origin": "http://[::1]:3000"}, json=chat())
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://[::1]:3000"


# -- an audit table edited behind the gateway's back --

def test_an_edited_audit_table_is_shown_and_named_never_a_500(client, admin, gateway):
    for i in range(3):
        made(client.post(KEYS, headers=admin, json={"name": f"k{i}"}))
    table = gateway.audit.table
    second = table.get({"pk": "log", "seq": 2})
    table.put({**second, "body": "not json {"})
    listed = client.get("/api/v1/audit", headers=admin)
    assert listed.status_code == 200, listed.text
    shown = {e["seq"]: e for e in listed.json()["data"]}
    assert shown[2].get("unreadable") is True and shown[3]["action"] == "key.create"
    exported = client.get("/api/v1/audit/export", headers=admin)
    assert exported.status_code == 200 and exported.text.count("\n") >= 3
    verdict = client.get("/api/v1/audit/verify", headers=admin).json()
    assert verdict["valid"] is False and verdict["first_invalid"] == 2 and verdict["problem"] == "edited"
    head = table.get({"pk": "head", "seq": 0})
    table.put({**head, "last_seq": "lots"})
    verdict = client.get("/api/v1/audit/verify", headers=admin)
    assert verdict.status_code == 200 and verdict.json()["valid"] is False
    refused(client.post(KEYS, headers=admin, json={"name": "after"}), 503)


def test_a_limit_reads_back_as_it_was_given(client, admin):
    _, whole = made(client.post(KEYS, headers=admin, json={"name": "w", "limit": 10}))
    _, part = made(client.post(KEYS, headers=admin, json={"name": "p", "limit": 2.5}))
    assert type(whole["limit"]) is int and whole["limit"] == 10 and type(whole["limit_remaining"]) is int
    assert part["limit"] == 2.5
    assert type(client.get(f"{KEYS}/{whole['hash']}", headers=admin).json()["data"]["limit"]) is int


# -- found by the second attack review --

def test_a_limited_key_cannot_lower_a_stronger_key_and_then_take_its_secret(client, admin):
    mgr, _ = made(client.post(KEYS, headers=admin, json={"name": "m", "management": True, "scopes": ["*"],
                                                          "limit": 5}))
    mgr = bearer(mgr)
    root_hash = client.get("/api/v1/key", headers=admin).json()["data"]["hash"]
    refused(client.patch(f"{KEYS}/{root_hash}", headers=mgr, json={"limit": 1}), 403, "limit_required")
    refused(client.post(f"{KEYS}/{root_hash}/rotate", headers=mgr, json={}), 403, "limit_required")
    assert client.get("/api/v1/key", headers=admin).status_code == 200  # its secret is still its own
    _, dev = made(client.post(KEYS, headers=admin, json={"name": "dev"}))  # unlimited: above the manager
    refused(client.patch(f"{KEYS}/{dev['hash']}", headers=mgr, json={"limit": 5}), 403, "limit_required")
    _, small = made(client.post(KEYS, headers=mgr, json={"name": "small", "limit": 2}))
    assert client.patch(f"{KEYS}/{small['hash']}", headers=mgr, json={"limit": 1}).status_code == 200
    assert client.post(f"{KEYS}/{small['hash']}/rotate", headers=mgr, json={}).status_code == 200


def test_every_documented_scope_can_be_given(client, admin):
    from shared.keys.scopes import SCOPES

    for scope in SCOPES:
        made(client.post(KEYS, headers=admin, json={"name": scope, "management": True, "scopes": [scope]}))


def test_a_limited_manager_gives_a_synthetic_job_no_more_than_its_limit(client, admin):
    mgr, _ = made(client.post(KEYS, headers=admin, json={"name": "m", "management": True, "limit": 1,
                                                          "scopes": ["synthetic:write"]}))
    spec = {"name": "s", "num_records": 2, "model_configs": [{"alias": "w", "model": "sim/fast"}],
            "columns": [{"name": "note", "column_type": "llm-text", "model_alias": "w", "prompt": "Write"}]}
    refused(client.post("/api/v1/synthetic/jobs", headers=bearer(mgr), json={"spec": spec}), 403, "limit_required")
    over = {**spec, "budget": {"max_cost_usd": 500}}
    refused(client.post("/api/v1/synthetic/jobs", headers=bearer(mgr), json={"spec": over}), 403,
            "limit_exceeds_own")


def test_a_lowered_rate_limit_holds_at_once(client, admin, gateway):
    token, key = made(client.post(KEYS, headers=admin, json={"name": "r", "rpm": 100}))
    assert all(client.post(CHAT, headers=bearer(token), json=chat(max_tokens=4)).status_code == 200
               for _ in range(20))
    assert client.patch(f"{KEYS}/{key['hash']}", headers=admin, json={"rpm": 5}).status_code == 200
    statuses = [client.post(CHAT, headers=bearer(token), json=chat(max_tokens=4)).status_code for _ in range(10)]
    assert statuses == [429] * 10  # 20 already served in this minute: more than the new 5


def test_embeddings_hold_their_input_only(client, admin):
    token, _ = made(client.post(KEYS, headers=admin, json={"name": "e", "tpm": 3000}))
    for _ in range(5):  # each held as prompt + 4096 "output tokens" once: the second was refused
        answer = client.post("/api/v1/embeddings", headers=bearer(token),
                             json={"model": "sim/embed", "input": "hi there"})
        assert answer.status_code == 200, answer.text


def test_an_unbounded_call_is_fitted_to_what_the_minute_has_left(client, admin):
    token, _ = made(client.post(KEYS, headers=admin, json={"name": "t", "tpm": 9000}))
    served = [client.post(CHAT, headers=bearer(token), json=chat()) for _ in range(3)]
    assert [a.status_code for a in served] == [200, 200, 200], [a.text for a in served]


def test_an_edited_head_time_is_not_carried_forward(client, admin, gateway):
    made(client.post(KEYS, headers=admin, json={"name": "a"}))
    table = gateway.audit.table
    head = table.get({"pk": "head", "seq": 0})
    table.put({**head, "at": "9999-12-31T23:59:59.999Z"})
    assert client.get("/api/v1/audit/verify", headers=admin).json()["valid"] is False
    made(client.post(KEYS, headers=admin, json={"name": "b"}))
    newest = client.get("/api/v1/audit?limit=1", headers=admin).json()["data"][0]
    assert newest["at"] < "9999" and newest["target"]
    table.put({**table.get({"pk": "head", "seq": 0}), "at": 5})
    made(client.post(KEYS, headers=admin, json={"name": "c"}))  # once a 500 after the key was made


def test_vendor_secrets_never_reach_the_audit_log(client, admin):
    provider = {"id": "acme", "kind": "sim", "base_url": "https://u:pw@api.acme.example/v1?api-key=QUERYSECRET",
                "headers": {"Authorization": "Bearer VENDORSECRET123"}}
    put = client.put("/api/v1/catalog/providers", headers=admin, json=provider)
    assert put.status_code in (200, 400), put.text
    log = client.get("/api/v1/audit/export", headers=admin).text + \
        str(client.get("/api/v1/audit?action=catalog.*", headers=admin).json())
    for secret in ("QUERYSECRET", "VENDORSECRET123", "u:pw"):
        assert secret not in log


@pytest.mark.parametrize("query", ["limit=%E2%91%A0", "cursor=%C2%B2", "limit=%D9%A3"])
def test_unicode_digits_in_audit_parameters_are_a_400(client, admin, query):
    refused(client.get(f"/api/v1/audit?{query}", headers=admin), 400)


def test_an_origin_header_is_the_browsers_word(client, admin):
    token, _ = made(client.post(KEYS, headers=admin, json={"name": "b", "allowed_origins": ["https://your-app.com"]}))
    for origin in ("null", ""):
        headers = {**bearer(token), "Origin": origin, "Referer": "https://your-app.com/page"}
        refused(client.post(CHAT, headers=headers, json=chat()), 403, "origin_not_allowed")
    ok = client.post(CHAT, headers={**bearer(token), "Referer": "https://your-app.com/page"}, json=chat())
    assert ok.status_code == 200


def test_every_front_answers_the_rate_limit_headers(client, admin):
    token, _ = made(client.post(KEYS, headers=admin, json={"name": "r", "rpm": 50}))
    answer = client.post("/api/v1/completions", headers=bearer(token), json={"model": "sim/fast", "prompt": "hi"})
    assert answer.status_code == 200 and answer.headers["X-RateLimit-Limit"] == "50", answer.headers


@pytest.mark.parametrize("body", [{"grace_seconds": "5"}, {"grace_seconds": True}, {"grace_seconds": 1.5}])
def test_rotate_bodies_are_strict(client, admin, body):
    _, key = made(client.post(KEYS, headers=admin, json={"name": "x"}))
    refused(client.post(f"{KEYS}/{key['hash']}/rotate", headers=admin, json=body), 400)


def test_a_disabled_keys_origin_gets_no_preflight(client, admin):
    _, key = made(client.post(KEYS, headers=admin, json={"name": "b", "allowed_origins": ["https://only-me.com"]}))

    def preflight():
        return client.options(CHAT, headers={"Origin": "https://only-me.com",
                                             "Access-Control-Request-Method": "POST"}).status_code

    assert preflight() == 204
    assert client.patch(f"{KEYS}/{key['hash']}", headers=admin, json={"disabled": True}).status_code == 200
    assert preflight() == 403
    assert client.patch(f"{KEYS}/{key['hash']}", headers=admin, json={"disabled": False}).status_code == 200
    assert preflight() == 204


def test_an_unreadable_upstream_retry_after_is_ignored():
    from shared.providers.base import retry_after_seconds

    assert retry_after_seconds("²") is None and retry_after_seconds("7") == 7
