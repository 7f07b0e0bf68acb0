"""The SDK (sdk/switchyard_client) and the committed openapi.json cannot drift: every operation under /api/v1 has an
SDK method, and every SDK method calls an operation the document has, with the parameters it declares."""

from __future__ import annotations

import json
import string

import pytest
from switchyard_client import Client
from switchyard_client._operations import operations

from functions.gateway.openapi import COMMITTED

# Operations the SDK leaves out on purpose: only routes that answer neither JSON nor a download (an HTML page,
# text/plain), each with its reason. Empty today.
EXEMPT: dict[tuple[str, str], str] = {}
DOC = json.loads(COMMITTED.read_text())
OPERATIONS = {(method.upper(), path): op for path, methods in DOC["paths"].items() for method, op in methods.items()
              if path.startswith("/api/v1/")}
SDK = operations(Client)


def _params(op: dict, where: str) -> dict[str, bool]:
    return {p["name"]: p.get("required", False) for p in op.get("parameters", []) if p["in"] == where}


def test_every_api_operation_has_an_sdk_method():
    covered = {(o.method, o.path) for o in SDK.values()}
    missing = sorted(set(OPERATIONS) - covered - set(EXEMPT))
    assert not missing, f"operations without an SDK method (add one to sdk/switchyard_client/client.py): {missing}"
    assert not set(EXEMPT) - set(OPERATIONS), "EXEMPT lists operations the document no longer has"


def test_the_document_is_read_and_the_sdk_is_not_empty():
    assert len(OPERATIONS) > 40 and len(SDK) >= len(OPERATIONS) - len(EXEMPT)


@pytest.mark.parametrize("name", sorted(SDK))
def test_each_sdk_method_matches_its_operation(name):
    sdk = SDK[name]
    op = OPERATIONS.get((sdk.method, sdk.path))
    assert op is not None, f"{name}: {sdk.method} {sdk.path} is not in openapi.json"
    path_params = {n for _, n, _, _ in string.Formatter().parse(sdk.path) if n}
    assert path_params == set(_params(op, "path")), name
    query = _params(op, "query")
    assert sdk.query <= set(query), f"{name} sends query parameters the document lacks: {sdk.query - set(query)}"
    required = {n for n, needed in query.items() if needed}
    assert required <= sdk.query, f"{name} cannot send the required {required - sdk.query}"
    if sdk.free_query:
        # the route reads its query itself; once the document lists its parameters, the SDK must declare them
        assert not query, f"{name}: openapi.json now lists {sorted(query)}: declare them instead of free_query"
    assert sdk.body == ("requestBody" in op), f"{name}: body {sdk.body}, the document says otherwise"


def test_no_sdk_method_sends_a_credential_as_a_query_parameter():
    assert not any({"authorization", "admitted", "api_key", "key_hash"} & o.query for o in SDK.values())
