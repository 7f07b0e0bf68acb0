"""`GET /api/v1/providers`: the providers of the catalog, in OpenRouter's shape (name, slug and policy links) with
ours beside it: the wire format, whether prompts may be stored (`data_collection`), whether the gateway holds a
key for it, and how many models it serves."""

from fastapi import APIRouter

from functions.gateway.state import gateway

router = APIRouter(prefix="/api/v1", tags=["providers"])


@router.get("/providers", summary="The catalog's providers (OpenRouter's shape)")
async def list_providers() -> dict:
    g = gateway()
    g.catalogs.maybe_refresh()
    catalog = g.catalog
    served: dict[str, int] = {}
    available: dict[str, bool] = {}
    for model in catalog:
        for e in model.endpoints:
            served[e.provider.id] = served.get(e.provider.id, 0) + 1
            available[e.provider.id] = available.get(e.provider.id, False) or e.has_credentials
    return {"data": [{"name": p.name or p.id, "slug": p.id, "privacy_policy_url": None, "terms_of_service_url": None,
                      "status_page_url": None, "kind": p.kind, "data_collection": p.data_collection,
                      "available": available.get(p.id, False), "models": served.get(p.id, 0)}
                     for p in sorted(catalog.providers.values(), key=lambda p: p.id)]}
