"""Rankings: `GET /rankings` (public), OpenRouter's `GET /datasets/rankings-daily`, and `POST /rankings/runs`
(management key) to run a day now. Rankings are read from where the daily flow publishes them
(shared/rankings/daily.py); like the analytics, these routes need the `lake` extra (501 without it)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse, Response

from functions.gateway.deps import audit, scoped
from functions.gateway.state import gateway
from shared.errors import BadRequestError, NotFoundError, NotServedHereError
from shared.keys import ApiKey

router = APIRouter(prefix="/api/v1", tags=["rankings"])
BY = {"model": "models", "lab": "labs", "app": "apps"}
DAILY_TOP = 50
DAILY_MAX_DAYS = 90


@lru_cache(maxsize=4)
def _stores(lake_uri: str | None, rankings_uri: str | None, bucket: str) -> tuple[Any, Any]:
    try:
        from shared.lake.store import open_store
        import pyarrow  # noqa: F401  (the lake extra)
    except ImportError as e:
        raise NotServedHereError("Rankings are served by the analytics function (it has pyarrow); this one has "
                                 "not", metadata={"missing": e.name}) from None
    return open_store(lake_uri or f"s3://{bucket}"), open_store(rankings_uri or f"s3://{bucket}")


def stores() -> tuple[Any, Any]:
    s = gateway().settings
    return _stores(s.lake_uri, s.rankings_uri, s.data_bucket)


def _day(name: str, text: str) -> date:
    from shared.lake.analytics import parse_day

    return parse_day(name, text)


def _only(request: Request, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise BadRequestError(f"{name!r} is given more than once", metadata={"parameter": name})
        params[name] = value
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequestError(f"Unknown parameter {unknown[0]!r}", metadata={"parameter": unknown[0],
                                                                            "allowed": sorted(allowed)})
    return params


def _read(store: Any, key: str) -> bytes | None:
    try:
        return store.get(key)
    except FileNotFoundError:
        return None


def _table(data: bytes) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data)).to_pylist()


@router.get("/rankings", summary="The daily rankings by model, lab or app (public: no key)")
async def get_rankings(request: Request) -> dict:
    params = _only(request, {"by", "date"})
    by = params.get("by", "model")
    if by not in BY:
        raise BadRequestError("by is model, lab or app", metadata={"parameter": "by", "value": by[:16]})
    _, out = stores()
    base = f"rankings/dt={_day('date', params['date']).isoformat()}/" if params.get("date") else "rankings/latest/"
    data, summary = await asyncio.gather(asyncio.to_thread(_read, out, base + BY[by] + ".parquet"),
                                         asyncio.to_thread(_read, out, base + "summary.json"))
    if data is None or summary is None:
        raise NotFoundError("No rankings published for that day" if params.get("date") else "No rankings yet",
                            metadata={"date": params.get("date")})
    meta = json.loads(summary)
    return {"data": await asyncio.to_thread(_table, data),
            "meta": {"by": by, "date": meta["date"], "as_of": meta["as_of"], "formula": meta["formula"],
                     "filters": meta["filters"]}}


@router.get("/datasets/rankings-daily", summary="Daily token totals of the top 50 models (OpenRouter's shape)")
async def rankings_daily(request: Request) -> dict:
    params = _only(request, {"start_date", "end_date"})
    _, out = stores()
    latest = await asyncio.to_thread(_read, out, "rankings/latest/summary.json")
    newest = date.fromisoformat(json.loads(latest)["date"]) if latest else datetime.now(timezone.utc).date()
    end = _day("end_date", params["end_date"]) if params.get("end_date") else newest
    start = _day("start_date", params["start_date"]) if params.get("start_date") else end - timedelta(days=29)
    if start > end or (end - start).days >= DAILY_MAX_DAYS:
        raise BadRequestError(f"start_date must be on or before end_date, at most {DAILY_MAX_DAYS} days apart",
                              metadata={"start_date": start.isoformat(), "end_date": end.isoformat()})
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    found = await asyncio.gather(*(asyncio.to_thread(_read, out, f"rankings/dt={d}/models.parquet") for d in days))
    rows, as_of = [], None
    for day, data in zip(days, found):
        if data is None:
            continue
        models = sorted(_table(data), key=lambda m: (-m["total_tokens"], m["model"]))
        rows += [{"date": day, "model_permaslug": m["model"], "total_tokens": str(m["total_tokens"])}
                 for m in models[:DAILY_TOP]]
        rest = sum(m["total_tokens"] for m in models[DAILY_TOP:])
        if rest:
            rows.append({"date": day, "model_permaslug": "other", "total_tokens": str(rest)})
        as_of = (date.fromisoformat(day) + timedelta(days=1)).isoformat() + "T00:00:00Z"
    return {"data": rows, "meta": {"as_of": as_of, "start_date": start.isoformat(), "end_date": end.isoformat(),
                                   "version": "v1"}}


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: str | None = None


@router.post("/rankings/runs", summary="Run the daily rankings for a day (management key)")
async def run_rankings(request: Request, body: RunRequest,
                       manager: Annotated[ApiKey, Depends(scoped("rankings:write"))]) -> Response:
    """Locally the run happens in the request: 200 with the finished run. On AWS (SWITCHYARD_RANKINGS_FUNCTION
    set) it is handed to RankingsFunction: 202 with the run's id, to poll at `GET /rankings/runs/{id}`."""
    from shared.rankings import runs

    today = datetime.now(timezone.utc).date()
    day = _day("date", body.date) if body.date else today - timedelta(days=1)
    if day > today:
        raise BadRequestError("date cannot be in the future", metadata={"parameter": "date"})
    lake, out = stores()
    g = gateway()
    run = {"id": runs.new_id(), "date": day.isoformat(), "status": "queued"}
    function = os.environ.get("SWITCHYARD_RANKINGS_FUNCTION")
    if function:
        await asyncio.to_thread(runs.save, out, run)
        await asyncio.to_thread(_invoke, function, run)
        await audit(request, manager, "rankings.run", run["id"], after=run)
        return JSONResponse({"data": run}, status_code=202)
    await asyncio.to_thread(g.meter.drain, 5.0, final=False)  # this process's calls, into the table first
    keys = [k.key_id for k in await asyncio.to_thread(g.keys.list)]
    counters = g.settings.counters_table
    run = await asyncio.to_thread(runs.execute, run, lake, out,
                                  lambda: runs.metered_calls(day.isoformat(), keys, counters))
    await audit(request, manager, "rankings.run", run["id"],
                after={k: run.get(k) for k in ("id", "date", "status", "error") if k in run})
    return JSONResponse({"data": run})


def _invoke(function: str, run: dict[str, Any]) -> None:
    from shared.aws import client

    client("lambda").invoke(FunctionName=function, InvocationType="Event",
                            Payload=json.dumps({"run": run}).encode())


@router.get("/rankings/runs/{run_id}", summary="A rankings run started through the API (management key)")
async def get_run(run_id: Annotated[str, Path(pattern=r"^run-[0-9a-f]{16}$")],
                  _: Annotated[ApiKey, Depends(scoped("rankings:read"))]) -> dict:
    from shared.rankings import runs

    _, out = stores()
    run = await asyncio.to_thread(runs.load, out, run_id)
    if run is None:
        raise NotFoundError(f"No run {run_id!r}", metadata={"id": run_id})
    return {"data": run}
