"""What a call reads of the organisation's governance (`Governance`, from memory), and the tally of calls refused
for want of an approval.

`GovernanceSource` loads the settings and the approved models on a process's first call (one Query of the
catalog table's `governance` partition), then again in the background every `ttl` seconds, as the catalog is
refreshed (shared/catalog/source.py); the process that makes a change applies it at once. So an approval, a
revocation or a settings change reaches every process within `ttl` seconds (30 by default). A process that has
never loaded it refuses calls (503 storage_unavailable) rather than guess that approval is off; one that has
keeps what it last loaded while the table cannot be read.

Refused calls are counted in memory (`requested`) and written in batches (`flush`): one update per model a
batch, a batch when a model is refused for the first time in the process and otherwise at most every
`flush_every` seconds, so a flood of refused calls costs a handful of writes. On Lambda a batch started in one
invocation may finish in the next (a frozen function runs no threads); the refusals of a process's last
interval are lost with it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from shared.errors import StorageError
from shared.governance.store import KEY_IDS_KEPT, Approval, GovernanceStore, OrgSettings

__all__ = ["Governance", "GovernanceSource", "OFF"]

log = logging.getLogger("switchyard.governance")


@dataclass(frozen=True, slots=True)
class Governance:
    """One snapshot: what every call of the moment is held to."""

    model_approval: bool = False
    residency: tuple[str, ...] | None = None
    approved: frozenset[str] = frozenset()  # canonical catalog ids (meaningful only with model_approval)
    source: "GovernanceSource | None" = None  # where refusals are counted

    def requested(self, models: list[str], key_id: str) -> None:
        if self.source is not None:
            self.source.requested(models, key_id)


OFF = Governance()  # no approval, no residency: what a process without a governance store is held to


class GovernanceSource:
    def __init__(self, store: GovernanceStore, *, ttl: float = 30.0, flush_every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.store, self.ttl, self.flush_every = store, ttl, flush_every
        self.clock, self.wall = clock, wall
        self.current = OFF
        self.settings = OrgSettings()
        self._loaded = False
        self._next = 0.0
        self._busy = threading.Lock()
        self._order = threading.Lock()
        self._started = self._applied = 0
        self._tally: dict[str, list] = {}  # model → [count, first, last, key ids]
        self._tally_lock = threading.Lock()
        self._flushing = threading.Lock()
        self._written: set[str] = set()  # models this process has written a batch for
        self._flush_at = 0.0

    # -- reading -------------------------------------------------------------------------------------------
    def latest(self) -> Governance:
        """The current snapshot, refreshed first if due: one clock read on the request path."""
        if self.clock() >= self._next:
            if not self._loaded:
                try:
                    self.refresh_now()
                except StorageError as e:
                    raise StorageError("Storage is unavailable (the organisation's governance settings could not "
                                       "be read; calls are refused until they are)", metadata=e.metadata) from e
            elif self._busy.acquire(blocking=False):
                self._busy.release()
                self._next = self.clock() + self.ttl
                threading.Thread(target=self._refresh, name="governance-refresh", daemon=True).start()
        return self.current

    def refresh_now(self) -> Governance:
        with self._order:
            self._started += 1
            ticket = self._started
        settings, approvals = self.store.load()
        snapshot = Governance(model_approval=settings.model_approval, residency=settings.residency,
                              approved=frozenset(a.model for a in approvals if a.status == "approved"), source=self)
        with self._order:
            if ticket > self._applied:  # an older refresh that ends late must not undo a newer one
                self._applied = ticket
                self.current, self.settings = snapshot, settings
            self._loaded, self._next = True, self.clock() + self.ttl
            return self.current

    def _refresh(self) -> None:
        with self._busy:
            try:
                self.refresh_now()
            except StorageError as e:  # keep what we have
                log.warning("governance not refreshed: %s", e)

    # -- counting refusals ---------------------------------------------------------------------------------
    def requested(self, models: list[str], key_id: str) -> None:
        """Calls for `models` were refused for want of an approval: count them; start a batch if one is due."""
        now = self.wall()
        with self._tally_lock:
            for model in models:
                t = self._tally.get(model)
                if t is None:
                    t = self._tally[model] = [0, now, now, set()]
                t[0] += 1
                t[2] = now
                if len(t[3]) < KEY_IDS_KEPT:
                    t[3].add(key_id)
            due = self.clock() >= self._flush_at or any(m not in self._written for m in models)
        if due and self._flushing.acquire(blocking=False):
            threading.Thread(target=self._flush_held, name="approval-requests", daemon=True).start()

    def _flush_held(self) -> None:
        try:
            self._write()
        finally:
            self._flushing.release()

    def flush(self) -> None:
        """Write what is counted (waits for a batch under way)."""
        with self._flushing:
            self._write()

    def _write(self) -> None:
        with self._tally_lock:
            batch, self._tally = self._tally, {}
            self._flush_at = self.clock() + self.flush_every
        for model, (count, first, last, key_ids) in batch.items():
            try:
                self.store.add_requests(model, count, first, last, key_ids)
                self._written.add(model)
            except StorageError as e:  # counted again with the next batch
                log.warning("approval requests for %s not written: %s", model, e)
                with self._tally_lock:
                    t = self._tally.setdefault(model, [0, first, last, set()])
                    t[0] += count
                    t[1], t[2] = min(t[1], first), max(t[2], last)
                    t[3] |= set(list(key_ids)[:KEY_IDS_KEPT - len(t[3])])

    def approvals(self) -> list[Approval]:
        """Every row, this process's counts written first (read from the store, not the snapshot)."""
        self.flush()
        return self.store.load()[1]
