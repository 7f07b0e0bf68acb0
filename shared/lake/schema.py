"""The usage lake's one schema: a row per metered call, as Parquet under `usage/dt=YYYY-MM-DD/`.

Version 2 (version 1 lacked `heal_repair_kinds`). Column names follow OpenTelemetry's GenAI semantic
conventions where one exists (the attribute name without its `gen_ai.` prefix, dots as underscores; the
mapping is `OTEL` below and the README's table); the rest are ours. Types: timestamps are `timestamp[ms, UTC]`,
money is `float64` USD (the value the usage table holds, rounded to 12 decimals at metering: sums over millions
of calls stay exact to a micro-cent), token counts `int64`, ids and labels strings.

Evolution is add-only: a new version may add nullable columns, never rename, retype or remove one. Every file
records its version in a column and in its Parquet metadata; readers ask for the columns they know, and a file
written before a column existed reads it as null (`read` and the query engine both pass this schema).

The lake holds no prompt, completion, raw client IP or user agent: the IP is a keyed hash (`ip_hash`), so one
source flooding can be seen without storing who called. A zero-log key's call (its record says `zero_log`) keeps
no app, categories, IP hash or prompt fingerprint here either, whatever its record holds: the rankings count it
for its model, never for an app (it is in the unnamed row), and the repeated-prompt filter cannot see it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

VERSION = 2
METADATA_KEY = b"switchyard.schema_version"

# column -> the OpenTelemetry attribute it carries (GenAI semantic conventions, development status, 2026)
OTEL = {
    "operation_name": "gen_ai.operation.name",
    "request_model": "gen_ai.request.model",
    "response_model": "gen_ai.response.model",
    "response_id": "gen_ai.response.id",
    "provider_name": "gen_ai.provider.name",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_input_tokens": "gen_ai.usage.cache_read.input_tokens",
    "reasoning_output_tokens": "gen_ai.usage.reasoning.output_tokens",
    "finish_reason": "gen_ai.response.finish_reasons (the first)",
    "error_type": "error.type",
    "ttft_ms": "gen_ai.server.time_to_first_token (a metric; here in ms)",
    "latency_ms": "gen_ai.client.operation.duration (a metric; here in ms)",
}

SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),  # the generation id (`/generation?id=`)
    pa.field("created_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("schema_version", pa.int16(), nullable=False),
    pa.field("key_id", pa.string(), nullable=False),  # the key's public hash, never its secret
    pa.field("app", pa.string()),  # X-OpenRouter-Title / X-Title, else HTTP-Referer
    pa.field("app_title", pa.string()),
    pa.field("app_referer", pa.string()),
    pa.field("categories", pa.list_(pa.string())),  # X-OpenRouter-Categories
    pa.field("operation_name", pa.string()),  # "chat"
    pa.field("model", pa.string()),  # the catalog model that served (or was last tried)
    pa.field("lab", pa.string()),  # the model's author: anthropic, meta-llama, nvidia…
    pa.field("request_model", pa.string()),  # what the request named (a model, a routing policy)
    pa.field("response_model", pa.string()),  # the vendor's own model name
    pa.field("provider_name", pa.string()),
    pa.field("response_id", pa.string()),  # the vendor's id for the answer
    pa.field("route", pa.string()),  # the routing policy, if one was named
    pa.field("route_rule", pa.string()),
    pa.field("status", pa.string(), nullable=False),  # completed | failed | cancelled
    pa.field("error_code", pa.int32()),  # the HTTP status answered
    pa.field("error_type", pa.string()),
    pa.field("finish_reason", pa.string()),
    pa.field("input_tokens", pa.int64(), nullable=False),
    pa.field("output_tokens", pa.int64(), nullable=False),
    pa.field("cache_read_input_tokens", pa.int64(), nullable=False),
    pa.field("reasoning_output_tokens", pa.int64(), nullable=False),
    pa.field("usage_estimated", pa.bool_(), nullable=False),  # counted by us: the upstream sent none or nonsense
    pa.field("cost_usd", pa.float64(), nullable=False),
    pa.field("latency_ms", pa.float64(), nullable=False),
    pa.field("ttft_ms", pa.float64()),  # streamed calls: time to the first chunk
    pa.field("streamed", pa.bool_(), nullable=False),
    pa.field("attempts", pa.int16(), nullable=False),  # upstream attempts (fallbacks and retries included)
    pa.field("heal_status", pa.string()),  # healed | skipped | failed; null when healing did not apply
    pa.field("heal_repairs", pa.int32(), nullable=False),
    # v2: how often each kind of repair was made (from the call's audit, whose first 100 entries are kept)
    pa.field("heal_repair_kinds", pa.list_(pa.struct([("kind", pa.string()), ("count", pa.int32())]))),
    pa.field("schema_valid", pa.bool_()),
    pa.field("ip_hash", pa.string()),  # HMAC-SHA256 of the client IP under a key derived from the pepper
    pa.field("prompt_fingerprint", pa.string()),  # salted HMAC of the prompt (shared/metering/fingerprint.py)
], metadata={METADATA_KEY: str(VERSION).encode()})

COLUMNS = tuple(SCHEMA.names)
SORT_KEYS = [("created_at", "ascending"), ("id", "ascending")]  # a file's rows, in one order: same input, same bytes


def ip_hasher(pepper: bytes) -> "IpHasher":
    return IpHasher(hmac.new(pepper, b"switchyard usage lake: client ip v1", hashlib.sha256).digest())


class IpHasher:
    """A keyed hash of client IPs: equal addresses hash alike; without the pepper, a hash names no address
    (a plain hash of an IPv4 address is reversed by trying all 2^32)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, ip: str | None) -> str | None:
        if not ip:
            return None
        return hmac.new(self._key, ip.encode(), hashlib.sha256).hexdigest()[:32]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value == value and abs(value) < 2**62 else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value == value and abs(value) < 1e300 else 0.0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _repair_kinds(audit: Any) -> list[dict[str, Any]] | None:
    """The audit's entries counted by kind, in kind order (kinds only: offsets and paths stay in the table)."""
    if not isinstance(audit, list):
        return None
    counts: dict[str, int] = {}
    for entry in audit:
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind:
            counts[kind] = counts.get(kind, 0) + 1
    return [{"kind": k, "count": n} for k, n in sorted(counts.items())] or None


def row(record: dict[str, Any], hash_ip: IpHasher) -> dict[str, Any]:
    """A usage record (as the usage table holds it) as a lake row. Tolerant: a field that is missing or of the
    wrong type becomes null or zero rather than failing the batch; only an id and a time are required."""
    rid, created = record.get("id"), record.get("created_at")
    if not isinstance(rid, str) or not rid or not isinstance(created, (int, float)):
        raise ValueError("a usage record needs an id and created_at")
    attempts = record.get("attempts")
    categories = record.get("categories")
    error_code = record.get("error_code")
    ttft = record.get("ttft_ms")
    anonymous = record.get("zero_log") is True  # (shared/chat/record.py leaves these out already: a second lock)
    out = {
        "id": rid,
        "created_at": datetime.fromtimestamp(float(created), timezone.utc),
        "schema_version": VERSION,
        "key_id": _str(record.get("key_id")) or "",
        "app": _str(record.get("app")),
        "app_title": _str(record.get("app_title")),
        "app_referer": _str(record.get("app_referer")),
        "categories": [c for c in categories if isinstance(c, str)] if isinstance(categories, list) else None,
        "operation_name": "chat",
        "model": _str(record.get("model")),
        "lab": _str(record.get("lab")),
        "request_model": _str(record.get("request_model")) or _str(record.get("model")),
        "response_model": _str(record.get("upstream_model")),
        "provider_name": _str(record.get("provider")),
        "response_id": _str(record.get("upstream_id")),
        "route": _str(record.get("route")),
        "route_rule": _str(record.get("route_rule")),
        "status": _str(record.get("status")) or "completed",
        "error_code": _int(error_code) if isinstance(error_code, (int, float)) else None,
        "error_type": _str(record.get("error_type")),
        "finish_reason": _str(record.get("finish_reason")),
        "input_tokens": _int(record.get("prompt_tokens")),
        "output_tokens": _int(record.get("completion_tokens")),
        "cache_read_input_tokens": _int(record.get("cached_tokens")),
        "reasoning_output_tokens": _int(record.get("reasoning_tokens")),
        "usage_estimated": record.get("usage_estimated") is True,
        "cost_usd": _float(record.get("cost")),
        "latency_ms": _float(record.get("latency_ms")),
        "ttft_ms": _float(ttft) if isinstance(ttft, (int, float)) else None,
        "streamed": record.get("streamed") is True,
        "attempts": min(len(attempts), 32767) if isinstance(attempts, list) else (1 if record.get("provider") else 0),
        "heal_status": _str(record.get("heal_status")),
        "heal_repairs": min(_int(record.get("heal_repairs")), 2**31 - 1),
        "heal_repair_kinds": _repair_kinds(record.get("heal_audit")),
        "schema_valid": record.get("schema_valid") if isinstance(record.get("schema_valid"), bool) else None,
        "ip_hash": hash_ip(_str(record.get("client_ip"))),
        "prompt_fingerprint": _str(record.get("prompt_fingerprint")),
    }
    if anonymous:
        out.update(app=None, app_title=None, app_referer=None, categories=None, ip_hash=None, prompt_fingerprint=None)
    return out


def table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as one Arrow table in the schema, sorted by (created_at, id)."""
    t = pa.Table.from_pylist(rows, schema=SCHEMA)
    return t.sort_by(SORT_KEYS) if t.num_rows > 1 else t


def conform(t: pa.Table) -> pa.Table:
    """A table read from any version's file, in this version's columns (missing ones null, unknown ones dropped)."""
    columns = []
    for f in SCHEMA:
        if f.name in t.column_names:
            columns.append(t.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(t.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA.remove_metadata().with_metadata(SCHEMA.metadata))


def glue_columns() -> list[dict[str, str]]:
    """The schema as Glue/Athena columns (template.yaml's UsageLakeTable lists them; a test keeps them equal)."""
    def glue_type(t: pa.DataType) -> str:
        if pa.types.is_list(t):
            return f"array<{glue_type(t.value_type)}>"
        if pa.types.is_struct(t):
            return "struct<" + ",".join(f"{t.field(k).name}:{glue_type(t.field(k).type)}"
                                        for k in range(t.num_fields)) + ">"
        return {pa.string(): "string", pa.int16(): "smallint", pa.int32(): "int", pa.int64(): "bigint",
                pa.float64(): "double", pa.bool_(): "boolean"}.get(t) or ("timestamp" if pa.types.is_timestamp(t)
                                                                        else str(t))
    return [{"Name": f.name, "Type": glue_type(f.type)} for f in SCHEMA]
