"""Usage analytics over the lake: `/analytics` (JSON), `/analytics/export` (CSV, Parquet), OpenRouter's
`/activity` and `/credits`. A management key sees every call (with the `analytics:read` scope); an inference key
its own.

DuckDB and pyarrow are imported on the first analytics request (the `lake` extra): a function packaged
without them (the gateway's own, kept lean) answers 501 and names the one that serves these routes."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from functions.gateway.deps import caller
from functions.gateway.state import gateway
from shared.errors import BadRequestError, ForbiddenError, NotServedHereError
from shared.keys import ApiKey

router = APIRouter(prefix="/api/v1", tags=["analytics"])
Caller = Annotated[ApiKey, Depends(caller("analytics:read"))]


@lru_cache(maxsize=4)
def _engine(lake_uri: str | None, bucket: str) -> Any:
    try:
        from shared.lake.query import LakeQuery
        from shared.lake.store import open_store
    except ImportError as e:  # packaged without the lake extra
        raise NotServedHereError("Analytics are served by the analytics function (it has DuckDB); this one "
                                 "has not", metadata={"missing": e.name}) from None
    return LakeQuery(open_store(lake_uri or f"s3://{bucket}"))


def engine() -> Any:
    s = gateway().settings
    return _engine(s.lake_uri, s.data_bucket)


def _params(request: Request) -> dict[str, str]:
    params = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise BadRequestError(f"{name!r} is given more than once (use a comma-separated list)",
                                  metadata={"parameter": name})
        params[name] = value
    return params


async def _rows(request: Request, key: ApiKey) -> tuple[Any, list[dict[str, Any]], bool]:
    lake = engine()
    from shared.lake import analytics

    params = _params(request)
    params.pop("format", None)
    query = analytics.scope(analytics.parse(params), key_id=key.key_id, management=key.kind == "management")
    rows, truncated = await asyncio.to_thread(analytics.usage_rows, lake, query)
    return query, rows, truncated


@router.get("/analytics", summary="Calls, tokens, cost, success rate, latency and errors, grouped and bucketed")
async def usage(request: Request, key: Caller) -> dict:
    from shared.lake import analytics

    query, rows, truncated = await _rows(request, key)
    return {"data": rows, "meta": {**analytics.meta(query), "truncated": truncated,
                                   "freshness": FRESHNESS}}


@router.get("/analytics/export", summary="The same rows as /analytics, as CSV or Parquet")
async def export(request: Request, key: Caller) -> Response:
    from shared.lake import analytics

    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "parquet"):
        raise BadRequestError("format is csv or parquet", metadata={"parameter": "format", "value": fmt[:16]})
    query, rows, _ = await _rows(request, key)
    body, media_type = await asyncio.to_thread(analytics.export, rows, fmt, query)
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="switchyard-usage.{fmt}"'})


@router.get("/activity", summary="OpenRouter's activity: the last 30 completed UTC days by model and provider")
async def activity(request: Request, key: Caller) -> dict:
    lake = engine()
    from shared.lake import analytics

    params = _params(request)
    unknown = sorted(set(params) - {"date", "api_key_hash"})
    if unknown:
        raise BadRequestError(f"Unknown parameter {unknown[0]!r}", metadata={"parameter": unknown[0],
                                                                            "allowed": ["api_key_hash", "date"]})
    asked = params.get("api_key_hash")
    if key.kind != "management":
        if asked not in (None, key.key_id):
            raise ForbiddenError("An inference key sees only its own calls",
                                           metadata={"parameter": "api_key_hash"})
        asked = key.key_id
    rows = await asyncio.to_thread(analytics.activity, lake, key_id=asked, day=params.get("date"))
    return {"data": rows}


@router.get("/credits", summary="Credits and what was spent (OpenRouter's shape)")
async def credits(key: Caller) -> dict:
    """An inference key: its limit and its spend. A management key: every inference key's spend, and the sum of
    their limits (a key without a limit adds nothing to it)."""
    if key.kind != "management":
        return {"data": {"total_credits": key.limit, "total_usage": round(key.usage, 10)}}
    keys = await asyncio.to_thread(gateway().keys.list)  # inference keys, with their spend
    return {"data": {"total_credits": round(sum(k.limit for k in keys if k.limit is not None), 10),
                     "total_usage": round(sum(k.usage for k in keys), 10)}}


FRESHNESS = ("A call reaches the lake a few seconds after it is answered: locally within ~2 s (the exporter "
             "polls the stream), on AWS by estimate within ~10 s (a 5 s batching window); see the README.")
