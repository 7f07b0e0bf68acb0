"""Routing policies (virtual models such as `acme/default`) without a deploy (management key: `routes:read` to
read, `routes:write` to change; each change audited with the policy before and after).

Kept in the catalog table next to the catalog overrides and compiled when the catalog loads; every process
picks a change up within the catalog's refresh interval (30 s), the process that made it at once.
Policies from the catalog files (built-in, SWITCHYARD_CONFIG) are listed too; one stored here with the same id
replaces it, and deleting that one brings the file's back. A file's own policy cannot be deleted here (409).
"""

import asyncio

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from functions.gateway.deps import audit, scoped
from functions.gateway.routes.catalog import ConflictError
from functions.gateway.state import gateway
from shared.errors import BadRequestError, NotFoundError
from shared.keys import ApiKey
from shared.routing.policy import RoutePolicy

router = APIRouter(prefix="/api/v1/routes", tags=["routes"])
Reader = Depends(scoped("routes:read"))
Writer = Annotated[ApiKey, Depends(scoped("routes:write"))]


def _listed(policy: RoutePolicy) -> dict:
    return policy.model_dump(mode="json", exclude_defaults=True) | {"object": "route"}


async def _stored(route_id: str) -> dict | None:
    overrides, _ = await asyncio.to_thread(gateway().catalogs.store.load)
    found = next((p for p in overrides.routes if p.id == route_id), None)
    return None if found is None else _listed(found)


@router.get("", summary="Every routing policy", dependencies=[Reader])
async def list_routes() -> dict:
    return {"data": [_listed(p.spec) for p in gateway().catalogs.latest().policies.by_id.values()]}


@router.get("/{author}/{slug}", summary="One routing policy", dependencies=[Reader])
async def get_route(author: str, slug: str) -> dict:
    policy = gateway().catalogs.latest().policies.by_id.get(f"{author}/{slug}")
    if policy is None:
        raise NotFoundError(f"No routing policy {author}/{slug!s}", metadata={"id": f"{author}/{slug}"})
    return {"data": _listed(policy.spec)}


@router.put("", summary="Add or replace a routing policy")
async def put_route(request: Request, policy: RoutePolicy, manager: Writer) -> dict:
    g = gateway()
    catalog = g.catalogs.latest()
    if policy.id in catalog:
        raise BadRequestError(f"{policy.id!r} is a model; a policy needs its own id (use applies_to to route a "
                              "model's requests)", metadata={"field": "id"})
    unknown = catalog.unknown(policy.models())
    if unknown:
        raise BadRequestError(f"Unknown models: {', '.join(unknown)}", metadata={"field": "models", "models": unknown})
    before = await _stored(policy.id)
    await asyncio.to_thread(g.catalogs.store.put_route, policy)
    await asyncio.to_thread(g.catalogs.refresh_now)
    await audit(request, manager, "route.put", policy.id, before=before, after=_listed(policy))
    return {"data": _listed(policy)}


@router.delete("/{author}/{slug}", summary="Remove a routing policy added through this API")
async def delete_route(request: Request, author: str, slug: str, manager: Writer) -> dict:
    g = gateway()
    route_id = f"{author}/{slug}"
    before = await _stored(route_id)
    if await asyncio.to_thread(g.catalogs.store.delete_route, route_id):
        await asyncio.to_thread(g.catalogs.refresh_now)
        await audit(request, manager, "route.delete", route_id, before=before)
        return {"deleted": True}
    if route_id in g.catalogs.latest().policies.by_id:
        raise ConflictError(f"Routing policy {route_id!r} comes from the catalog files (built in or "
                            "SWITCHYARD_CONFIG), not this API: it cannot be deleted here (PUT one of the same id "
                            "to replace it)", metadata={"id": route_id})
    raise NotFoundError(f"No routing policy {route_id!r}", metadata={"id": route_id})
