"""Where usage records are kept: what metering and the API need of that place (`UsageStore`) and the DynamoDB
one (`DynamoUsageStore`), which `functions/gateway/state.py` builds.

Records are written in batches together with the keys' spend (writer.py), and read by request id
(`GET /generation`), by model, newest first (endpoint health, stats.py), and by key, newest first (a key's calls
in the audit trail, shared/audit/calls.py)."""

from __future__ import annotations

from typing import Any, Protocol

from shared.aws.dynamodb import Table
from shared.metering.events import UsageEvent
from shared.metering.writer import UsageWriter

__all__ = ["DynamoUsageStore", "UsageStore"]

MAX_PAGES = 4  # DynamoDB pages stop at 1 MB: 1000 records fit in one or two


class UsageStore(Protocol):
    """Usage records (DynamoUsageStore; an in-memory fake in tests)."""

    retention_days: int  # how long a record is kept: each carries its own expiry

    def write(self, events: list[UsageEvent]) -> list[UsageEvent]:
        """Record a batch, each event once however often it is written; returns those recorded already."""
        ...

    def get(self, record_id: str) -> dict[str, Any] | None:
        """One record by its request id."""
        ...

    def for_model(self, model: str, *, since: float, limit: int) -> list[dict[str, Any]]:
        """The model's records created at `since` or later, newest first, at most `limit` of them. They may
        hold only what endpoint health reads: provider, status, error_code, latency_ms, ttft_ms, completion_tokens
        (the `by_model` index projects no more)."""
        ...

    def for_key(self, key_id: str, *, start: float, end: float, limit: int,
                after: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """A page of the key's records created from `start` to `end` (epoch seconds, inclusive), newest first,
        continuing after the position `after`; and the position to continue from (None: no more)."""
        ...


class DynamoUsageStore:
    """Records in the usage table (by model through its `by_model` index); spend in the counters table."""

    def __init__(self, usage_table: str, counters_table: str, retention_days: int) -> None:
        self.table = Table(usage_table)
        self.writer = UsageWriter(usage_table, counters_table, retention_days)
        self.retention_days = retention_days

    def write(self, events: list[UsageEvent]) -> list[UsageEvent]:
        return self.writer.write(events)

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self.table.get({"id": record_id})

    def for_model(self, model: str, *, since: float, limit: int) -> list[dict[str, Any]]:
        return self.table.newest("by_model", "model", model, "created_at", round(since, 3), limit=limit,
                                 max_pages=MAX_PAGES)

    def for_key(self, key_id: str, *, start: float, end: float, limit: int,
                after: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        return self.table.page("#k = :k AND #c BETWEEN :a AND :b", names={"#k": "key_id", "#c": "created_at"},
                               values={":k": key_id, ":a": round(start, 3), ":b": round(end, 3)}, index="by_key",
                               forward=False, limit=limit, start=after)
