"""Keys: inference keys and management keys, created, read, changed, rotated and deleted by a management key
with the `keys:read` / `keys:write` scopes, never beyond that key's own rights (shared/keys/scopes.py), each
change audited. The first management key comes only from `infra.admin_key` / `make run`."""

import asyncio
import time
import unicodedata
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from functions.gateway.deps import any_key, audit, scoped
from functions.gateway.state import gateway
from shared.errors import BadRequestError, ForbiddenError, NotFoundError
from shared.keys import ApiKey
from shared.keys import restrictions as r
from shared.keys import scopes as sc

router = APIRouter(prefix="/api/v1", tags=["keys"])

def _limit(value: float) -> float:
    if 0 < value < 1e-9:
        raise ValueError("a limit is 0 or at least 0.000000001 (USD)")
    return value


def _name(value: str) -> str:
    """A key's name is shown in lists and logs: no control or formatting characters (NUL, RTL overrides...)."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in value):
        raise ValueError("a name cannot hold control or invisible formatting characters")
    if not value.strip():
        raise ValueError("a name cannot be blank")
    return value


Limit = Annotated[float, Field(ge=0, le=1_000_000), AfterValidator(_limit)]
Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_name)]
Tags = Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]], Field(max_length=16)]
Count = Annotated[int, Field(ge=1, le=10**9)]
Scopes = Annotated[list[Annotated[str, Field(max_length=40)]], Field(min_length=1, max_length=len(sc.SCOPES)),
                   AfterValidator(lambda v: list(sc.normalise(v)))]


def _listed(check, most: int = r.MAX_PATTERNS):
    return Annotated[list[Annotated[str, Field(max_length=300), AfterValidator(check)]],
                     Field(min_length=1, max_length=most), AfterValidator(lambda v: list(r.unique(v)))]


class KeySettings(BaseModel):
    """What a key may do; every field optional (absent or null: unrestricted)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "10" is not 10, nor 1 true
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
    name: Name
    management: bool = False  # a management key: `scopes` then says what it may do
    scopes: Scopes | None = None


class UpdateKey(KeySettings):
    name: Name | None = None
    disabled: bool | None = None
    tags: Tags | None = None
    zero_log: bool | None = None
    scopes: Scopes | None = None  # management keys only


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


# What only an inference key's calls are checked against: a management key given one would ignore it.
INFERENCE_ONLY = ("allowed_models", "allowed_origins", "rpm", "rpd", "tpm", "residency", "zero_log")


def _inference_only(settings: dict[str, Any]) -> None:
    given = [f for f in INFERENCE_ONLY if settings.get(f) not in (None, False)]
    if given:
        raise BadRequestError(f"{given[0]} applies to inference keys' calls; a management key makes none "
                              f"(management keys take limit, limit_reset, expires_at, allowed_ips, tags, scopes)",
                              metadata={"field": given[0]})


def _limit_reset(limit: float | None, limit_reset: str | None) -> None:
    if limit_reset is not None and limit is None:
        raise BadRequestError("limit_reset needs a limit (it says how often the limit starts again)",
                              metadata={"field": "limit_reset"})


RIGHTS = ("scopes", "limit", "limit_reset", "allowed_ips", "expires_at")  # what check_grant compares


def _rights(key: ApiKey) -> dict[str, Any]:
    return {f: getattr(key, f) for f in RIGHTS}


def _grant(manager: ApiKey, management: bool, key: dict[str, Any]) -> None:
    sc.check_grant(manager, management=management, scopes=key.get("scopes"), limit=key.get("limit"),
                   limit_reset=key.get("limit_reset"), allowed_ips=key.get("allowed_ips"),
                   expires_at=key.get("expires_at"))


def _future(expires_at: str | None) -> None:
    if expires_at is not None and r.epoch(expires_at) <= time.time():
        raise BadRequestError(f"expires_at {expires_at} is in the past", metadata={"field": "expires_at"})


Reader = Annotated[ApiKey, Depends(scoped("keys:read"))]
Writer = Annotated[ApiKey, Depends(scoped("keys:write"))]
KeyHash = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]


def _scopes(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


async def _target(key_hash: str) -> ApiKey:
    key = await asyncio.to_thread(gateway().keys.get, key_hash)
    if key is None:
        raise NotFoundError(f"No key {key_hash!r}", metadata={"hash": key_hash})
    return key


def _may_manage(manager: ApiKey, target: ApiKey) -> None:
    """A management key is changed, rotated or deleted only by one that holds every scope it has."""
    if target.kind == "management" and (beyond := sc.missing(manager.scopes, target.scopes)):
        raise ForbiddenError("A key cannot manage a management key that holds scopes it does not: "
                             + ", ".join(beyond), metadata={"reason": "scope_escalation", "scopes": beyond})


@router.post("/keys", status_code=201, summary="Create a key (its secret is shown once); management keys with scopes")
async def create_key(request: Request, body: CreateKey, manager: Writer) -> JSONResponse:
    _future(body.expires_at)
    if body.management and body.scopes is None:
        raise BadRequestError("A management key needs its scopes (e.g. [\"keys:read\"], or [\"*\"])",
                              metadata={"field": "scopes"})
    if not body.management and body.scopes is not None:
        raise BadRequestError("scopes are for management keys (\"management\": true)", metadata={"field": "scopes"})
    settings = _settings(body, (set(KeySettings.model_fields) & body.model_fields_set) | {"tags"})
    kind = "management" if body.management else "inference"
    _limit_reset(settings.get("limit"), settings.get("limit_reset"))
    if body.management:
        _inference_only(settings)
        settings["scopes"] = _scopes(body.scopes)
    _grant(manager, body.management, settings)
    token, key = await asyncio.to_thread(gateway().keys.create, body.name, kind=kind, created_by=manager.key_id,
                                         **settings)
    await audit(request, manager, "key.create", key.key_id, after=key.to_api())
    answer = {"data": key.to_api(), "key": token}
    if warnings := _warnings(body.allowed_models):
        answer["warnings"] = warnings
    return JSONResponse(answer, status_code=201)


@router.get("/keys", summary="List inference keys (management=true: management keys)")
async def list_keys(_: Reader, offset: Annotated[int, Query(ge=0)] = 0, management: bool = False) -> dict:
    keys = await asyncio.to_thread(gateway().keys.list, kind="management" if management else "inference")
    return {"data": [k.to_api() for k in keys[offset:offset + 100]]}


@router.get("/keys/{key_hash}", summary="One key")
async def get_key(key_hash: KeyHash, _: Reader) -> dict:
    return {"data": (await _target(key_hash)).to_api()}


@router.patch("/keys/{key_hash}", summary="Change a key's name, state, limit, restrictions or scopes (null clears one)")
async def update_key(request: Request, key_hash: KeyHash, body: UpdateKey, manager: Writer) -> dict:
    g = gateway()
    _future(body.expires_at)
    current = await _target(key_hash)
    changes = _settings(body, body.model_fields_set)
    management = current.kind == "management"
    if "scopes" in changes and not management:
        raise BadRequestError("scopes are for management keys", metadata={"field": "scopes"})
    if "scopes" in changes and changes["scopes"] is None:
        raise BadRequestError("scopes cannot be cleared: give the scopes the key keeps (e.g. [\"keys:read\"])",
                              metadata={"field": "scopes"})
    if management:
        _inference_only(changes)
    if "limit" in changes and changes["limit"] is None and "limit_reset" not in changes:
        changes["limit_reset"] = None  # no limit, nothing to reset
    after = {**_rights(current), **{f: v for f, v in changes.items() if f in RIGHTS}}
    _limit_reset(after["limit"], after["limit_reset"])
    _may_manage(manager, current)
    if changes != {"disabled": True}:  # switching a key off gives nothing
        _grant(manager, management, _rights(current))  # a key above the caller is not the caller's to shape
        _grant(manager, management, after)  # (lowered first, it could then be rotated: its secret taken)
    key = await asyncio.to_thread(g.keys.update, key_hash, kind=current.kind, **changes)
    g.auth.forget(key_hash)
    await audit(request, manager, "key.update", key_hash, before=current.to_api(), after=key.to_api())
    answer: dict[str, Any] = {"data": key.to_api()}
    if warnings := _warnings(body.allowed_models):
        answer["warnings"] = warnings
    return answer


class Rotate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    grace_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] = 0


@router.post("/keys/{key_hash}/rotate", summary="A new secret for a key; the old one is accepted for grace_seconds")
async def rotate_key(request: Request, key_hash: KeyHash, manager: Writer, body: Rotate | None = None) -> dict:
    """Whoever rotates a key holds its new secret: only a key that could have created it may."""
    g = gateway()
    grace = (body or Rotate()).grace_seconds
    current = await _target(key_hash)
    _may_manage(manager, current)
    _grant(manager, current.kind == "management", _rights(current))
    token, key = await asyncio.to_thread(g.keys.rotate, key_hash, grace_seconds=grace, kind=current.kind)
    g.auth.forget(key_hash)
    await audit(request, manager, "key.rotate", key_hash, before=current.to_api(),
                after={**key.to_api(), "grace_seconds": grace})
    return {"data": key.to_api(), "key": token,
            "old_secret_refused_within_seconds": grace + g.settings.key_cache_seconds}


@router.delete("/keys/{key_hash}", summary="Delete a key")
async def delete_key(request: Request, key_hash: KeyHash, manager: Writer) -> dict:
    g = gateway()
    current = await _target(key_hash)
    _may_manage(manager, current)
    await asyncio.to_thread(g.keys.delete, key_hash, kind=current.kind)
    g.auth.forget(key_hash)
    await audit(request, manager, "key.delete", key_hash, before=current.to_api())
    return {"deleted": True}


@router.get("/key", summary="The calling key: usage, limit and what remains")
async def current_key(key: Annotated[ApiKey, Depends(any_key)]) -> dict:
    data = key.to_api()
    data.pop("created_by", None)  # which management key made it is the managers' business
    data.update(is_free_tier=False, is_provisioning_key=key.kind == "management")
    return {"data": data}
