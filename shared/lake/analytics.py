"""The analytics API's logic: parameters checked, the lake queried (shared/lake/queries.py), rows shaped.

Rows are the same for JSON and for exports: one per group (and time bucket), with calls by status, tokens,
cost (USD), success rate (completed / (completed + failed): a client's cancellation is nobody's failure),
latency and time-to-first-token percentiles over completed calls (exact, linear interpolation), and the
group's most frequent error types.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping

from shared.errors import BadRequestError, ForbiddenError
from shared.lake import queries
from shared.lake.query import LakeQuery

MAX_DAYS = 400
MAX_ROWS = 10_000
TOP_ERRORS = 5
STATUSES = ("completed", "failed", "cancelled")
ACTIVITY_DAYS = 30

_ALLOWED = {"from", "to", "group_by", "granularity", "limit", "format", *queries.FILTERS}


@dataclass(slots=True)
class Request:
    start: datetime
    end: datetime  # exclusive
    group_by: list[str] = field(default_factory=list)
    granularity: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    limit: int = 1000


FIRST_YEAR, LAST_YEAR = 2000, 2100  # dates outside are refused (and cannot overflow a day's arithmetic)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(name: str, text: str) -> date:
    """A UTC day written YYYY-MM-DD, in 2000–2100; anything else is a 400 naming the parameter."""
    try:
        if not _DAY.match(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"{name} must be a date, YYYY-MM-DD", metadata={"parameter": name,
                                                                             "value": text[:32]}) from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise BadRequestError(f"{name} must be between {FIRST_YEAR} and {LAST_YEAR}", metadata={"parameter": name})
    return day


def _instant(name: str, text: str, *, end: bool) -> datetime:
    """A date (its midnight; for `to`, the next one: the day is included) or an ISO 8601 time (UTC if naive)."""
    if len(text) == 10:
        day = parse_day(name, text)
        return datetime.combine(day + timedelta(days=1) if end else day, time(), timezone.utc)
    try:
        if "T" not in text:
            raise ValueError(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+", 1))
    except ValueError:
        raise BadRequestError(f"{name!r} must be a date (YYYY-MM-DD) or an ISO 8601 time",
                              metadata={"parameter": name, "value": text[:64]}) from None
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise BadRequestError(f"{name} must be between {FIRST_YEAR} and {LAST_YEAR}", metadata={"parameter": name})
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def parse(params: Mapping[str, str], *, allowed: set[str] | None = None, now: datetime | None = None) -> Request:
    unknown = sorted(set(params) - (allowed or _ALLOWED))
    if unknown:
        raise BadRequestError(f"Unknown parameter {unknown[0]!r}", metadata={"parameter": unknown[0],
                                                                            "allowed": sorted(allowed or _ALLOWED)})
    now = now or datetime.now(timezone.utc)
    end = _instant("to", params["to"], end=True) if params.get("to") else now
    start = _instant("from", params["from"], end=False) if params.get("from") else end - timedelta(days=7)
    if start >= end:
        raise BadRequestError("'from' must be before 'to'", metadata={"from": start.isoformat(), "to": end.isoformat()})
    if end - start > timedelta(days=MAX_DAYS):
        raise BadRequestError(f"A range covers at most {MAX_DAYS} days", metadata={"parameter": "from"})
    group_by = [g.strip() for g in params.get("group_by", "").split(",") if g.strip()]
    for g in group_by:
        if g not in queries.DIMENSIONS:
            raise BadRequestError(f"Cannot group by {g!r}", metadata={"parameter": "group_by", "value": g[:64],
                                                                      "allowed": sorted(queries.DIMENSIONS)})
    if len(set(group_by)) != len(group_by) or len(group_by) > 4:
        raise BadRequestError("group_by names up to 4 different dimensions", metadata={"parameter": "group_by"})
    granularity = params.get("granularity") or None
    if granularity is not None and granularity not in queries.GRANULARITY:
        raise BadRequestError("granularity is 'hour' or 'day'", metadata={"parameter": "granularity",
                                                                         "value": granularity[:16]})
    if granularity == "hour" and end - start > timedelta(days=31):
        raise BadRequestError("Hourly buckets cover at most 31 days", metadata={"parameter": "granularity"})
    filters = {k: params[k] for k in queries.FILTERS if params.get(k)}
    for k, v in filters.items():
        if len(v) > 500:
            raise BadRequestError(f"{k!r} is too long", metadata={"parameter": k})
    if "status" in filters and filters["status"] not in STATUSES:
        raise BadRequestError("status is completed, failed or cancelled", metadata={"parameter": "status"})
    try:
        limit = int(params.get("limit", 1000))
    except ValueError:
        raise BadRequestError("limit must be an integer", metadata={"parameter": "limit"}) from None
    if not 1 <= limit <= MAX_ROWS:
        raise BadRequestError(f"limit is between 1 and {MAX_ROWS}", metadata={"parameter": "limit"})
    return Request(start, end, group_by, granularity, filters, limit)


def scope(request: Request, *, key_id: str, management: bool) -> Request:
    """An inference key sees its own calls only; asking for another key's is refused, not silently narrowed."""
    if management:
        return request
    asked = request.filters.get("key")
    if asked is not None and asked != key_id:
        raise ForbiddenError("An inference key sees only its own calls", metadata={"parameter": "key"})
    request.filters["key"] = key_id
    return request


def _days(request: Request) -> tuple[date, date]:
    return request.start.date(), (request.end - timedelta(microseconds=1)).date()


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def usage_rows(engine: LakeQuery, request: Request) -> tuple[list[dict[str, Any]], bool]:
    """(rows, truncated)"""
    params = {"from": request.start, "to": request.end, **request.filters}
    filters = list(request.filters)
    first, last = _days(request)
    sql, columns = queries.usage(request.group_by, request.granularity, filters)
    table = engine.run(sql, params, first, last)
    rows = table.to_pylist()
    truncated = len(rows) > request.limit
    rows = rows[:request.limit]
    out = []
    for r in rows:
        finished = r["completed"] + r["failed"]
        shaped = {c: _iso(r[c]) for c in columns}
        shaped.update(
            calls=r["calls"], completed=r["completed"], failed=r["failed"], cancelled=r["cancelled"],
            success_rate=round(r["completed"] / finished, 6) if finished else None,
            prompt_tokens=int(r["prompt_tokens"]), completion_tokens=int(r["completion_tokens"]),
            reasoning_tokens=int(r["reasoning_tokens"]), cached_tokens=int(r["cached_tokens"]),
            total_tokens=int(r["prompt_tokens"]) + int(r["completion_tokens"]),
            cost=round(float(r["cost"]), 12),
            **{k: (round(r[k], 3) if r[k] is not None else None)
               for k in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "ttft_ms_p50", "ttft_ms_p95")},
            top_errors=_top(r["error_counts"]),
            heal=_heal(r),
            last_call_at=_iso(r["last_call_at"]),
        )
        if "repairs_of_kind" in r:
            shaped["repairs_of_kind"] = int(r["repairs_of_kind"])
        out.append(shaped)
    return out, truncated


def _heal(r: dict[str, Any]) -> dict[str, Any]:
    """Response Healing in the group: of the calls it applied to, how many came back healed, valid already
    (skipped) or beyond repair (failed), the repairs made, and the share that was not valid JSON as produced."""
    calls = int(r["heal_calls"])
    broken = int(r["heal_healed"]) + int(r["heal_failed"])
    return {"calls": calls, "healed": int(r["heal_healed"]), "skipped": int(r["heal_skipped"]),
            "failed": int(r["heal_failed"]), "repairs": int(r["heal_repairs"]),
            "broken_rate": round(broken / calls, 6) if calls else None}


def _top(histogram: Any) -> list[dict[str, Any]]:
    """The most frequent error types (ties by name), from the query's histogram (a map: pairs or a dict)."""
    pairs = histogram.items() if isinstance(histogram, dict) else (histogram or [])
    ranked = sorted(((int(n), str(k)) for k, n in pairs), key=lambda x: (-x[0], x[1]))
    return [{"error_type": k, "count": n} for n, k in ranked[:TOP_ERRORS]]


def meta(request: Request) -> dict[str, Any]:
    return {"from": _iso(request.start), "to": _iso(request.end), "group_by": request.group_by,
            "granularity": request.granularity, "filters": request.filters}


_METRIC_TYPES = [("calls", "int64"), ("completed", "int64"), ("failed", "int64"), ("cancelled", "int64"),
                 ("success_rate", "float64"), ("prompt_tokens", "int64"), ("completion_tokens", "int64"),
                 ("reasoning_tokens", "int64"), ("cached_tokens", "int64"), ("total_tokens", "int64"),
                 ("cost", "float64"), ("latency_ms_p50", "float64"), ("latency_ms_p95", "float64"),
                 ("latency_ms_p99", "float64"), ("ttft_ms_p50", "float64"), ("ttft_ms_p95", "float64")]
_HEAL_TYPES = [("heal_calls", "int64"), ("heal_healed", "int64"), ("heal_skipped", "int64"),
               ("heal_failed", "int64"), ("heal_repairs", "int64"), ("heal_broken_rate", "float64")]


def export_schema(request: Request, *, csv: bool) -> Any:
    """The export's columns, fixed by the query (not by the data): the same query always gives the same schema,
    an empty answer included, so exports concatenate and load together."""
    import pyarrow as pa

    dims = (["period"] if request.granularity else []) + [queries.DIMENSIONS[g][1] for g in request.group_by]
    errors = pa.string() if csv else pa.list_(pa.struct([("error_type", pa.string()), ("count", pa.int64())]))
    kinds = [("repairs_of_kind", pa.int64())] if "repair_kind" in request.group_by else []
    return pa.schema([(d, pa.string()) for d in dims] + [(n, getattr(pa, t)()) for n, t in _METRIC_TYPES]
                     + [(n, getattr(pa, t)()) for n, t in _HEAL_TYPES] + kinds
                     + [("top_errors", errors), ("last_call_at", pa.string())])


def _flat_heal(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its `heal` block as heal_* columns (exports are flat)."""
    heal = row.get("heal") or {}
    return {**row, **{f"heal_{k}": v for k, v in heal.items()}}


def export(rows: list[dict[str, Any]], fmt: str, request: Request) -> tuple[bytes, str]:
    """The rows as CSV (top_errors as JSON text) or Parquet (top_errors as a list of structs), in the schema
    `export_schema` gives the query."""
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([_flat_heal(r) for r in rows], schema=export_schema(request, csv=False))
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue(), "application/vnd.apache.parquet"
    if fmt == "csv":
        import pyarrow.csv as pcsv

        flat = [{**_flat_heal(r), "top_errors": json.dumps(r["top_errors"], separators=(",", ":"))} for r in rows]
        table = pa.Table.from_pylist(flat, schema=export_schema(request, csv=True))
        sink = io.BytesIO()
        pcsv.write_csv(table, sink)
        return sink.getvalue(), "text/csv; charset=utf-8"
    raise BadRequestError("format is csv or parquet", metadata={"parameter": "format", "value": fmt[:16]})


def activity(engine: LakeQuery, *, key_id: str | None, day: str | None, now: datetime | None = None) -> list[dict]:
    """OpenRouter's /activity: the last 30 completed UTC days (or one of them), by day, model and provider."""
    today = (now or datetime.now(timezone.utc)).date()
    first_day, last_day = today - timedelta(days=ACTIVITY_DAYS), today - timedelta(days=1)
    if day is not None:
        wanted = parse_day("date", day)
        if not first_day <= wanted <= last_day:
            raise BadRequestError(f"date must be one of the last {ACTIVITY_DAYS} completed UTC days",
                                  metadata={"parameter": "date", "from": first_day.isoformat(),
                                            "to": last_day.isoformat()})
        first_day = last_day = wanted
    start = datetime.combine(first_day, time(), timezone.utc)
    end = datetime.combine(last_day + timedelta(days=1), time(), timezone.utc)
    rows = engine.run(queries.ACTIVITY, {"from": start, "to": end, "key": key_id}, first_day, last_day).to_pylist()
    return [{"date": r["date"], "model": r["model"], "model_permaslug": r["model_permaslug"],
             "endpoint_id": f"{r['provider_name']}:{r['model']}", "provider_name": r["provider_name"],
             "usage": round(float(r["usage"]), 12), "byok_usage_inference": 0.0, "requests": r["requests"],
             "prompt_tokens": int(r["prompt_tokens"]), "completion_tokens": int(r["completion_tokens"]),
             "reasoning_tokens": int(r["reasoning_tokens"])} for r in rows]
