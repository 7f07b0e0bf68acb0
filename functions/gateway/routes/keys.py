import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from functions.gateway.deps import any_key, management_key
from functions.gateway.state import gateway
from shared.errors import BadRequestError, NotFoundError
from shared.keys import ApiKey
from shared.keys import restrictions as r

router = APIRouter(prefix="/api/v1", tags=["keys"])

Limit = Annotated[float, Field(ge=0, le=1_000_000)]
Tags = Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]], Field(max_length=16)]
Count = Annotated[int, Field(ge=1, le=10**9)]


def _listed(check, most: int = r.MAX_PATTERNS):
    return Annotated[list[Annotated[str, Field(max_length=300), AfterValidator(check)]],
                     Field(min_length=1, max_length=most), AfterValidator(lambda v: list(r.unique(v)))]


class KeySettings(BaseModel):
    """What a key may do; every field optional (absent or null: unrestricted)."""

    model_config = ConfigDict(extra="forbid")
    limit: Limit | None = None
    limit_reset: Literal["daily", "weekly", "monthly"] | None = None
    tags: Tags = []
    expires_at: Annotated[str, Field(max_length=64), AfterValidator(r.timestamp)] | None = None
    allowed_models: _listed(r.model_pattern) | None = None
    allowed_ips: _listed(r.network) | None = None
    allowed_origins: _listed(r.origin) | None = None
    rpm: Count | None = None
    rpd: Count | None = None
    tpm: Count | None = None
    residency: _listed(r.region, 20) | None = None
    zero_log: bool = False


class CreateKey(KeySettings):
    name: Annotated[str, Field(min_length=1, max_length=100)]


class UpdateKey(KeySettings):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    disabled: bool | None = None
    tags: Tags | None = None
    zero_log: bool | None = None


def _settings(body: BaseModel, fields: set[str]) -> dict[str, Any]:
    """The settings a body gives, tuples where the store keeps tuples (tags are deduplicated)."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(body, name)
        out[name] = tuple(dict.fromkeys(value)) if isinstance(value, list) else value
    return out


def _warnings(allowed_models: list[str] | None) -> list[str]:
    """Patterns that match nothing in the catalog today (kept: a model may be added later, but it is said)."""
    if not allowed_models:
        return []
    catalog = gateway().catalog
    ids = [m.id for m in catalog] + list(catalog.policies.by_id)
    return [f"allowed_models: {p!r} matches no model in the catalog" for p in allowed_models
            if not any(r.model_allowed((p,), i) for i in ids)]


def _future(expires_at: str | None) -> None:
    if expires_at is not None and r.epoch(expires_at) <= time.time():
        raise BadRequestError(f"expires_at {expires_at} is in the past", metadata={"field": "expires_at"})


Manager = Annotated[ApiKey, Depends(management_key)]
KeyHash = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]


@router.post("/keys", status_code=201, summary="Create an inference key (its secret is shown once)")
async def create_key(body: CreateKey, manager: Manager) -> JSONResponse:
    _future(body.expires_at)
    settings = _settings(body, (set(KeySettings.model_fields) & body.model_fields_set) | {"tags"})
    token, key = await asyncio.to_thread(gateway().keys.create, body.name, created_by=manager.key_id, **settings)
    answer = {"data": key.to_api(), "key": token}
    if warnings := _warnings(body.allowed_models):
        answer["warnings"] = warnings
    return JSONResponse(answer, status_code=201)


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


@router.patch("/keys/{key_hash}", summary="Change a key's name, state, limit or restrictions (null clears one)")
async def update_key(key_hash: KeyHash, body: UpdateKey, _: Manager) -> dict:
    g = gateway()
    _future(body.expires_at)
    key = await asyncio.to_thread(g.keys.update, key_hash, **_settings(body, body.model_fields_set))
    g.auth.forget(key_hash)
    answer: dict[str, Any] = {"data": key.to_api()}
    if warnings := _warnings(body.allowed_models):
        answer["warnings"] = warnings
    return answer


class Rotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] = 0


@router.post("/keys/{key_hash}/rotate", summary="A new secret for a key; the old one is accepted for grace_seconds")
async def rotate_key(key_hash: KeyHash, _: Manager, body: Rotate | None = None) -> dict:
    g = gateway()
    grace = (body or Rotate()).grace_seconds
    token, key = await asyncio.to_thread(g.keys.rotate, key_hash, grace_seconds=grace)
    g.auth.forget(key_hash)
    return {"data": key.to_api(), "key": token,
            "old_secret_refused_within_seconds": grace + g.settings.key_cache_seconds}


@router.delete("/keys/{key_hash}", summary="Delete a key")
async def delete_key(key_hash: KeyHash, _: Manager) -> dict:
    g = gateway()
    await asyncio.to_thread(g.keys.delete, key_hash)
    g.auth.forget(key_hash)
    return {"deleted": True}


@router.get("/key", summary="The calling key: usage, limit and what remains")
async def current_key(key: Annotated[ApiKey, Depends(any_key)]) -> dict:
    data = key.to_api()
    data.pop("created_by", None)  # which management key made it is the managers' business
    data.update(is_free_tier=False, is_provisioning_key=key.kind == "management")
    return {"data": data}
