import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from functions.gateway.deps import any_key, management_key
from functions.gateway.state import gateway
from shared.errors import NotFoundError
from shared.keys import ApiKey

router = APIRouter(prefix="/api/v1", tags=["keys"])

Limit = Annotated[float, Field(ge=0, le=1_000_000)]
Tags = Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]], Field(max_length=16)]


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    limit: Limit | None = None
    tags: Tags = []


class UpdateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    disabled: bool | None = None
    limit: Limit | None = None
    tags: Tags | None = None


Manager = Annotated[ApiKey, Depends(management_key)]
KeyHash = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]


@router.post("/keys", status_code=201, summary="Create an inference key (its secret is shown once)")
async def create_key(body: CreateKey, _: Manager) -> JSONResponse:
    token, key = await asyncio.to_thread(gateway().keys.create, body.name, limit=body.limit,
                                      tags=tuple(dict.fromkeys(body.tags)))
    return JSONResponse({"data": key.to_api(), "key": token}, status_code=201)


@router.get("/keys", summary="List inference keys")
async def list_keys(_: Manager, offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    keys = await asyncio.to_thread(gateway().keys.list)
    return {"data": [k.to_api() for k in keys[offset:offset + 100]]}


@router.get("/keys/{key_hash}", summary="One inference key")
async def get_key(key_hash: KeyHash, _: Manager) -> dict:
    key = await asyncio.to_thread(gateway().keys.get, key_hash)
    if key is None or key.kind != "inference":
        raise NotFoundError(f"No key {key_hash!r}", metadata={"hash": key_hash})
    return {"data": key.to_api()}


@router.patch("/keys/{key_hash}", summary="Rename, disable or re-limit a key")
async def update_key(key_hash: KeyHash, body: UpdateKey, _: Manager) -> dict:
    g = gateway()
    clear = "limit" in body.model_fields_set and body.limit is None
    key = await asyncio.to_thread(g.keys.update, key_hash, name=body.name, disabled=body.disabled,
                                  limit=body.limit, clear_limit=clear,
                                  tags=None if body.tags is None else tuple(dict.fromkeys(body.tags)))
    g.auth.forget(key_hash)
    return {"data": key.to_api()}


@router.delete("/keys/{key_hash}", summary="Delete a key")
async def delete_key(key_hash: KeyHash, _: Manager) -> dict:
    g = gateway()
    await asyncio.to_thread(g.keys.delete, key_hash)
    g.auth.forget(key_hash)
    return {"deleted": True}


@router.get("/key", summary="The calling key: usage, limit and what remains")
async def current_key(key: Annotated[ApiKey, Depends(any_key)]) -> dict:
    data = key.to_api()
    data.update(is_free_tier=False, is_provisioning_key=key.kind == "management")
    return {"data": data}
