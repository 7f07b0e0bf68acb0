"""A key's calls read back from its usage records, for the audit trail: who called (source IP, user agent), what
(model, tokens, cost), how it ended (status) and when. A zero-log key's records hold no IP or user agent.

Also the CSV both audit exports write: one header, RFC 4180 quoting, and cells that a spreadsheet would run as a
formula (a user agent such as `=HYPERLINK(...)`) written with a leading `'`."""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

import orjson

CALL_FIELDS = ("id", "created_at", "model", "request_model", "provider", "status", "error_code", "error_type",
               "prompt_tokens", "completion_tokens", "cost", "latency_ms", "streamed", "client_ip", "user_agent",
               "app")


def call_row(record: dict[str, Any]) -> dict[str, Any]:
    """A usage record as the audit trail shows it (times in ISO 8601 UTC)."""
    row = {name: record.get(name) for name in CALL_FIELDS}
    row["created_at"] = datetime.fromtimestamp(float(record["created_at"]), timezone.utc) \
        .isoformat(timespec="milliseconds").replace("+00:00", "Z")
    row["prompt_tokens"] = record.get("prompt_tokens", 0)
    row["completion_tokens"] = record.get("completion_tokens", 0)
    row["cost"] = record.get("cost", 0)
    row["streamed"] = bool(record.get("streamed", False))
    return row


def encode_cursor(position: dict[str, Any] | None) -> str | None:
    if position is None:
        return None
    data = orjson.dumps({"id": position["id"], "c": position["created_at"]})
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, key_id: str) -> dict[str, Any]:
    """The position a cursor names, for `key_id` (ValueError for anything not made by `encode_cursor`)."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError) as e:
        raise ValueError("not a cursor") from e
    if not (isinstance(data, dict) and isinstance(data.get("id"), str) and len(data["id"]) <= 64
            and isinstance(data.get("c"), (int, float)) and not isinstance(data.get("c"), bool)):
        raise ValueError("not a cursor")
    return {"id": data["id"], "key_id": key_id, "created_at": data["c"]}


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


def csv_lines(rows: Iterable[dict[str, Any]], fields: tuple[str, ...]) -> Iterator[str]:
    """CSV text, a header then a line a row (nested values as JSON)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_cell(row.get(f)) for f in fields])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
