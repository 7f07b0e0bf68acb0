"""Operator changes to the model catalog, without a deploy (management key with `catalog:write`; each change
audited with the stored entry before and after). See shared/catalog/source.py.

A provider added here is restricted (SWITCHYARD_CONFIG and infra/load_catalog.py are not): its key env var comes
from an allowlist, its secret from under the vendor prefix, its address is never link-local or cloud metadata
(nor loopback or private without SWITCHYARD_CATALOG_API_ALLOW_PRIVATE), checked here on the literal and the
resolved host and again by the HTTP client on every connection. Each refusal is a 400 naming the field.
"""

import asyncio
import socket
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from functions.gateway.deps import audit, scoped
from functions.gateway.state import gateway
from shared.catalog.schema import ModelConfig, ProviderConfig
from shared.catalog.source import api_provider_problem, url_refusal
from shared.config import Settings, get_settings
from shared.errors import BadRequestError, NotFoundError, SwitchyardError
from shared.keys import ApiKey
from shared.providers import http

Writer = Annotated[ApiKey, Depends(scoped("catalog:write"))]
router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"], dependencies=[Depends(scoped("catalog:write"))])
_RESOLVE_SECONDS = 2.0


class ConflictError(SwitchyardError):
    status, error_type = 409, "conflict"


class Visibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: bool


async def _apply(change):
    """Write a change, then reload here at once (other processes follow within the refresh interval)."""
    result = await asyncio.to_thread(change)
    await asyncio.to_thread(gateway().catalogs.refresh_now)
    return result


async def _stored_provider(provider_id: str) -> dict | None:
    overrides, _ = await asyncio.to_thread(gateway().catalogs.store.load)
    found = next((p for p in overrides.providers if p.id == provider_id), None)
    return None if found is None else found.model_dump(exclude_none=True)


async def _stored_model(model_id: str, provider: str) -> dict | None:
    overrides, _ = await asyncio.to_thread(gateway().catalogs.store.load)
    found = next((m for m in overrides.models if m.id == model_id and m.provider == provider), None)
    return None if found is None else found.model_dump(mode="json", exclude_none=True)


async def _resolved_problem(provider: ProviderConfig, settings: Settings) -> str | None:
    """Why base_url's host name resolves to where an API-added provider may not go (None: it does not, or it
    does not resolve now: the HTTP client checks again whenever it connects)."""
    parts = urlsplit(provider.base_url or "")
    host = parts.hostname or ""
    if not host or http.literal_address(host) is not None:
        return None
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 443, type=socket.SOCK_STREAM), _RESOLVE_SECONDS)
    except (OSError, TimeoutError):
        return None
    for *_, sockaddr in infos:
        address = http.literal_address(str(sockaddr[0]).split("%", 1)[0])
        why = http.refused_address(address, settings.catalog_api_allow_private) if address else None
        if why:
            return url_refusal(host, address, why, settings)
    return None


@router.put("/providers", summary="Add or replace a provider")
async def put_provider(request: Request, provider: ProviderConfig, manager: Writer) -> dict:
    g, settings = gateway(), get_settings()
    provider = provider.model_copy(update={"added_by_api": True})  # whatever the body said
    problem = api_provider_problem(provider, settings)
    if problem is None and provider.base_url and (why := await _resolved_problem(provider, settings)):
        problem = ("base_url", why)
    if problem is not None:
        field, why = problem
        raise BadRequestError(f"Invalid request: {field}: {why}", metadata={"field": field})
    before = await _stored_provider(provider.id)
    await _apply(lambda: g.catalogs.store.put_provider(provider))
    after = provider.model_dump(exclude_none=True)
    await audit(request, manager, "catalog.provider.put", provider.id, before=before, after=after)
    return {"data": after}


@router.delete("/providers/{provider_id}", summary="Remove a provider added through this API")
async def delete_provider(request: Request, provider_id: str, manager: Writer) -> dict:
    """Only a provider stored in the catalog table (through this API or infra/load_catalog.py); one of the same
    id from the files comes back. Refused (409) while models stored in the table still name it."""
    g = gateway()
    overrides, _ = await asyncio.to_thread(g.catalogs.store.load)
    if not any(p.id == provider_id for p in overrides.providers):
        if provider_id in g.catalogs.latest().providers:
            raise ConflictError(f"Provider {provider_id!r} comes from the catalog files (built in or "
                                "SWITCHYARD_CONFIG), not this API: it cannot be deleted here",
                                metadata={"id": provider_id})
        raise NotFoundError(f"No provider {provider_id!r} was added through the catalog API",
                            metadata={"id": provider_id})
    users = sorted({m.id for m in overrides.models if m.provider == provider_id})
    if users:
        raise ConflictError(f"Provider {provider_id!r} still serves models added through this API: "
                            f"{', '.join(users)} (delete those endpoints first)",
                            metadata={"id": provider_id, "models": users})
    before = next(p for p in overrides.providers if p.id == provider_id).model_dump(exclude_none=True)
    if not await _apply(lambda: g.catalogs.store.delete_provider(provider_id)):
        raise NotFoundError(f"No provider {provider_id!r} was added through the catalog API",
                            metadata={"id": provider_id})
    await audit(request, manager, "catalog.provider.delete", provider_id, before=before)
    return {"deleted": True}


@router.put("/models", summary="Add or replace one endpoint of a model")
async def put_model(request: Request, model: ModelConfig, manager: Writer) -> dict:
    g = gateway()
    if model.provider not in g.catalogs.latest().providers:
        raise BadRequestError(f"Unknown provider {model.provider!r}", metadata={"field": "provider"})
    before = await _stored_model(model.id, model.provider)
    await _apply(lambda: g.catalogs.store.put_model(model))
    await audit(request, manager, "catalog.model.put", model.id, before=before,
                after=model.model_dump(mode="json", exclude_none=True))
    return {"data": g.catalog.get(model.id).to_openrouter()}


@router.delete("/models/{author}/{slug}", summary="Remove an endpoint added through this API")
async def delete_model(request: Request, author: str, slug: str, provider: Annotated[str, Query(min_length=1)],
                       manager: Writer) -> dict:
    g = gateway()
    model_id = f"{author}/{slug}"
    before = await _stored_model(model_id, provider)
    if await asyncio.to_thread(g.catalogs.store.delete_model, model_id, provider):
        await asyncio.to_thread(g.catalogs.refresh_now)
        await audit(request, manager, "catalog.model.delete", model_id, before=before)
        return {"deleted": True}
    catalog = g.catalogs.latest()
    if model_id in catalog and any(e.provider.id == provider for e in catalog.get(model_id).endpoints):
        raise ConflictError(f"The {provider} endpoint of {model_id!r} comes from the catalog files (built in or "
                            "SWITCHYARD_CONFIG), not this API: it cannot be deleted here (hide the model with "
                            "PATCH instead)", metadata={"id": model_id, "provider": provider})
    raise NotFoundError(f"No endpoint of {model_id!r} on provider {provider!r} was added through the catalog API",
                        metadata={"id": model_id, "provider": provider})


@router.patch("/models/{author}/{slug}", summary="Hide a model (or show it again)")
async def set_visibility(request: Request, author: str, slug: str, body: Visibility, manager: Writer) -> dict:
    g = gateway()
    model_id = f"{author}/{slug}"
    if body.hidden:
        g.catalogs.latest().get(model_id)  # 404 for a model that is not there
    _, hidden = await asyncio.to_thread(g.catalogs.store.load)
    await _apply(lambda: g.catalogs.store.set_hidden(model_id, body.hidden))
    await audit(request, manager, "catalog.model.hide" if body.hidden else "catalog.model.show", model_id,
                before={"id": model_id, "hidden": model_id in hidden}, after={"id": model_id, "hidden": body.hidden})
    return {"data": {"id": model_id, "hidden": body.hidden}}
