"""Operator changes to the model catalog, without a deploy (management key). See shared/catalog/source.py."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from functions.gateway.deps import management_key
from functions.gateway.state import gateway
from shared.catalog.schema import ModelConfig, ProviderConfig
from shared.errors import BadRequestError

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"], dependencies=[Depends(management_key)])


class Visibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: bool


async def _apply(change) -> None:
    """Write a change, then reload here at once (other processes follow within the refresh interval)."""
    await asyncio.to_thread(change)
    await asyncio.to_thread(gateway().catalogs.refresh_now)


@router.put("/providers", summary="Add or replace a provider")
async def put_provider(provider: ProviderConfig) -> dict:
    store = gateway().catalogs.store
    await _apply(lambda: store.put_provider(provider))
    return {"data": provider.model_dump(exclude_none=True)}


@router.put("/models", summary="Add or replace one endpoint of a model")
async def put_model(model: ModelConfig) -> dict:
    g = gateway()
    if model.provider not in g.catalog.providers:
        raise BadRequestError(f"Unknown provider {model.provider!r}", metadata={"field": "provider"})
    await _apply(lambda: g.catalogs.store.put_model(model))
    return {"data": g.catalog.get(model.id).to_openrouter()}


@router.delete("/models/{author}/{slug}", summary="Remove an endpoint added through this API")
async def delete_model(author: str, slug: str, provider: Annotated[str, Query(min_length=1)]) -> dict:
    store = gateway().catalogs.store
    await _apply(lambda: store.delete_model(f"{author}/{slug}", provider))
    return {"deleted": True}


@router.patch("/models/{author}/{slug}", summary="Hide a model (or show it again)")
async def set_visibility(author: str, slug: str, body: Visibility) -> dict:
    g = gateway()
    model_id = f"{author}/{slug}"
    if not body.hidden:
        await _apply(lambda: g.catalogs.store.set_hidden(model_id, False))
        return {"data": {"id": model_id, "hidden": False}}
    g.catalog.get(model_id)  # 404 for a model that is not there
    await _apply(lambda: g.catalogs.store.set_hidden(model_id, True))
    return {"data": {"id": model_id, "hidden": True}}

