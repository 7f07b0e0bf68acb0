import asyncio
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from functions.gateway.deps import caller
from functions.gateway.state import gateway
from shared.errors import NotFoundError
from shared.keys import ApiKey

router = APIRouter(prefix="/api/v1", tags=["generation"])


def _stats(r: dict[str, Any]) -> dict[str, Any]:
    """A usage record in OpenRouter's generation shape, plus our own fields."""
    return {
        "id": r["id"], "model": r.get("model"), "provider_name": r.get("provider"), "upstream_id": r.get("upstream_id"),
        "created_at": datetime.fromtimestamp(float(r["created_at"]), timezone.utc).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"), "total_cost": r.get("cost", 0), "usage": r.get("cost", 0),
        "upstream_inference_cost": r.get("cost", 0), "cache_discount": cache_discount(r),
        "num_media_prompt": None, "num_media_completion": None, "num_search_results": None,  # not recorded
        "moderation_latency": None,
        "tokens_prompt": r.get("prompt_tokens", 0), "tokens_completion": r.get("completion_tokens", 0),
        "native_tokens_prompt": r.get("prompt_tokens", 0), "native_tokens_completion": r.get("completion_tokens", 0),
        "native_tokens_cached": r.get("cached_tokens", 0), "native_tokens_reasoning": r.get("reasoning_tokens", 0),
        "usage_estimated": r.get("usage_estimated", False),
        "latency": r.get("latency_ms"), "time_to_first_token": r.get("ttft_ms"),
        "generation_time": round(r["latency_ms"] - r["ttft_ms"], 3) if r.get("ttft_ms") is not None else None,
        "streamed": r.get("streamed", False), "cancelled": r.get("status") == "cancelled",
        "status": r.get("status"), "error_code": r.get("error_code"), "error_type": r.get("error_type"),
        "finish_reason": r.get("finish_reason"), "native_finish_reason": r.get("finish_reason"),
        "heal_status": r.get("heal_status"), "heal_repairs": r.get("heal_repairs", 0),
        "heal_audit": r.get("heal_audit") or [], "schema_valid": r.get("schema_valid"),
        "app": r.get("app"), "origin": r.get("app_referer"), "is_byok": False, "lab": r.get("lab"),
        "categories": r.get("categories") or [], "request_model": r.get("request_model"),
        "route": r.get("route"), "route_rule": r.get("route_rule"),
        "provider_responses": [
            {"provider_name": a.get("provider"), "model": a.get("model"), "upstream_model": a.get("upstream_model"),
             "status": a.get("status"), "latency": a.get("latency_ms"), "error_type": a.get("error_type"),
             "retry_round": a.get("round", 0),
             **{flag: True for flag in ("mid_stream", "skipped") if a.get(flag)}}
            for a in r.get("attempts") or _single_attempt(r)],
    }


def cache_discount(r: dict[str, Any]) -> float | None:
    """What the cached prompt tokens saved at the serving endpoint's current prices (USD): their prompt price less
    their cache-read price; None when the endpoint is gone from the catalog."""
    cached = r.get("cached_tokens") or 0
    if not cached:
        return 0.0
    try:
        model = gateway().catalog.get(r.get("model") or "")
    except NotFoundError:
        return None
    endpoint = next((e for e in model.endpoints if e.provider.id == r.get("provider")), None)
    if endpoint is None:
        return None
    p = endpoint.pricing
    return round(cached * (p.prompt - (p.cache_read if p.cache_read is not None else p.prompt)) / 1_000_000, 12)


def _single_attempt(r: dict[str, Any]) -> list[dict[str, Any]]:
    """A call that made one attempt keeps it in the record's own fields (nothing is stored twice)."""
    if not r.get("provider"):
        return []  # refused before any provider was tried
    return [{"provider": r["provider"], "model": r.get("model"), "upstream_model": r.get("upstream_model"),
             "status": r.get("error_code") or 200, "latency_ms": r.get("latency_ms"), "error_type": r.get("error_type")}]


@router.get("/generation", summary="Stats of one call, for the key that made it (or any call, for a management key)")
async def get_generation(id: Annotated[str, Query(min_length=1, max_length=64)],
                         key: Annotated[ApiKey, Depends(caller("analytics:read"))]) -> dict:
    """An inference key reads its own calls; a management key with `analytics:read` reads any call (e.g. a
    synthetic job's, by the request id in the data's provenance, after the job's own key was disabled)."""
    g = gateway()
    pending = g.meter.pending(id)
    record = pending.to_record(g.settings.usage_retention_days) if pending else \
        await asyncio.to_thread(g.usage.get, id)
    if record is None or (key.kind != "management" and record["key_id"] != key.key_id):
        raise NotFoundError(f"No generation {id!r} for this key", metadata={"id": id})
    return {"data": _stats(record)}
