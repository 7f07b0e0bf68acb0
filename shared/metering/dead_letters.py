"""Usage records DynamoDB would not take, kept where an operator can find and replay them.

A dead letter is the whole record (never prompt or completion text: records hold none) as JSON, with the error,
in the counters table under pk "dead-letter" (sort key: time and request id), so it survives the process and is
listed by any of them. If even that write fails, the record is logged whole at ERROR level: never dropped in
silence.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from shared.aws.dynamodb import Table
from shared.errors import StorageError
from shared.metering.events import UsageEvent

if TYPE_CHECKING:
    from shared.metering.store import UsageStore

log = logging.getLogger("switchyard.metering")
PK = "dead-letter"


class DeadLetters:
    def __init__(self, counters_table: str, retention_days: int) -> None:
        self.table = Table(counters_table)
        self.retention_days = retention_days
        self.count = 0  # set aside by this process (reported by /health)

    def add(self, record: dict[str, Any], error: str) -> None:
        self.count += 1
        now = time.time()
        log.error("usage record %s set aside as a dead letter (%s)", record.get("id"), error)
        try:
            self.table.update({"pk": PK, "period": f"{now:.3f}#{record.get('id')}"},
                              "SET #r = :r, #e = :e, expires_at = :x", names={"#r": "record", "#e": "error"},
                              values={":r": orjson.dumps(record).decode(), ":e": error[:500],
                                      ":x": int(now) + self.retention_days * 86400})
        except StorageError as e:
            log.error("dead letter %s not stored (%s); the record: %s", record.get("id"), e.message,
                      orjson.dumps(record).decode())

    def list(self) -> list[dict[str, Any]]:
        """Every stored dead letter: {"record": {...}, "error": str, "period": its sort key}, oldest first."""
        found = self.table.query("pk", PK)
        return [{"record": orjson.loads(i["record"]), "error": i.get("error", ""), "period": i["period"]}
                for i in found]

    def replay(self, store: "UsageStore") -> tuple[int, list[tuple[str, str]]]:
        """Write each dead letter again (once its cause is fixed), deleting those that landed (a record that
        had landed already is not counted twice). Returns how many landed and (id, error) of those that did not."""
        landed, failed = 0, []
        for letter in self.list():
            record = {"model": "", **letter["record"]}  # a call refused before its model was known has none
            event = UsageEvent(**{k: v for k, v in record.items() if k in _EVENT_FIELDS})
            try:
                store.write([event])
            except StorageError as e:
                failed.append((event.id, e.message))
                continue
            self.table.delete({"pk": PK, "period": letter["period"]})
            landed += 1
        return landed, failed


_EVENT_FIELDS = frozenset(UsageEvent.__dataclass_fields__)
