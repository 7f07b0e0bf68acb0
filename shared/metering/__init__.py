"""Metering: one usage record per call, written together with the key's spend counters.

`Meter.record` is synchronous and cheap (the request path never waits on DynamoDB). Records are written by
`Meter.flush` in batches, each batch one `TransactWriteItems`: every record is a conditional put on its
request id and the spend of the batch is `ADD`ed to the counters in the same transaction. A retried batch
therefore never double counts, and a crash never leaves a record without its spend or the other way round.
Under uvicorn a background task flushes every `meter_flush_seconds`; on Lambda the handler flushes before
it returns (a frozen function runs no background work).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable, Literal

from shared.aws.dynamodb import Table, TransactionConflictError
from shared.aws.dynamodb_json import item, transact_write
from shared.catalog import Pricing
from shared.errors import StorageError
from shared.keys import counter_key, periods_of_day

log = logging.getLogger("switchyard.metering")

Status = Literal["completed", "failed", "cancelled"]
_MAX_ACTIONS = 100  # TransactWriteItems' limit: one put per event plus one update per (key, period)


def cost_of(pricing: Pricing, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
    """USD for a call at per-1M-token prices, cached prompt tokens at the cache-read price where there is one;
    zero tokens cost nothing."""
    cached = min(cached_tokens, prompt_tokens) if pricing.cache_read is not None else 0
    prompt = (prompt_tokens - cached) * pricing.prompt + cached * (pricing.cache_read or 0.0)
    return round((prompt + completion_tokens * pricing.completion) / 1_000_000, 12)


@dataclass(slots=True)
class UsageEvent:
    """What is recorded for a call: never the prompt or the completion."""

    id: str
    key_id: str
    created_at: float
    model: str
    lab: str
    provider: str | None = None
    upstream_model: str | None = None
    upstream_id: str | None = None
    app: str | None = None
    app_title: str | None = None
    app_referer: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: Status = "completed"
    error_code: int | None = None
    error_type: str | None = None
    finish_reason: str | None = None
    heal_status: str | None = None  # healed | skipped | failed; None when healing did not apply
    heal_repairs: int = 0
    heal_audit: list[dict[str, Any]] | None = None  # kinds, offsets, paths of the repairs: never content
    schema_valid: bool | None = None
    route: str | None = None  # the routing policy the call named (a virtual model), if any
    route_rule: str | None = None  # the policy's rule that chose the models
    attempts: list[dict[str, Any]] | None = None  # every upstream attempt: provider, model, status, latency, error
    streamed: bool = False
    client_ip: str | None = None
    user_agent: str | None = None

    def to_record(self, retention_days: int) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in _FIELDS}
        if not record["model"]:
            del record["model"]  # an index key cannot be empty (a call refused before its model was known)
        record["created_at"] = round(self.created_at, 3)
        record["day"] = _day(int(self.created_at))
        record["expires_at"] = int(self.created_at) + retention_days * 86400
        return record


_FIELDS = tuple(UsageEvent.__dataclass_fields__)


@lru_cache(maxsize=8)
def _day(epoch_second: int) -> str:
    """The UTC day of a second (cached: consecutive calls share their second)."""
    return datetime.fromtimestamp(epoch_second, timezone.utc).strftime("%Y-%m-%d")


class UsageWriter:
    """Writes batches of events to the usage and counters tables, idempotently."""

    def __init__(self, usage_table: str, counters_table: str, retention_days: int) -> None:
        self.usage = Table(usage_table)
        self.counters_table = counters_table
        self.retention_days = retention_days

    def actions(self, events: list[UsageEvent]) -> list[dict[str, Any]]:
        puts = [{"Put": {"TableName": self.usage.name, "Item": item(e.to_record(self.retention_days)),
                         "ConditionExpression": "attribute_not_exists(id)"}} for e in events]
        totals: dict[tuple[str, str], list[float]] = {}
        for e in events:
            day = _day(int(e.created_at))
            for period in ("total", *periods_of_day(day)):
                t = totals.setdefault((e.key_id, period), [0.0, 0, 0, 0])
                t[0] += e.cost
                t[1] += 1
                t[2] += e.prompt_tokens
                t[3] += e.completion_tokens
        updates = []
        for (key_id, period), (cost, requests, prompt, completion) in totals.items():
            values = {":c": round(cost, 12), ":r": requests, ":p": prompt, ":t": completion}
            expression = "ADD cost :c, requests :r, prompt_tokens :p, completion_tokens :t"
            if period.startswith("day#"):
                expression += " SET expires_at = if_not_exists(expires_at, :x)"
                values[":x"] = int(time.time()) + self.retention_days * 86400
            updates.append({"Update": {"TableName": self.counters_table,
                                       "Key": item({"pk": counter_key(key_id), "period": period}),
                                       "UpdateExpression": expression,
                                       "ExpressionAttributeValues": item(values)}})
        return puts + updates

    def write(self, events: list[UsageEvent]) -> list[UsageEvent]:
        """Write a batch; returns the events that were already recorded (and therefore skipped)."""
        try:
            transact_write(self.actions(events))
            return []
        except TransactionConflictError as e:
            duplicates = [ev for ev, reason in zip(events, e.reasons) if reason == "ConditionalCheckFailed"]
            if not duplicates:
                raise StorageError("usage transaction cancelled", metadata={"reasons": e.reasons}) from e
            seen = {ev.id for ev in duplicates}
            rest = [ev for ev in events if ev.id not in seen]
            return duplicates + (self.write(rest) if rest else [])


def _refused(error: StorageError) -> bool:
    """DynamoDB refused the request itself (an item it will never accept), as opposed to a passing failure."""
    return error.metadata.get("aws_code") == "ValidationException" or \
        "ValidationError" in error.metadata.get("reasons", ())


def _next_batch(pending: Any) -> list[UsageEvent]:
    """As many pending events as fit in one transaction (each new key or day adds counter updates)."""
    batch: list[UsageEvent] = []
    periods_seen: set[tuple[str, str]] = set()
    for event in pending:
        new = {(event.key_id, _day(int(event.created_at)))} - periods_seen
        if len(batch) + 1 + 3 * len(periods_seen | new) > _MAX_ACTIONS:
            break
        batch.append(event)
        periods_seen |= new
    return batch


class Meter:
    """Collects usage events and writes them off the request path."""

    def __init__(self, writer: UsageWriter, *, interval: float,
                 on_record: Callable[[UsageEvent], None] | None = None) -> None:
        self.writer = writer
        self.interval = interval
        self.on_record = on_record
        self._pending: dict[str, UsageEvent] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failures = 0
        self.dropped = 0  # events DynamoDB refused outright: logged one by one, never silently

    def record(self, event: UsageEvent) -> None:
        with self._lock:
            if event.id in self._pending:
                return
            self._pending[event.id] = event
        if self.on_record is not None:
            self.on_record(event)

    def pending(self, event_id: str) -> UsageEvent | None:
        return self._pending.get(event_id)

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write everything pending now (blocking). Events that fail for a passing reason stay pending for the
        next flush; a batch DynamoDB refuses is written one event at a time, so one bad event cannot hold back
        the others (the bad one is logged and dropped)."""
        written = 0
        with self._flushing:
            while True:
                with self._lock:
                    batch = _next_batch(self._pending.values())
                if not batch:
                    return written
                try:
                    self.writer.write(batch)
                    done = batch
                except StorageError as e:
                    if not _refused(e):
                        self.failures += 1
                        log.warning("usage write failed (%s); %d events kept for retry", e.message, self.backlog)
                        return written
                    done = self._one_by_one(batch)
                with self._lock:
                    for event in done:
                        self._pending.pop(event.id, None)
                written += len(done)
                self.written += len(done)
                if len(done) < len(batch):  # a passing failure stopped the one-by-one pass
                    return written

    def _one_by_one(self, batch: list[UsageEvent]) -> list[UsageEvent]:
        """The events of a refused batch that were written or dropped, in order, until a passing failure."""
        done = []
        for event in batch:
            try:
                self.writer.write([event])
            except StorageError as e:
                if not _refused(e):
                    self.failures += 1
                    return done
                self.dropped += 1
                log.error("usage record %s refused by DynamoDB and dropped (%s)", event.id, e.message)
            done.append(event)
        return done

    def start(self) -> None:
        """Flush in the background on the running loop (uvicorn). Not used on Lambda."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = self.interval
        while True:
            await asyncio.sleep(delay)
            if self._pending:
                failures = self.failures
                await asyncio.to_thread(self.flush)
                delay = min(delay * 2, 5.0) if self.failures > failures else self.interval

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.to_thread(self.flush)
