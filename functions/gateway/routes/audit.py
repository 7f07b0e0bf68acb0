"""The audit trail (management key with `audit:read`): the log of management actions, newest first, its export
and the verification of its hash chain (shared/audit/log.py); and any key's calls from its usage records.

Times in `from` / `to` are ISO 8601 (UTC unless an offset is given) or a date, which means its first millisecond
for `from` and its last for `to`; both ends are inclusive."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Iterator

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from functions.gateway.deps import scoped
from functions.gateway.state import gateway
from shared.audit import AuditQuery
from shared.audit.calls import CALL_FIELDS, call_row, csv_lines, decode_cursor, encode_cursor
from shared.audit.log import now_iso
from shared.errors import BadRequestError
from shared.keys import ApiKey

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[ApiKey, Depends(scoped("audit:read"))]
ENTRY_FIELDS = ("seq", "at", "action", "actor", "source_ip", "target", "request_id", "before", "after", "hash",
                "prev_hash")
_KEY = re.compile(r"^[0-9a-f]{12}$")
_ANCHOR = re.compile(r"^([1-9][0-9]{0,17}):([0-9a-f]{64})$")


def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise BadRequestError(f"{name!r} is given more than once", metadata={"parameter": name})
        if name not in allowed:
            raise BadRequestError(f"Unknown parameter {name!r}", metadata={"parameter": name[:40],
                                                                          "allowed": sorted(allowed)})
        params[name] = value
    return params


def _moment(name: str, text: str, *, end: bool) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end else time.min, timezone.utc)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise BadRequestError(f"{name} is an ISO 8601 time or a date (e.g. 2026-01-31T12:00:00Z)",
                              metadata={"parameter": name, "value": text[:40]}) from None


def _range(params: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    start = _moment("from", params["from"], end=False) if "from" in params else None
    end = _moment("to", params["to"], end=True) if "to" in params else None
    if start and end and start > end:
        raise BadRequestError("from is after to", metadata={"parameter": "from"})
    return start, end


def _iso(moment: datetime | None, *, end: bool) -> str | None:
    if moment is None:
        return None
    if end and moment.microsecond % 1000:  # the log keeps milliseconds: 12:00:00.9999 ends at 12:00:00.999
        moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
    return now_iso(moment.timestamp())


def _int(params: dict[str, str], name: str, default: int, most: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= most:
        raise BadRequestError(f"{name} is a whole number from 1 to {most}", metadata={"parameter": name})
    return int(text)


def _query(params: dict[str, str]) -> AuditQuery:
    start, end = _range(params)
    for name in ("action", "actor", "target"):
        if len(params.get(name, "")) > 200:
            raise BadRequestError(f"{name} is at most 200 characters", metadata={"parameter": name})
    return AuditQuery(start=_iso(start, end=False), end=_iso(end, end=True), action=params.get("action") or None,
                      actor=params.get("actor") or None, target=params.get("target") or None)


_FILTERS = {"from", "to", "action", "actor", "target"}


@router.get("", summary="Management actions, newest first (filters: from, to, action, actor, target; cursor)")
async def list_entries(request: Request, _: Auditor) -> dict:
    params = _params(request, _FILTERS | {"limit", "cursor"})
    query = _query(params)
    cursor = _int(params, "cursor", 0, 10**18) if "cursor" in params else None
    limit = _int(params, "limit", 100, 500)
    entries, after = await asyncio.to_thread(gateway().audit.search, query, limit=limit, cursor=cursor)
    return {"data": entries, "next_cursor": None if after is None else str(after)}


@router.get("/export", summary="Every matching entry, oldest first, streamed as JSON lines or CSV")
async def export_entries(request: Request, _: Auditor) -> StreamingResponse:
    params = _params(request, _FILTERS | {"format"})
    fmt = params.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise BadRequestError("format is jsonl or csv", metadata={"parameter": "format", "value": fmt[:16]})
    entries = gateway().audit.export(_query(params))
    if fmt == "jsonl":
        body: Iterator[bytes | str] = (orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in entries)
        media = "application/x-ndjson"
    else:
        body = csv_lines(({**e, "actor": (e.get("actor") or {}).get("id"),
                           "actor_label": (e.get("actor") or {}).get("label")} for e in entries),
                         ENTRY_FIELDS[:4] + ("actor_label",) + ENTRY_FIELDS[4:])
        media = "text/csv; charset=utf-8"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="switchyard-audit.{fmt}"'})


@router.get("/verify", summary="Check the hash chain: edited, removed or reordered entries, a removed tail")
async def verify(request: Request, _: Auditor) -> dict:
    """`anchor=<seq>:<hash>` (a head kept from an earlier verify) also detects the newest entries removed together
    with the head rolled back to an earlier copy, which nothing inside the table can show."""
    params = _params(request, {"anchor"})
    anchor = None
    if "anchor" in params:
        found = _ANCHOR.match(params["anchor"])
        if not found:
            raise BadRequestError("anchor is <seq>:<hash> (a verify's head)", metadata={"parameter": "anchor"})
        anchor = (int(found.group(1)), found.group(2))
    verdict = await asyncio.to_thread(gateway().audit.verify, anchor)
    return verdict.to_api()


@router.get("/calls", summary="A key's calls from its usage records: source IP, user agent, model, tokens, cost")
async def calls(request: Request, _: Auditor) -> Any:
    params = _params(request, {"key", "from", "to", "format", "limit", "cursor"})
    key_id = params.get("key", "")
    if not _KEY.match(key_id):
        raise BadRequestError("key is a key's hash (12 hex digits)", metadata={"parameter": "key"})
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequestError("format is json or csv", metadata={"parameter": "format", "value": fmt[:16]})
    start, end = _range(params)
    low = start.timestamp() if start else 0.0
    high = end.timestamp() if end else (datetime.now(timezone.utc) + timedelta(days=1)).timestamp()
    usage = gateway().usage
    if fmt == "csv":
        def rows() -> Iterator[dict[str, Any]]:
            after = None
            while True:
                page, after = usage.for_key(key_id, start=low, end=high, limit=500, after=after)
                yield from (call_row(r) for r in page)
                if after is None:
                    return

        return StreamingResponse(csv_lines(rows(), CALL_FIELDS), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="calls-{key_id}.csv"'})
    try:
        after = decode_cursor(params["cursor"], key_id) if "cursor" in params else None
    except ValueError:
        raise BadRequestError("cursor is a next_cursor from an earlier page", metadata={"parameter": "cursor"}) from None
    page, position = await asyncio.to_thread(usage.for_key, key_id, start=low, end=high,
                                             limit=_int(params, "limit", 100, 1000), after=after)
    return {"data": [call_row(r) for r in page], "next_cursor": encode_cursor(position)}
