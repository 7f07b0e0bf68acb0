"""The usage table's stream consumer: every usage record into the lake, exactly once (shared/lake/export.py).

`handler` takes a DynamoDB Stream batch (ReportBatchItemFailures on); `maintain` is the schedule: hourly it
compacts today's and yesterday's partitions, daily it also reconciles yesterday against the table, repairing
what a batch gave up on. The same code runs locally in infra/lake_export.py against the moto stack.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from shared.lake.compact import compact_day
from shared.lake.export import Exporter, default_exporter
from shared.lake.reconcile import reconcile, table_records

log = logging.getLogger("switchyard.lake")


@lru_cache(maxsize=1)
def exporter() -> Exporter:
    return default_exporter()


def handler(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
    return exporter().write_batch(event.get("Records") or [])


def maintain(event: dict[str, Any] | None = None, _context: Any = None) -> dict[str, Any]:
    """The schedule's work: `{"compact": true}` compacts today and yesterday (UTC); `{"reconcile": true}`
    first reconciles yesterday against the usage table and writes the records the lake is missing."""
    from shared.config import get_settings

    event = event or {}
    today = datetime.now(timezone.utc).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    ex = exporter()
    result: dict[str, Any] = {}
    if event.get("reconcile"):
        reports = reconcile(table_records(get_settings().usage_table), ex, [yesterday], repair=True)
        result["reconciled"] = [r.as_dict() for r in reports]
    if event.get("compact", True):
        result["compacted"] = [{"day": c.day, "inputs": c.inputs, "rows": c.rows, "removed": c.removed}
                               for c in (compact_day(ex.store, day) for day in (yesterday, today.isoformat()))]
    log.info("usage lake maintenance: %s", result)
    return result
