"""Request dependencies: the caller's key, its address, the key's per-request restrictions, the scope a
management route needs (`scoped`), and the audit entry a management action leaves (`audit`)."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any, Awaitable, Callable

from fastapi import Request

from functions.gateway.state import gateway
from shared.errors import ForbiddenError
from shared.keys import ApiKey
from shared.keys import restrictions as r
from shared.keys import scopes

CORS_ORIGIN = "cors_origin"  # scope["state"] key: the origin a key allowed, answered by the Cors middleware


def client_address(scope: dict[str, Any]) -> str | None:
    """The caller's address: the socket's peer (under Mangum: API Gateway's `sourceIp`). Only when that peer is
    a configured trusted proxy (SWITCHYARD_TRUSTED_PROXIES) is X-Forwarded-For read, from the right, up to the
    first address that is not itself a trusted proxy (a hop that is not an address ends the walk at the peer)."""
    client = scope.get("client")
    address = client[0] if client else None
    trusted = gateway().trusted_proxies
    if not trusted or not address or not r.ip_allowed(trusted, address):
        return address
    forwarded = [v.decode("latin-1") for n, v in scope["headers"] if n == b"x-forwarded-for"]
    hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        if not r.is_address(hop):
            return address  # not written by a proxy we trust: the nearest peer we know is the client we name
        if not r.ip_allowed(trusted, hop):
            return hop
    return hops[0] if hops else address


async def inference_key(request: Request, *, admitted: bool = True, authorization: str | None = None) -> ApiKey:
    """The calling inference key; with `admitted` (the default) its address and origin restrictions checked too
    (the chat route checks them itself, to meter a refusal). `authorization` stands in for a missing
    Authorization header (Anthropic's clients send the key as `x-api-key`: functions/gateway/inference.py)."""
    key = await gateway().auth.authenticate(request.headers.get("authorization") or authorization,
                                            kind="inference", source=client_address(request.scope))
    if admitted and (key.allowed_ips is not None or key.allowed_origins is not None):
        admit(key, request.scope)
    return key


async def admitted_key(request: Request) -> ApiKey:
    """`inference_key` as a route dependency: the key from the headers only, address and origin checked (its
    keyword arguments would otherwise be query parameters a caller could set)."""
    return await inference_key(request)


async def management_key(request: Request) -> ApiKey:
    key = await gateway().auth.authenticate(request.headers.get("authorization"), kind="management",
                                            source=client_address(request.scope))
    if key.allowed_ips is not None:
        admit(key, request.scope)
    return key


async def any_key(request: Request) -> ApiKey:
    """Either kind (for `GET /key`, analytics, generation): management keys are tried when the token says so.
    A key's `allowed_ips` hold here as everywhere; its `allowed_origins` do not (reading its own usage from a
    server names no origin, and reveals nothing the secret does not)."""
    header = request.headers.get("authorization") or ""
    kind = "management" if "sk-sy-mgmt-" in header else "inference"
    address = client_address(request.scope)
    key = await gateway().auth.authenticate(header, kind=kind, source=address)
    if key.allowed_ips is not None and not r.ip_allowed(key.allowed_ips, address):
        raise ForbiddenError(f"This key may not be used from {address or 'an unknown address'}",
                             metadata={"reason": "ip_not_allowed", "client_ip": address})
    return key


KeyDependency = Callable[[Request], Awaitable[ApiKey]]


@lru_cache(maxsize=None)
def scoped(scope: str) -> KeyDependency:
    """A management key that holds `scope` (403, reason `scope_missing`, otherwise): `Depends(scoped("keys:write"))`.
    One function a scope, so that a router's dependency and an endpoint's of the same scope authenticate once."""
    if scope not in scopes.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(request: Request) -> ApiKey:
        key = await management_key(request)
        scopes.require(key.scopes, scope)
        return key

    dependency.scope = scope  # type: ignore[attr-defined]  (read by tests/test_scopes.py over every route)
    dependency.__name__ = dependency.__qualname__ = "scoped_" + scope.replace(":", "_").replace("*", "all")
    return dependency


@lru_cache(maxsize=None)
def caller(scope: str) -> KeyDependency:
    """Either kind, for routes that answer an inference key about itself and a management key about everyone
    (analytics, generation): a management key must hold `scope`."""
    if scope not in scopes.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(request: Request) -> ApiKey:
        key = await any_key(request)
        if key.kind == "management":
            scopes.require(key.scopes, scope)
        return key

    dependency.scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = dependency.__qualname__ = "caller_" + scope.replace(":", "_")
    return dependency


async def audit(request: Request, actor: ApiKey, action: str, target: str, *, before: dict[str, Any] | None = None,
                after: dict[str, Any] | None = None) -> None:
    """Append a management action to the audit log, with the caller's address and the request's id. Called once
    the action is done: a failed action leaves no entry, and a failed append answers 503 (the action stands)."""
    await asyncio.to_thread(gateway().audit.append, action=action, actor=actor, target=target, before=before,
                            after=after, source_ip=client_address(request.scope),
                            request_id=request.scope.get("state", {}).get("generation_id"))


def admit(key: ApiKey, scope: dict[str, Any]) -> None:
    """The key's address and origin restrictions, or the 403 that names which one refused."""
    if key.allowed_ips is not None:
        address = client_address(scope)
        if not r.ip_allowed(key.allowed_ips, address):
            raise ForbiddenError(f"This key may not be used from {address or 'an unknown address'}",
                                 metadata={"reason": "ip_not_allowed", "client_ip": address})
    if key.allowed_origins is not None:
        headers = dict(_headers(scope, (b"origin", b"referer", b"http-referer")))
        # An Origin, when sent, is the browser's word (`null`: a sandboxed page, refused); Referer only without one.
        found = r.origin_of(headers[b"origin"]) if b"origin" in headers else \
            r.origin_of(headers.get(b"http-referer") or headers.get(b"referer"))
        if not r.origin_allowed(key.allowed_origins, found):
            raise ForbiddenError(f"This key may not be used from origin {found}" if found else
                                 "This key only answers calls from its allowed origins; the call named none "
                                 "(Origin or Referer)", metadata={"reason": "origin_not_allowed", "origin": found})
        if b"origin" in headers:
            scope["state"][CORS_ORIGIN] = found


def _headers(scope: dict[str, Any], names: tuple[bytes, ...]) -> list[tuple[bytes, str]]:
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return list(found.items())
