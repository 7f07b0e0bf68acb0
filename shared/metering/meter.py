"""The meter: collects usage events on the request path (cheap, synchronous) and writes them off it.

`flush` writes pending events in batches to a `UsageStore` (shared/metering/store.py), oldest first. What a failure does:
- a passing one (connection, throttling, a transaction conflict) keeps the batch pending for the next flush,
  which comes after a backoff; after `STRIKES` such failures in a row the batch is treated as suspect, below;
- any other (DynamoDB refused the request, or answered with an error that says nothing) isolates the batch: it
  is split in halves until what can be written is written; an event that fails alone is set aside as a dead
  letter (shared/metering/dead_letters.py) when DynamoDB refused it outright, when other writes of the same pass
  succeeded (so the store is up and the event itself is the problem), or after `STRIKES` passes. An outage found
  while isolating (connection or throttling) stops the pass and keeps the rest pending.
So one bad event can never hold back the others, and nothing is dropped in silence.
Under uvicorn a background task flushes every `interval` seconds and drains the meter on shutdown; on Lambda the
handler flushes before it returns (a frozen function runs no background work).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Iterable

from shared.errors import StorageError
from shared.metering.dead_letters import DeadLetters
from shared.metering.events import UsageEvent
from shared.metering.store import UsageStore
from shared.metering.writer import MAX_ACTIONS, actions_needed

log = logging.getLogger("switchyard.metering")

STRIKES = 3  # passing failures in a row before a batch is isolated; failed passes before an event is set aside
MAX_BACKOFF = 5.0
_THROTTLES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
                        "LimitExceededException"})
_PASSING_REASONS = frozenset({"None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_REFUSALS = frozenset({"ValidationException", "SerializationException"})


def is_outage(error: StorageError) -> bool:
    """The store could not be reached or is shedding load: say nothing about the events themselves."""
    m = error.metadata
    if m.get("transport") or m.get("aws_code") in _THROTTLES:
        return True
    reasons = m.get("reasons")
    return bool(reasons) and all(r in _PASSING_REASONS for r in reasons)


def is_refusal(error: StorageError) -> bool:
    """DynamoDB refused the request itself: an item it will never accept."""
    m = error.metadata
    return m.get("aws_code") in _REFUSALS or "ValidationError" in m.get("reasons", ())


def is_transient(error: StorageError) -> bool:
    """Worth retrying the same batch later: an outage, or an error DynamoDB named that is not a refusal (an
    error with no name, such as an HTML error page, says nothing and is isolated at once)."""
    return is_outage(error) or (not is_refusal(error) and bool(error.metadata.get("aws_code")))


class _Outage(Exception):
    pass


def next_batch(pending: Iterable[UsageEvent]) -> list[UsageEvent]:
    """As many pending events as fit in one transaction (each new key or day adds counter updates)."""
    batch: list[UsageEvent] = []
    periods_seen: set[tuple[str, str]] = set()
    used = 0
    for event in pending:
        cost, new = actions_needed(event, periods_seen)
        if used + cost > MAX_ACTIONS:
            break
        batch.append(event)
        periods_seen |= new
        used += cost
    return batch


class Meter:
    def __init__(self, store: UsageStore, *, interval: float, dead_letters: DeadLetters,
                 on_record: Callable[[UsageEvent], None] | None = None) -> None:
        self.store = store
        self.interval = interval
        self.on_record = on_record
        self.dead_letters = dead_letters
        self._pending: dict[str, UsageEvent] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._strikes = 0  # passing failures of the head batch in a row
        self._suspect: dict[str, int] = {}  # event id → passes in which it failed alone
        self.written = 0
        self.failures = 0

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
        """Write everything that can be written now (blocking); returns how many events were written or set aside."""
        done_total = 0
        with self._flushing:
            while True:
                with self._lock:
                    batch = next_batch(self._pending.values())
                if not batch:
                    return done_total
                try:
                    self._write(batch)
                    done, stop = batch, False
                except StorageError as e:
                    self.failures += 1
                    self._strikes += 1
                    if is_transient(e) and self._strikes < STRIKES:
                        log.warning("usage write failed (%s); %d events kept for retry", e.message, self.backlog)
                        return done_total
                    done, stop = self._isolate(batch, e)
                self._strikes = 0
                self._settled(done)
                done_total += len(done)
                if stop:
                    return done_total

    def _write(self, events: list[UsageEvent]) -> None:
        """Write a batch; an event that cannot even be expressed (a bug, a cost that is not finite) is a refusal
        like any DynamoDB refuses, so it is isolated and set aside, never left at the head of the queue."""
        try:
            self.store.write(events)
        except StorageError:
            raise
        except Exception as e:
            raise StorageError(f"usage record not writable ({type(e).__name__}: {e})",
                               metadata={"aws_code": "ValidationException"}) from e

    def _settled(self, done: list[UsageEvent]) -> None:
        with self._lock:
            for event in done:
                self._pending.pop(event.id, None)
                self._suspect.pop(event.id, None)
        self.written += len(done)

    def _isolate(self, batch: list[UsageEvent], first: StorageError) -> tuple[list[UsageEvent], bool]:
        """Split a failed batch until what can be written is written; returns what is done (written or set aside)
        and whether an outage stopped the pass."""
        written: list[UsageEvent] = []
        alone: list[tuple[UsageEvent, StorageError]] = []

        def attempt(part: list[UsageEvent], error: StorageError | None) -> None:
            if error is None:
                try:
                    self._write(part)
                    written.extend(part)
                    return
                except StorageError as e:
                    if is_outage(e):
                        raise _Outage from e
                    error = e
            if len(part) == 1:
                alone.append((part[0], error))
                return
            middle = len(part) // 2
            attempt(part[:middle], None)
            attempt(part[middle:], None)

        outage = False
        try:
            attempt(batch, first)
        except _Outage:
            outage = True
        done = list(written)
        for event, error in alone:
            strikes = self._suspect[event.id] = self._suspect.get(event.id, 0) + 1
            if is_refusal(error) or (written and not outage) or strikes >= STRIKES:
                self.dead_letters.add(event.to_record(self.store.retention_days), error.message)
                done.append(event)
        return done, outage or len(done) < len(batch)

    # -- in the background (uvicorn) -----------------------------------------------------------------------
    def start(self) -> None:
        """Flush in the background on the running loop (uvicorn). Not used on Lambda."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        delay = self.interval
        while True:
            await asyncio.sleep(delay)
            if not self._pending:
                continue
            failures = self.failures
            try:
                await asyncio.to_thread(self.flush)
            except Exception:  # a bug must not end metering for the life of the process
                log.exception("usage flush failed")
                self.failures += 1
            delay = min(delay * 2, MAX_BACKOFF) if self.failures > failures and self._pending else self.interval

    async def stop(self, *, drain_seconds: float = 15.0) -> None:
        """Stop the background task, then drain (in a worker thread)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.to_thread(self.drain, drain_seconds)

    def drain(self, seconds: float, *, final: bool = True) -> int:
        """Flush until nothing is pending or `seconds` have passed (backing off while writes fail). When `final`
        (the process is ending), what still could not be written is logged whole, never dropped in silence;
        otherwise it stays pending (Lambda: for the next invocation). Returns how many were left."""
        deadline = time.monotonic() + seconds
        delay = 0.05
        while self._pending:
            try:
                self.flush()
            except Exception:
                log.exception("usage flush failed while draining")
            if not self._pending or time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        for event in list(self._pending.values()) if final else ():
            log.error("usage record %s not written before shutdown: %s", event.id,
                      _json(event.to_record(self.store.retention_days)))
        return self.backlog


def _json(record: dict[str, Any]) -> str:
    import orjson  # shutdown path only

    return orjson.dumps(record).decode()
