"""Writes batches of usage events to DynamoDB, idempotently, each batch one `TransactWriteItems`:

- every record is a conditional put on its request id (a retried batch never double counts);
- the batch's spend is `ADD`ed to each key's counters (total, month, week, day) in the same transaction, and to
  their `committed` net of what was held on each row for the calls before they ran (shared/keys/spend.py);
- each call's hold is removed from the row that held it, conditional on it still being there: a hold that was
  released as stale in the meantime is settled as if there had been none, so nothing is released twice.
A crash never leaves a record without its spend, or a hold settled without its record.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from shared.aws.codec import item
from shared.aws.dynamodb import Table, TransactionConflictError
from shared.aws.dynamodb_json import transact_write
from shared.errors import StorageError
from shared.keys.counters import TOTAL, counter_key, periods_of_day
from shared.metering.events import UsageEvent, day_of

MAX_ACTIONS = 100  # TransactWriteItems' limit


class _Action(NamedTuple):
    kind: str  # "put" | "counter"
    event: UsageEvent | None = None
    key_id: str | None = None
    settles: tuple[UsageEvent, ...] = ()  # the events whose holds a total-row update removes


def actions_needed(event: UsageEvent, periods_seen: set[tuple[str, str]]) -> tuple[int, set[tuple[str, str]]]:
    """How many actions one more event adds to a batch (its put, new counter rows), and the new rows."""
    new = {(event.key_id, day_of(int(event.created_at)))} - periods_seen
    return 1 + 4 * len(new), new  # (total, month, week, day)


class UsageWriter:
    def __init__(self, usage_table: str, counters_table: str, retention_days: int) -> None:
        self.usage = Table(usage_table)
        self.counters_table = counters_table
        self.retention_days = retention_days

    def actions(self, events: list[UsageEvent]) -> tuple[list[dict[str, Any]], list[_Action]]:
        """The transaction's actions, and what each one is for (to read cancellation reasons by position)."""
        out: list[dict[str, Any]] = []
        roles: list[_Action] = []
        totals: dict[tuple[str, str], list[Any]] = {}
        for e in events:
            out.append({"Put": {"TableName": self.usage.name, "Item": item(e.to_record(self.retention_days)),
                                "ConditionExpression": "attribute_not_exists(id)"}})
            roles.append(_Action("put", e))
            for period in (TOTAL, *periods_of_day(day_of(int(e.created_at)))):
                t = totals.setdefault((e.key_id, period), [0.0, 0, 0, 0, []])
                t[0] += e.cost
                t[1] += 1
                t[2] += e.prompt_tokens
                t[3] += e.completion_tokens
                if e.reserved and period == (e.reserved_on or TOTAL):
                    t[4].append(e)
        for (key_id, period), (cost, requests, prompt, completion, held) in totals.items():
            values: dict[str, Any] = {":c": round(cost, 12), ":r": requests, ":p": prompt, ":t": completion}
            update: dict[str, Any] = {"TableName": self.counters_table,
                                      "Key": item({"pk": counter_key(key_id), "period": period})}
            # `committed` on every row: a limit may apply to any of them (shared/keys/counters.py)
            expression = "ADD cost :c, requests :r, prompt_tokens :p, completion_tokens :t, committed :m"
            values[":m"] = round(cost - sum(e.reserved for e in held), 12)
            if held:
                names = {f"#h{i}": e.id for i, e in enumerate(held)}
                expression += " REMOVE " + ", ".join(f"holds.{n}" for n in names)
                update["ConditionExpression"] = " AND ".join(f"attribute_exists(holds.{n})" for n in names)
                update["ExpressionAttributeNames"] = names
            if period.startswith(("day#", "week#")):
                expression += " SET expires_at = if_not_exists(expires_at, :x)"
                values[":x"] = int(time.time()) + self.retention_days * 86400
            update.update(UpdateExpression=expression, ExpressionAttributeValues=item(values))
            out.append({"Update": update})
            roles.append(_Action("counter", key_id=key_id, settles=tuple(held)))
        return out, roles

    def write(self, events: list[UsageEvent]) -> list[UsageEvent]:
        """Write a batch; returns the events that were already recorded (and therefore skipped)."""
        skipped: list[UsageEvent] = []
        while events:
            actions, roles = self.actions(events)
            try:
                transact_write(actions)
                return skipped
            except TransactionConflictError as e:
                failed = [r for r, why in zip(roles, e.reasons) if why == "ConditionalCheckFailed"]
                duplicates = {r.event.id for r in failed if r.kind == "put"}
                unsettled = [r for r in failed if r.kind == "counter" and r.settles]
                if not failed or len(duplicates) + len(unsettled) < len(failed):
                    raise StorageError("usage transaction cancelled", metadata={"reasons": e.reasons}) from e
                released = sum(self._forget_released(role) for role in unsettled)
                if unsettled and not released and not duplicates:  # nothing to change: retrying would loop
                    raise StorageError("usage transaction cancelled", metadata={"reasons": e.reasons}) from e
                skipped.extend(ev for ev in events if ev.id in duplicates)
                events = [ev for ev in events if ev.id not in duplicates]
        return skipped

    def _forget_released(self, role: _Action) -> int:
        """Holds that are gone (released as stale) are settled as if the calls had held nothing; returns how many."""
        period = role.settles[0].reserved_on or TOTAL
        row = Table(self.counters_table).get({"pk": counter_key(role.key_id), "period": period}, consistent=True) or {}
        holds = row.get("holds") or {}
        gone = [event for event in role.settles if event.id not in holds]
        for event in gone:
            event.reserved = None
        return len(gone)
