"""The OpenAPI document: complete (every route, the bodies RawRoute reads itself), 400 as the validation status (the
API never answers 422), the committed openapi.json in step with it, and /docs working with no network."""

from __future__ import annotations

import json
import re

import pytest

from functions.gateway.openapi import BODIES, COMMITTED


@pytest.fixture(scope="module")
def doc() -> dict:
    from functions.gateway.app import app

    return app.openapi()


def test_the_committed_openapi_json_is_the_document(doc):
    committed = json.loads(COMMITTED.read_text())
    assert committed == json.loads(json.dumps(doc)), \
        "openapi.json is out of date: rewrite it with `python -m functions.gateway.openapi` and commit it"


def test_every_route_is_documented_with_400_and_never_422(doc):
    from fastapi.routing import APIRoute

    from functions.gateway.app import app

    def api_routes(routes, prefix=""):
        for r in routes:
            if isinstance(r, APIRoute):
                yield r
            elif hasattr(r, "original_router"):  # an included router (FastAPI ≥ 0.150)
                yield from api_routes(r.original_router.routes)

    routes = {(r.path, m.lower()) for r in api_routes(app.routes) if r.include_in_schema for m in r.methods}
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert op["responses"]["400"]["content"]["application/json"]["schema"] == \
                    {"$ref": "#/components/schemas/Error"}, (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_a_query_that_fails_validation_is_answered_400_as_documented(client, keys):
    r = client.get("/api/v1/generation", headers={"Authorization": f"Bearer {keys['dev']}"})  # id is required
    assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message", "metadata"}


@pytest.mark.parametrize("path", [p for p in BODIES if not p.startswith("/api/v1/synthetic")])
def test_each_documented_example_is_answered(client, keys, doc, path):
    body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].removeprefix("#/components/schemas/") in doc["components"]["schemas"]
    r = client.post(path, json=body["example"], headers={"Authorization": f"Bearer {keys['dev']}"})
    assert r.status_code == 200, r.text


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from a CDN
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "fonts.googleapis" not in redoc.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        r = client.get(f"/docs/assets/{asset}")
        assert r.status_code == 200 and len(r.content) > 1000
    assert client.get("/docs/assets/..%2Fcore.py").status_code == 404
    assert client.get("/docs/assets/nothing.js").json()["error"]["code"] == 404
