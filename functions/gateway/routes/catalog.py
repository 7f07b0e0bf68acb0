"""Operator changes to the model catalog, without a deploy (management key). See shared/catalog/source.py.

A provider added here is restricted (SWITCHYARD_CONFIG and infra/load_catalog.py are not): its key env var comes
from an allowlist, its secret from under the vendor prefix, its address is never link-local or cloud metadata
(nor loopback or private without SWITCHYARD_CATALOG_API_ALLOW_PRIVATE), checked here on the literal and the
resolved host and again by the HTTP client on every connection. Each refusal is a 400 naming the field.
"""

import asyncio
import socket
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from functions.gateway.deps import management_key
from functions.gateway.state import gateway
from shared.catalog.schema import ModelConfig, ProviderConfig
from shared.catalog.source import api_provider_problem, url_refusal
from shared.config import Settings, get_settings
from shared.errors import BadRequestError, NotFoundError, SwitchyardError
from shared.providers import http

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"], dependencies=[Depends(management_key)])
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
async def put_provider(provider: ProviderConfig) -> dict:
    g, settings = gateway(), get_settings()
    provider = provider.model_copy(update={"added_by_api": True})  # whatever the body said
    problem = api_provider_problem(provider, settings)
    if problem is None and provider.base_url and (why := await _resolved_problem(provider, settings)):
        problem = ("base_url", why)
    if problem is not None:
        field, why = problem
        raise BadRequestError(f"Invalid request: {field}: {why}", metadata={"field": field})
    await _apply(lambda: g.catalogs.store.put_provider(provider))
    return {"data": provider.model_dump(exclude_none=True)}


@router.delete("/providers/{provider_id}", summary="Remove a provider added through this API")
async def delete_provider(provider_id: str) -> dict:
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
    if not await _apply(lambda: g.catalogs.store.delete_provider(provider_id)):
        raise NotFoundError(f"No provider {provider_id!r} was added through the catalog API",
                            metadata={"id": provider_id})
    return {"deleted": True}


@router.put("/models", summary="Add or replace one endpoint of a model")
async def put_model(model: ModelConfig) -> dict:
    g = gateway()
    if model.provider not in g.catalogs.latest().providers:
        raise BadRequestError(f"Unknown provider {model.provider!r}", metadata={"field": "provider"})
    await _apply(lambda: g.catalogs.store.put_model(model))
    return {"data": g.catalog.get(model.id).to_openrouter()}


@router.delete("/models/{author}/{slug}", summary="Remove an endpoint added through this API")
async def delete_model(author: str, slug: str, provider: Annotated[str, Query(min_length=1)]) -> dict:
    g = gateway()
    model_id = f"{author}/{slug}"
    if await asyncio.to_thread(g.catalogs.store.delete_model, model_id, provider):
        await asyncio.to_thread(g.catalogs.refresh_now)
        return {"deleted": True}
    catalog = g.catalogs.latest()
    if model_id in catalog and any(e.provider.id == provider for e in catalog.get(model_id).endpoints):
        raise ConflictError(f"The {provider} endpoint of {model_id!r} comes from the catalog files (built in or "
                            "SWITCHYARD_CONFIG), not this API: it cannot be deleted here (hide the model with "
                            "PATCH instead)", metadata={"id": model_id, "provider": provider})
    raise NotFoundError(f"No endpoint of {model_id!r} on provider {provider!r} was added through the catalog API",
                        metadata={"id": model_id, "provider": provider})


@router.patch("/models/{author}/{slug}", summary="Hide a model (or show it again)")
async def set_visibility(author: str, slug: str, body: Visibility) -> dict:
    g = gateway()
    model_id = f"{author}/{slug}"
    if not body.hidden:
        await _apply(lambda: g.catalogs.store.set_hidden(model_id, False))
        return {"data": {"id": model_id, "hidden": False}}
    g.catalogs.latest().get(model_id)  # 404 for a model that is not there
    await _apply(lambda: g.catalogs.store.set_hidden(model_id, True))
    return {"data": {"id": model_id, "hidden": True}}
