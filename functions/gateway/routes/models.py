from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from functions.gateway.deps import admitted_key
from functions.gateway.state import gateway
from shared.errors import BadRequestError
from shared.keys import ApiKey
from shared.keys.restrictions import model_allowed
from shared.metering.stats import WINDOW_SECONDS

router = APIRouter(prefix="/api/v1", tags=["models"])


def _split(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


_FILTERS = frozenset({"supported_parameters", "output_modalities", "input_modalities"})


@router.get("/models", summary="The model catalog in OpenRouter's shape")
async def list_models(
    request: Request,
    supported_parameters: Annotated[str | None, Query(description="comma-separated: models supporting all")] = None,
    output_modalities: Annotated[str | None, Query(description="comma-separated, or 'all'")] = None,
    input_modalities: Annotated[str | None, Query(description="comma-separated: models taking all of them")] = None,
) -> Response:
    """A filter this gateway does not know (OpenRouter's `category`, say) is a 400, not a listing that ignores it."""
    unknown = sorted(set(request.query_params) - _FILTERS)
    if unknown:
        raise BadRequestError(f"Invalid request: {unknown[0]}: not a filter of /models (filters: "
                              f"{', '.join(sorted(_FILTERS))})", metadata={"field": unknown[0]})
    g = gateway()
    g.catalogs.maybe_refresh()
    catalog = g.catalog
    params, modalities = _split(supported_parameters), _split(output_modalities) - {"all"}
    inputs = _split(input_modalities) - {"all"}
    if not params and not modalities and not inputs:
        return Response(catalog.models_json, media_type="application/json")
    models = [m for m in catalog.listing()
              if params <= set(m["supported_parameters"])
              and (not modalities or modalities & set(m["architecture"]["output_modalities"]))
              and inputs <= set(m["architecture"]["input_modalities"])]
    return Response(orjson.dumps({"data": models}), media_type="application/json")


@router.get("/models/{author}/{slug}/endpoints", summary="Each provider endpoint of a model, with recent health")
async def model_endpoints(author: str, slug: str) -> dict:
    g = gateway()
    model = g.catalog.get(f"{author}/{slug}")
    stats = await g.endpoint_stats.get(model.id)
    listed = model.to_openrouter()
    endpoints = []
    for e in model.endpoints:
        health = stats.get(e.provider.id, {})
        endpoints.append({
            "name": f"{e.provider.name or e.provider.id} | {model.id}",
            "provider_name": e.provider.name or e.provider.id, "provider_id": e.provider.id, "kind": e.provider.kind,
            "context_length": e.config.context_length, "max_completion_tokens": e.config.max_output,
            "pricing": e.openrouter_pricing(), "supported_parameters": list(e.config.supported_parameters),
            "status": 0 if e.has_credentials else -1, "available": e.has_credentials,
            "circuit": g.chat.routing.breakers.state(e.provider.id, e.upstream_model),  # closed | open | half_open
            "window_seconds": WINDOW_SECONDS, "requests_last_30m": health.get("requests", 0),
            "uptime_last_30m": health.get("uptime"), "latency_last_30m": health.get("latency"),
            "time_to_first_token_last_30m": health.get("time_to_first_token"),
        })
    return {"data": {k: listed[k] for k in ("id", "name", "created", "description", "architecture")}
            | {"endpoints": endpoints}}


@router.get("/models/count", summary="How many models /models lists (OpenRouter's shape)")
async def count_models() -> dict:
    g = gateway()
    g.catalogs.maybe_refresh()
    return {"data": {"count": len(g.catalog) + len(g.catalog.policies)}}  # (routing policies are listed too)


@router.get("/models/user", summary="The models the calling key may call (its allowed_models applied)")
async def user_models(key: Annotated[ApiKey, Depends(admitted_key)]) -> Response:
    g = gateway()
    g.catalogs.maybe_refresh()
    if key.allowed_models is None:
        return Response(g.catalog.models_json, media_type="application/json")
    allowed = key.allowed_models
    models = [m for m in g.catalog.listing()  # a policy: when the key may call one of its models
              if model_allowed(allowed, m["id"]) or any(model_allowed(allowed, t) for t in m.get("models", ()))]
    return Response(orjson.dumps({"data": models}), media_type="application/json")


@router.get("/embeddings/models", summary="The embeddings models (OpenRouter's route; each as /models lists it)")
async def embeddings_models() -> Response:
    g = gateway()
    g.catalogs.maybe_refresh()
    models = [m.to_openrouter() for m in g.catalog if "embeddings" in m.config.output_modalities]
    return Response(orjson.dumps({"data": models}), media_type="application/json")


@router.get("/models/licenses", summary="Each model's license or terms of use: what its outputs may be used for "
            "(public: no key)")
async def model_licenses() -> dict:
    """From the license table the synthetic-data gate reads (shared/catalog/licenses.py): `license` is null for a
    model no entry matches (the gate refuses it)."""
    from shared.catalog import licenses

    g = gateway()
    g.catalogs.maybe_refresh()
    fields = ("license", "spdx", "commercial_use", "train_other_models", "commercial_restriction",
              "train_restriction", "obligations", "source")
    data = []
    for model in g.catalog:
        entry = licenses.license_for(model.id)
        data.append({"model": model.id, **{f: (getattr(entry, f) if entry else None) for f in fields}})
    return {"data": data, "policy_version": licenses.load_table().policy_version}
