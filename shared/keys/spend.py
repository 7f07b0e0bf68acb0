"""Spend limits that hold across processes: a call's worst case is held against the key before it runs.

The key's counter row its limit applies to (`total`, or the current day, week or month with `limit_reset`:
shared/keys/counters.py) carries `committed` (spend plus holds) and `holds`
({request id: {"a": USD, "t": epoch seconds}}). A hold is one conditional UpdateItem on that row:
`committed + amount <= limit`, checked and applied atomically by DynamoDB, so N concurrent calls on M Lambda
instances can never commit more than the limit. The usage record's transaction (shared/metering/writer.py)
settles the hold: it removes it and adds the real cost. A hold whose call never settled (the process died) is
released once it is older than `stale_after`, when it would otherwise refuse a call.

Keys without a limit never come here: the hot path pays nothing for this.
"""

from __future__ import annotations

import time
from typing import Any

from shared.aws.dynamodb import ConditionFailedError, Table
from shared.errors import InsufficientCreditsError, StorageError
from shared.keys.counters import TOTAL, counter_key

_ATTEMPTS = 5  # tries when a concurrent transaction on the row gets in the way (TransactionConflict)


class SpendGuard:
    def __init__(self, counters_table: str, *, stale_after: float) -> None:
        self.table = Table(counters_table)
        self.stale_after = stale_after

    def hold(self, key_id: str, limit: float, request_id: str, amount: float, *, already: float = 0.0,
             usage: float = 0.0, period: str = TOTAL) -> None:
        """Hold `amount` USD for a call (raising an earlier hold of `already` to it) on the counter row the key's
        limit applies to (`period`: shared/keys/counters.py `limit_period`), or raise 402."""
        extra = round(amount - already, 12)
        if extra <= 0:
            return
        released = False
        for attempt in range(_ATTEMPTS):
            try:
                self.table.update(
                    {"pk": counter_key(key_id), "period": period},
                    "SET committed = committed + :a, holds.#r = :h",
                    names={"#r": request_id}, condition="attribute_exists(holds) AND committed <= :room",
                    values={":a": extra, ":room": round(limit - extra, 12),
                            ":h": {"a": round(amount, 12), "t": round(time.time(), 3)}})
                return
            except ConditionFailedError:
                row = self._row(key_id, period)
                if "holds" not in row or "committed" not in row:
                    # a key that never held anything on this row (a new period, or from before holds existed)
                    self._start(key_id, float(row.get("cost", 0)) if period != TOTAL else usage, period)
                    continue
                if not released and self.release_stale(key_id, row, period):
                    released = True
                    continue
                raise self._refusal(limit, row, amount) from None
            except StorageError as e:
                if e.metadata.get("aws_code") != "TransactionConflictException" or attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise StorageError("Storage is unavailable (the spend hold kept being contended)",
                           metadata={"aws_code": "TransactionConflictException"})

    def release_stale(self, key_id: str, row: dict[str, Any] | None = None, period: str = TOTAL) -> int:
        """Release the holds older than `stale_after` (their calls died unsettled); returns how many."""
        row = row if row is not None else self._row(key_id, period)
        cutoff = time.time() - self.stale_after
        stale = {rid: h for rid, h in (row.get("holds") or {}).items() if float(h.get("t", 0)) < cutoff}
        if not stale:
            return 0
        names = {f"#h{i}": rid for i, rid in enumerate(stale)}
        try:
            self.table.update({"pk": counter_key(key_id), "period": period},
                              "ADD committed :m REMOVE " + ", ".join(f"holds.{n}" for n in names),
                              names=names, condition=" AND ".join(f"attribute_exists(holds.{n})" for n in names),
                              values={":m": -round(sum(float(h.get("a", 0)) for h in stale.values()), 12)})
        except ConditionFailedError:
            return 0  # settled or released meanwhile: the next refusal looks again
        return len(stale)

    def resync(self, key_id: str) -> None:
        """Make the row ready for holds (when a limit is set): metering keeps `committed` equal to spend plus
        holds for every key, so it is only set where it is missing (a row from before holds existed), from the
        spend and holds read; never overwritten, so no concurrent hold or settle can be lost."""
        row = self._row(key_id)
        held = sum(float(h.get("a", 0)) for h in (row.get("holds") or {}).values())
        self.table.update({"pk": counter_key(key_id), "period": TOTAL},
                          "SET committed = if_not_exists(committed, :c), holds = if_not_exists(holds, :empty)",
                          values={":c": round(float(row.get("cost", 0)) + held, 12), ":empty": {}})

    def _start(self, key_id: str, usage: float, period: str = TOTAL) -> None:
        self.table.update({"pk": counter_key(key_id), "period": period},
                          "SET committed = if_not_exists(committed, :c), holds = if_not_exists(holds, :empty)",
                          values={":c": round(usage, 12), ":empty": {}})

    def _row(self, key_id: str, period: str = TOTAL) -> dict[str, Any]:
        return self.table.get({"pk": counter_key(key_id), "period": period}, consistent=True) or {}

    @staticmethod
    def _refusal(limit: float, row: dict[str, Any], amount: float) -> InsufficientCreditsError:
        remaining = max(limit - float(row.get("committed", 0)), 0.0)
        held = sum(float(h.get("a", 0)) for h in (row.get("holds") or {}).values())
        message = (f"This call could cost up to ${amount:.6f}; the key has ${remaining:.6f} of its ${limit:g} "
                   "limit left" + (f" (${held:.6f} of that is held for calls in flight)" if held else ""))
        return InsufficientCreditsError(message, metadata={
            "reason": "limit_spent" if remaining <= 0 else "limit_insufficient", "limit": limit,
            "limit_remaining": round(remaining, 9), "required": round(amount, 9), "held": round(held, 9)})
