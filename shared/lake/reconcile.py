"""Reconciliation: the usage table against the lake, day by day — records, tokens and cost — and repair.

`reconcile(records, store, days)` compares the table's records (an iterable of plain dicts, e.g. a scan) with
what the lake reads for each day: counts and sums on both sides, and the ids missing from the lake. With
`repair`, the missing records are written to the lake (as `repair-<ids>` objects: the same ids give the same
object, so repairing twice adds nothing). The local stack runs it at start-up, for the records that were
metered but not exported before a crash; on AWS it is the tool for records a stream batch gave up on.
Records older than the table's retention exist only in the lake: such days are not compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow.compute as pc

from shared.lake import parts
from shared.lake.export import Exporter


@dataclass(slots=True)
class Totals:
    records: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": round(self.cost, 9)}


@dataclass(slots=True)
class DayReport:
    day: str
    table: Totals = field(default_factory=Totals)
    lake: Totals = field(default_factory=Totals)
    missing: list[str] = field(default_factory=list)  # in the table, not in the lake
    extra: int = 0  # in the lake, not in the table (expired from the table, or never metered: a defect)
    repaired: int = 0

    @property
    def matches(self) -> bool:
        t, lk = self.table, self.lake
        return (t.records, t.prompt_tokens, t.completion_tokens) == (lk.records, lk.prompt_tokens,
                                                                   lk.completion_tokens) \
            and abs(t.cost - lk.cost) < 1e-9 and not self.missing

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, "matches": self.matches, "table": self.table.as_dict(), "lake": self.lake.as_dict(),
                "missing": len(self.missing), "extra": self.extra, "repaired": self.repaired}


def _day(record: dict[str, Any]) -> str:
    return record.get("day") or datetime.fromtimestamp(float(record["created_at"]), timezone.utc).strftime("%Y-%m-%d")


def reconcile(records: Iterable[dict[str, Any]], exporter: Exporter, days: Iterable[str] | None = None, *,
              repair: bool = False) -> list[DayReport]:
    wanted = set(days) if days is not None else None
    by_day: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if not isinstance(r.get("id"), str) or not isinstance(r.get("created_at"), (int, float)):
            continue
        day = _day(r)
        if wanted is None or day in wanted:
            by_day[day][r["id"]] = r
    reports = []
    for day in sorted(wanted if wanted is not None else by_day):
        report = DayReport(day)
        table_records = by_day.get(day, {})
        for r in table_records.values():
            report.table.records += 1
            report.table.prompt_tokens += int(r.get("prompt_tokens") or 0)
            report.table.completion_tokens += int(r.get("completion_tokens") or 0)
            report.table.cost += float(r.get("cost") or 0)
        lake = parts.read_day(exporter.store, day)
        lake_ids = set(lake.column("id").to_pylist())
        report.lake = Totals(lake.num_rows, int(pc.sum(lake.column("input_tokens")).as_py() or 0),
                             int(pc.sum(lake.column("output_tokens")).as_py() or 0),
                             float(pc.sum(lake.column("cost_usd")).as_py() or 0.0))
        report.missing = sorted(set(table_records) - lake_ids)
        report.extra = len(lake_ids - set(table_records))
        if repair and report.missing:
            exporter.write_rows([table_records[i] for i in report.missing], tag="repair")
            report.repaired = len(report.missing)
        reports.append(report)
    return reports


def table_records(usage_table: str) -> Iterable[dict[str, Any]]:
    """Every record of the usage table (a scan: for reconciliation jobs, not for requests)."""
    from shared.aws.dynamodb import Table

    return Table(usage_table).scan()
