"""Healing in the data: heal status, repair kinds and counts in the lake, and heal outcomes per model and
provider from the analytics API (which models emit broken JSON, and how often) — a query, not a grep."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from shared.lake import schema
from shared.lake.export import Exporter
from shared.lake.store import S3Store
from tests.lake_fixtures import record

RANGE = "from=2025-12-01&to=2025-12-03"
LLAMA = {"model": "meta-llama/llama-3.2-3b-instruct", "lab": "meta-llama", "provider": "together"}


def audit(*kinds: str) -> list[dict]:
    return [{"at": "choices[0].message.content", "kind": k, "offset": n, "path": "$"} for n, k in enumerate(kinds)]


def healing_records() -> list[dict]:
    """sim/fast on sim: 3 JSON calls, all valid (skipped), and 1 prose call (healing did not apply).
    llama on together: 4 JSON calls: 2 healed (3 and 1 repairs), 1 failed (1 would-be repair), 1 skipped."""
    return [
        record(0, heal_status="skipped"), record(1, heal_status="skipped"), record(2, heal_status="skipped"),
        record(3),
        record(4, **LLAMA, heal_status="healed", heal_repairs=3,
               heal_audit=audit("trailing_comma_removed", "truncation_closed", "truncation_closed")),
        record(5, **LLAMA, heal_status="healed", heal_repairs=1, heal_audit=audit("truncation_closed")),
        record(6, **LLAMA, heal_status="failed", heal_repairs=1, heal_audit=audit("document_removed")),
        record(7, **LLAMA, heal_status="skipped"),
    ]


@pytest.fixture
def admin(aws, gateway, keys) -> dict[str, str]:
    Exporter(S3Store(aws["DataBucket"]), schema.ip_hasher(b"test-pepper")).write_rows(healing_records(), tag="h")
    return {"Authorization": f"Bearer {keys['admin']}"}


def rows(client, headers, query: str) -> list[dict]:
    r = client.get(f"/api/v1/analytics?{RANGE}&{query}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_the_lake_row_counts_repairs_by_kind_and_keeps_no_offsets():
    row = schema.row(healing_records()[4], schema.ip_hasher(b"p"))
    assert row["heal_status"] == "healed" and row["heal_repairs"] == 3
    assert row["heal_repair_kinds"] == [{"kind": "trailing_comma_removed", "count": 1},
                                        {"kind": "truncation_closed", "count": 2}]
    assert schema.row(healing_records()[3], schema.ip_hasher(b"p"))["heal_repair_kinds"] is None
    table = schema.table([schema.row(r, schema.ip_hasher(b"p")) for r in healing_records()])
    assert table.schema.field("heal_repair_kinds").nullable and schema.VERSION == 2


def test_heal_outcomes_per_model_and_provider(client, admin):
    got = {(r["model"], r["provider"]): r["heal"] for r in rows(client, admin, "group_by=model,provider")}
    assert got[("sim/fast", "sim")] == {"calls": 3, "healed": 0, "skipped": 3, "failed": 0, "repairs": 0,
                                        "broken_rate": 0.0}
    assert got[("meta-llama/llama-3.2-3b-instruct", "together")] == {
        "calls": 4, "healed": 2, "skipped": 1, "failed": 1, "repairs": 5, "broken_rate": 0.75}


def test_repairs_by_kind_per_model(client, admin):
    kinds = {(r["model"], r["repair_kind"]): r for r in rows(client, admin, "group_by=model,repair_kind")}
    closed = kinds[("meta-llama/llama-3.2-3b-instruct", "truncation_closed")]
    assert (closed["calls"], closed["repairs_of_kind"]) == (2, 3)
    assert kinds[("meta-llama/llama-3.2-3b-instruct", "document_removed")]["repairs_of_kind"] == 1
    assert kinds[("sim/fast", "")]["calls"] == 4  # no repair: one row with an empty kind


def test_filter_by_heal_status_and_group_by_it(client, admin):
    (failed,) = rows(client, admin, "heal_status=failed&group_by=model")
    assert (failed["model"], failed["calls"]) == ("meta-llama/llama-3.2-3b-instruct", 1)
    statuses = {r["heal_status"]: r["calls"] for r in rows(client, admin, "group_by=heal_status")}
    assert statuses == {"skipped": 4, "healed": 2, "failed": 1, "": 1}


def test_the_export_carries_the_heal_columns(client, admin):
    r = client.get(f"/api/v1/analytics/export?{RANGE}&group_by=model&format=parquet", headers=admin)
    assert r.status_code == 200, r.text
    table = pq.read_table(io.BytesIO(r.content))
    llama = next(row for row in table.to_pylist() if row["model"].startswith("meta-llama"))
    assert (llama["heal_calls"], llama["heal_healed"], llama["heal_failed"], llama["heal_repairs"]) == (4, 2, 1, 5)
    csv = client.get(f"/api/v1/analytics/export?{RANGE}&group_by=model&format=csv", headers=admin)
    assert "heal_broken_rate" in csv.text.splitlines()[0]
