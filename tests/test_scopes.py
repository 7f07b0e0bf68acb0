"""Management scopes: every management route needs one (a new route without one fails here), a key without it
is refused with `scope_missing`, and no key can give more than it holds (scopes, limits)."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from shared.keys import scopes as sc

# Routes any caller may use, or an inference key about itself (each answers its own way; none manages anything).
PUBLIC = {("GET", "/health"), ("POST", "/api/v1/chat/completions"), ("GET", "/api/v1/models"),
          ("GET", "/api/v1/models/{author}/{slug}/endpoints"), ("GET", "/api/v1/key"), ("GET", "/api/v1/rankings"),
          ("GET", "/api/v1/datasets/rankings-daily"),
          # the other inference fronts (an inference key each), the catalog's listings and the offline docs
          ("POST", "/api/v1/completions"), ("POST", "/api/v1/embeddings"), ("POST", "/api/v1/messages"),
          ("POST", "/api/v1/responses"), ("GET", "/api/v1/embeddings/models"), ("GET", "/api/v1/models/count"),
          ("GET", "/api/v1/models/user"), ("GET", "/api/v1/providers"), ("GET", "/docs"),
          ("GET", "/docs/assets/{name}"), ("GET", "/redoc"),
          # the dashboard page (static files: its data is the API's) and the models' license terms it shows
          ("GET", "/dashboard"), ("GET", "/dashboard/{name}"), ("GET", "/api/v1/models/licenses")}
FILLERS = {"key_hash": "0123456789ab", "run_id": "run-0123456789abcdef"}


def _routes(routes):
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI 0.150 includes routers lazily
            yield from _routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def _calls(dependant):
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def app_routes():
    from functions.gateway.app import app

    found = {}
    for route in _routes(app.routes):
        needed = {c.scope for c in _calls(route.dependant) if hasattr(c, "scope")}
        for method in route.methods:
            found[(method, route.path)] = needed
    return found


def scoped_routes():
    return sorted((method, path, next(iter(needed))) for (method, path), needed in app_routes().items() if needed)


def test_every_route_is_public_or_needs_exactly_one_scope(aws):
    from functions.gateway.app import app

    routes = app_routes()
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= set(routes), "a route the walk above does not see"
    unscoped = sorted(r for r, needed in routes.items() if not needed and r not in PUBLIC)
    assert not unscoped, f"management routes without a scope (Depends(scoped(...))): {unscoped}"
    assert all(len(needed) <= 1 for needed in routes.values())
    assert all(not needed for r, needed in routes.items() if r in PUBLIC)
    assert {s for needed in routes.values() for s in needed} <= set(sc.SCOPES)


def _other(scope: str) -> str:
    return "keys:read" if not scope.startswith("keys:") else "audit:read"


@pytest.fixture
def make_key(gateway):
    def make(*scopes, **settings):
        token, _ = gateway.keys.create("scoped", kind="management", scopes=tuple(scopes), **settings)
        return {"Authorization": f"Bearer {token}"}
    return make


@pytest.mark.parametrize(("method", "path", "scope"), scoped_routes())
def test_each_scoped_route_refuses_a_key_without_its_scope_and_admits_one_with_it(client, keys, make_key, method,
                                                                                  path, scope):
    url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: FILLERS.get(m.group(1), "x"), path)
    body = {"__not_a_field__": 1} if method in ("POST", "PUT", "PATCH") else None  # admitted: a 400, no change
    refused = client.request(method, url, headers=make_key(_other(scope)), json=body)
    assert refused.status_code == 403, refused.text
    meta = refused.json()["error"]["metadata"]
    assert (meta["reason"], meta["scope"]) == ("scope_missing", scope)
    for headers in (make_key(scope), make_key("*"), {"Authorization": f"Bearer {keys['admin']}"}):
        admitted = client.request(method, url, headers=headers, json=body)
        assert admitted.status_code not in (401, 403), admitted.text
    if scope.endswith(":read"):  # write implies read
        assert client.request(method, url, headers=make_key(scope[:-4] + "write"), json=body).status_code != 403


def test_an_inference_key_is_not_a_management_key(client, keys):
    dev = {"Authorization": f"Bearer {keys['dev']}"}
    for method, path, _ in scoped_routes():
        if path.startswith(("/api/v1/analytics", "/api/v1/activity", "/api/v1/credits", "/api/v1/generation")):
            continue  # an inference key reads its own usage there
        url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: FILLERS.get(m.group(1), "x"), path)
        refused = client.request(method, url, headers=dev)
        assert refused.status_code == 403 and refused.json()["error"]["metadata"]["reason"] == "key_kind", (method, path)


# -- the vocabulary -------------------------------------------------------------------------------

def test_write_implies_read_and_star_is_everything():
    assert sc.grants(("keys:write",), "keys:read") and not sc.grants(("keys:read",), "keys:write")
    assert sc.grants(None, "audit:read") and sc.grants(("*",), "approvals:write")
    assert not sc.grants(("keys:write",), "audit:read")
    assert sc.missing(("keys:write",), ("keys:read", "audit:read")) == ["audit:read"]
    assert sc.missing(None, None) == [] and "audit:read" in sc.missing(("keys:write",), None)
    assert sc.normalise(["keys:read", "keys:read", "*"]) == ("*",)
    with pytest.raises(ValueError):
        sc.normalise(["keys:admin"])


# -- management keys through the API, and escalation ----------------------------------------------

def _error(response, status, reason):
    assert response.status_code == status, response.text
    assert response.json()["error"]["metadata"]["reason"] == reason, response.text
    return response.json()["error"]["metadata"]


def test_management_keys_are_made_read_and_removed_through_the_api(client, keys):
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    made = client.post("/api/v1/keys", headers=admin, json={"name": "auditor", "management": True,
                                                            "scopes": ["audit:read"]})
    assert made.status_code == 201, made.text
    token, data = made.json()["key"], made.json()["data"]
    assert token.startswith("sk-sy-mgmt-") and data["is_management_key"] and data["scopes"] == ["audit:read"]
    auditor = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/audit", headers=auditor).status_code == 200
    _error(client.get("/api/v1/keys", headers=auditor), 403, "scope_missing")
    listed = client.get("/api/v1/keys?management=true", headers=admin).json()["data"]
    assert data["hash"] in {k["hash"] for k in listed}
    assert data["hash"] not in {k["hash"] for k in client.get("/api/v1/keys", headers=admin).json()["data"]}
    assert client.get(f"/api/v1/keys/{data['hash']}", headers=admin).json()["data"]["scopes"] == ["audit:read"]
    changed = client.patch(f"/api/v1/keys/{data['hash']}", headers=admin, json={"scopes": ["audit:read", "keys:read"]})
    assert changed.json()["data"]["scopes"] == ["audit:read", "keys:read"]
    assert client.get("/api/v1/keys", headers=auditor).status_code == 200  # picked up at once: the cache forgets it
    assert client.patch(f"/api/v1/keys/{data['hash']}", headers=admin, json={"disabled": True}).status_code == 200
    assert client.get("/api/v1/audit", headers=auditor).status_code == 401  # disabled
    assert client.delete(f"/api/v1/keys/{data['hash']}", headers=admin).json() == {"deleted": True}
    # the first key (no scopes stored) holds everything
    assert client.get("/api/v1/key", headers=admin).json()["data"]["scopes"] == ["*"]


@pytest.mark.parametrize(("body", "field"), [
    ({"management": True}, "scopes"), ({"scopes": ["keys:read"]}, "scopes"),
    ({"management": True, "scopes": ["keys:admin"]}, "scopes"), ({"management": True, "scopes": []}, "scopes")])
def test_bad_scopes_are_a_400_naming_the_field(client, keys, body, field):
    r = client.post("/api/v1/keys", headers={"Authorization": f"Bearer {keys['admin']}"}, json={"name": "x", **body})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == field, r.text


def test_scopes_cannot_be_set_on_an_inference_key(client, keys):
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    key = client.post("/api/v1/keys", headers=admin, json={"name": "app"}).json()["data"]
    r = client.patch(f"/api/v1/keys/{key['hash']}", headers=admin, json={"scopes": ["*"]})
    assert r.status_code == 400 and r.json()["error"]["metadata"]["field"] == "scopes"


def test_no_key_gives_scopes_it_does_not_hold(client, keys, make_key, gateway):
    writer = make_key("keys:write")
    meta = _error(client.post("/api/v1/keys", headers=writer, json={"name": "x", "management": True,
                                                                     "scopes": ["*"]}), 403, "scope_escalation")
    assert "audit:read" in meta["scopes"]
    _error(client.post("/api/v1/keys", headers=writer, json={"name": "x", "management": True,
                                                              "scopes": ["keys:read", "audit:read"]}),
           403, "scope_escalation")
    same = client.post("/api/v1/keys", headers=writer, json={"name": "peer", "management": True,
                                                              "scopes": ["keys:write"]})
    less = client.post("/api/v1/keys", headers=writer, json={"name": "reader", "management": True,
                                                              "scopes": ["keys:read"]})
    assert same.status_code == less.status_code == 201
    reader = less.json()["data"]["hash"]
    _error(client.patch(f"/api/v1/keys/{reader}", headers=writer, json={"scopes": ["audit:read"]}),
           403, "scope_escalation")
    cleared = client.patch(f"/api/v1/keys/{reader}", headers=writer, json={"scopes": None})  # None once meant "*"
    assert cleared.status_code == 400 and cleared.json()["error"]["metadata"]["field"] == "scopes", cleared.text
    # nor itself
    me = same.json()
    mine = {"Authorization": f"Bearer {me['key']}"}
    _error(client.patch(f"/api/v1/keys/{me['data']['hash']}", headers=mine, json={"scopes": ["*"]}),
           403, "scope_escalation")
    # a read-only key makes nothing
    _error(client.post("/api/v1/keys", headers=make_key("keys:read"), json={"name": "x"}), 403, "scope_missing")


def test_a_lesser_key_cannot_take_over_or_remove_a_stronger_one(client, keys, make_key, gateway):
    admin_id = next(k.key_id for k in gateway.keys.list(kind="management") if k.scopes is None)
    writer = make_key("keys:write")
    _error(client.post(f"/api/v1/keys/{admin_id}/rotate", headers=writer, json={}), 403, "scope_escalation")
    _error(client.patch(f"/api/v1/keys/{admin_id}", headers=writer, json={"disabled": True}), 403, "scope_escalation")
    _error(client.delete(f"/api/v1/keys/{admin_id}", headers=writer), 403, "scope_escalation")
    assert gateway.keys.get(admin_id) is not None and not gateway.keys.get(admin_id).disabled


def test_a_limited_key_gives_no_more_than_its_limit(client, keys, make_key, gateway):
    limited = make_key("keys:write", limit=5.0)
    _error(client.post("/api/v1/keys", headers=limited, json={"name": "x"}), 403, "limit_required")
    meta = _error(client.post("/api/v1/keys", headers=limited, json={"name": "x", "limit": 5.01}),
                  403, "limit_exceeds_own")
    assert (meta["limit"], meta["own_limit"]) == (5.01, 5.0)
    _error(client.post("/api/v1/keys", headers=limited, json={"name": "m", "management": True,
                                                               "scopes": ["keys:write"]}), 403, "limit_required")
    made = client.post("/api/v1/keys", headers=limited, json={"name": "ok", "limit": 5})
    assert made.status_code == 201
    mine = made.json()["data"]["hash"]
    _error(client.patch(f"/api/v1/keys/{mine}", headers=limited, json={"limit": 50}), 403, "limit_exceeds_own")
    _error(client.patch(f"/api/v1/keys/{mine}", headers=limited, json={"limit": None}), 403, "limit_required")
    assert client.patch(f"/api/v1/keys/{mine}", headers=limited, json={"limit": 2}).status_code == 200
    # an unlimited key made by someone else: not changed, nor rotated (its new secret is its rights)...
    _, unlimited = gateway.keys.create("big")
    _error(client.patch(f"/api/v1/keys/{unlimited.key_id}", headers=limited, json={"name": "mine now"}),
           403, "limit_required")
    _error(client.post(f"/api/v1/keys/{unlimited.key_id}/rotate", headers=limited, json={}), 403, "limit_required")
    # ...but it may be switched off, or deleted: that gives nothing
    assert client.patch(f"/api/v1/keys/{unlimited.key_id}", headers=limited, json={"disabled": True}).status_code == 200
    assert client.delete(f"/api/v1/keys/{unlimited.key_id}", headers=limited).status_code == 200
    assert gateway.keys.get(mine).limit == 2
