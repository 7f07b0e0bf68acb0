"""Routing policies (virtual models such as `acme/default`) without a deploy (management key).

Kept in the catalog table next to the catalog overrides and compiled when the catalog loads; every process
picks a change up within the catalog's refresh interval (30 s), the process that made it at once.
Policies from the catalog files (built-in, SWITCHYARD_CONFIG) are listed too; one stored here with the same id
replaces it, and deleting that one brings the file's back. A file's own policy cannot be deleted here (409).
"""

import asyncio

from fastapi import APIRouter, Depends

from functions.gateway.deps import management_key
from functions.gateway.routes.catalog import ConflictError
from functions.gateway.state import gateway
from shared.errors import BadRequestError, NotFoundError
from shared.routing.policy import RoutePolicy

router = APIRouter(prefix="/api/v1/routes", tags=["routes"], dependencies=[Depends(management_key)])


def _listed(policy: RoutePolicy) -> dict:
    return policy.model_dump(mode="json", exclude_defaults=True) | {"object": "route"}


@router.get("", summary="Every routing policy")
async def list_routes() -> dict:
    return {"data": [_listed(p.spec) for p in gateway().catalogs.latest().policies.by_id.values()]}


@router.get("/{author}/{slug}", summary="One routing policy")
async def get_route(author: str, slug: str) -> dict:
    policy = gateway().catalogs.latest().policies.by_id.get(f"{author}/{slug}")
    if policy is None:
        raise NotFoundError(f"No routing policy {author}/{slug!s}", metadata={"id": f"{author}/{slug}"})
    return {"data": _listed(policy.spec)}


@router.put("", summary="Add or replace a routing policy")
async def put_route(policy: RoutePolicy) -> dict:
    g = gateway()
    catalog = g.catalogs.latest()
    if policy.id in catalog:
        raise BadRequestError(f"{policy.id!r} is a model; a policy needs its own id (use applies_to to route a "
                              "model's requests)", metadata={"field": "id"})
    unknown = catalog.unknown(policy.models())
    if unknown:
        raise BadRequestError(f"Unknown models: {', '.join(unknown)}", metadata={"field": "models", "models": unknown})
    await asyncio.to_thread(g.catalogs.store.put_route, policy)
    await asyncio.to_thread(g.catalogs.refresh_now)
    return {"data": _listed(policy)}


@router.delete("/{author}/{slug}", summary="Remove a routing policy added through this API")
async def delete_route(author: str, slug: str) -> dict:
    g = gateway()
    route_id = f"{author}/{slug}"
    if await asyncio.to_thread(g.catalogs.store.delete_route, route_id):
        await asyncio.to_thread(g.catalogs.refresh_now)
        return {"deleted": True}
    if route_id in g.catalogs.latest().policies.by_id:
        raise ConflictError(f"Routing policy {route_id!r} comes from the catalog files (built in or "
                            "SWITCHYARD_CONFIG), not this API: it cannot be deleted here (PUT one of the same id "
                            "to replace it)", metadata={"id": route_id})
    raise NotFoundError(f"No routing policy {route_id!r}", metadata={"id": route_id})
