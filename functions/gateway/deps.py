"""Request dependencies: the caller's key."""

from __future__ import annotations

from fastapi import Request

from functions.gateway.state import gateway
from shared.keys import ApiKey


async def inference_key(request: Request) -> ApiKey:
    return await gateway().auth.authenticate(request.headers.get("authorization"), kind="inference")


async def management_key(request: Request) -> ApiKey:
    return await gateway().auth.authenticate(request.headers.get("authorization"), kind="management")


async def any_key(request: Request) -> ApiKey:
    """Either kind (for `GET /key`): management keys are tried when the token says so."""
    header = request.headers.get("authorization") or ""
    kind = "management" if "sk-sy-mgmt-" in header else "inference"
    return await gateway().auth.authenticate(header, kind=kind)
