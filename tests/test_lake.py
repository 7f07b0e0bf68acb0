"""The usage lake: exactly once under redelivery, reordering and failed batches; compaction; reconciliation;
the schema's promises (no raw IP, user agent or content; add-only evolution); the local exporter over moto's
stream."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infra.template import load
from shared.lake import parts, schema
from shared.lake.compact import compact_day
from shared.lake.export import Exporter
from shared.lake.reconcile import reconcile
from shared.lake.store import LocalStore, ObjectInfo
from tests.lake_fixtures import fixture_records, record, stream_batch

DAY = "2025-12-02"


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "lake")


@pytest.fixture
def exporter(store) -> Exporter:
    return Exporter(store, schema.ip_hasher(b"test-pepper"))


def lake_ids(store, day=DAY) -> list[str]:
    return parts.read_objects(store, parts.live_files(store, day)).column("id").to_pylist()


def test_redelivered_and_reordered_batches_land_exactly_once(store, exporter):
    records = [record(i) for i in range(30)]
    first, second, third = stream_batch(records[:10], 100), stream_batch(records[10:20], 110), \
        stream_batch(records[20:], 120)
    for batch in (third, first, second, first, third, second):  # out of order, each twice
        assert exporter.write_batch(batch) == {"batchItemFailures": []}
    ids = lake_ids(store)
    assert sorted(ids) == sorted(r["id"] for r in records) and len(ids) == 30
    assert len(store.list("usage/")) == 3  # one object per batch, each rewritten in place


def test_a_retried_batch_that_grew_replaces_its_object(store, exporter):
    """Lambda may retry from the same first record with more records behind it: the object is replaced."""
    records = [record(i) for i in range(8)]
    exporter.write_batch(stream_batch(records[:5], 500))
    exporter.write_batch(stream_batch(records, 500))
    assert sorted(lake_ids(store)) == sorted(r["id"] for r in records)


class FlakyStore(LocalStore):
    """Fails the first put of a given day's object, as S3 might."""

    def __init__(self, root, fail_prefix: str) -> None:
        super().__init__(root)
        self.fail_prefix, self.failed = fail_prefix, False

    def put(self, key: str, data: bytes, **kwargs) -> ObjectInfo:
        if key.startswith(self.fail_prefix) and not self.failed:
            self.failed = True
            raise OSError("S3 is having a moment")
        return super().put(key, data, **kwargs)


def test_a_batch_that_fails_halfway_is_reported_from_its_first_record_and_its_retry_is_exact(tmp_path):
    store = FlakyStore(tmp_path / "lake", "usage/dt=2025-12-03/")
    exporter = Exporter(store, schema.ip_hasher(b"p"))
    records = [record(i) for i in range(5)] + [record(10 + i, created_at=1764720000.0 + i) for i in range(5)]
    batch = stream_batch(records, 900)
    answer = exporter.write_batch(batch)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "900"}]}  # the whole batch comes again
    assert exporter.write_batch(batch) == {"batchItemFailures": []}
    assert sorted(lake_ids(store, "2025-12-02")) == [f"gen-{i:04d}" for i in range(5)]
    assert sorted(lake_ids(store, "2025-12-03")) == [f"gen-{10 + i:04d}" for i in range(5)]


def test_a_record_that_cannot_become_a_row_is_set_aside_without_its_content(store, exporter):
    good = stream_batch([record(1)], 10)
    bad = stream_batch([{"id": "gen-bad", "key_id": "x", "client_ip": "198.51.100.9"}], 11)  # no created_at
    bad[0]["dynamodb"]["SequenceNumber"] = "11"
    assert exporter.write_batch(good + bad) == {"batchItemFailures": []}
    assert lake_ids(store) == ["gen-0001"]
    (reject,) = store.list("usage-rejects/")
    text = store.get(reject.key).decode()
    assert "gen-bad" in text and "198.51.100.9" not in text


def test_only_inserts_are_exported(store, exporter):
    batch = stream_batch([record(1), record(2)], 40)
    batch[1]["eventName"] = "REMOVE"  # the table's TTL: the lake outlives it
    exporter.write_batch(batch)
    assert lake_ids(store) == ["gen-0001"]


def test_the_lake_holds_no_raw_ip_user_agent_or_content(store, exporter):
    r = record(1, client_ip="203.0.113.7", user_agent="secret-agent/1.0", heal_audit=[{"kind": "quote"}])
    exporter.write_batch(stream_batch([r], 1))
    table = parts.read_day(store, DAY)
    assert "client_ip" not in table.column_names and "user_agent" not in table.column_names
    raw = b"".join(store.get(o.key) for o in store.list("usage/"))
    assert b"203.0.113.7" not in raw and b"secret-agent" not in raw
    hashed = table.column("ip_hash")[0].as_py()
    assert hashed == schema.ip_hasher(b"test-pepper")("203.0.113.7") != schema.ip_hasher(b"other")("203.0.113.7")
    assert len(hashed) == 32


def test_the_schema_is_typed_versioned_and_the_glue_table_matches_it(store, exporter):
    exporter.write_batch(stream_batch([record(1)], 1))
    (obj,) = store.list("usage/")
    written = pq.read_schema(pa.BufferReader(store.get(obj.key)))
    assert written.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert written.field("cost_usd").type == pa.float64() and written.field("id").type == pa.string()
    assert written.metadata[schema.METADATA_KEY] == str(schema.VERSION).encode()
    glue = load()["Resources"]["UsageLakeTable"]["Properties"]["TableInput"]
    assert glue["StorageDescriptor"]["Columns"] == schema.glue_columns()
    assert glue["Parameters"]["projection.dt.type"] == "date"
    assert {c["Name"] for c in glue["StorageDescriptor"]["Columns"]} <= set(schema.OTEL) | set(schema.COLUMNS)


def test_a_file_from_an_older_version_reads_its_missing_columns_as_null(store, exporter):
    exporter.write_batch(stream_batch([record(1)], 1))
    old = schema.table([schema.row(record(2), schema.ip_hasher(b"p"))]).drop_columns(["ip_hash", "categories"])
    store.put(parts.day_prefix(DAY) + "part-old.parquet", parts.parquet_bytes(old))
    table = parts.read_day(store, DAY)
    assert table.num_rows == 2 and table.column("ip_hash").null_count == 1
    from shared.lake.query import LakeQuery
    from datetime import date

    got = LakeQuery(store).run("SELECT count(*) AS n, count(ip_hash) AS hashed FROM usage_records", {},
                               date(2025, 12, 2), date(2025, 12, 2)).to_pylist()
    assert got == [{"n": 2, "hashed": 1}]


def test_compaction_is_idempotent_and_never_changes_what_a_day_reads(store, exporter):
    records = [record(i) for i in range(12)]
    for n in range(4):
        exporter.write_batch(stream_batch(records[n * 3:(n + 1) * 3], 10 * n))
    before = sorted(lake_ids(store))
    first = compact_day(store, DAY)
    assert (first.inputs, first.rows, first.removed) == (4, 12, 4)
    assert [o.key for o in store.list("usage/")] == [f"usage/dt={DAY}/compacted.parquet"]
    data = store.get(f"usage/dt={DAY}/compacted.parquet")
    again = compact_day(store, DAY)
    assert (again.rows, again.removed) == (0, 0)
    assert store.get(f"usage/dt={DAY}/compacted.parquet") == data
    assert sorted(lake_ids(store)) == before
    exporter.write_batch(stream_batch(records[:3], 0))  # a late redelivery after compaction
    compact_day(store, DAY)
    assert sorted(lake_ids(store)) == before


class NoDelete(LocalStore):
    def delete(self, info: ObjectInfo) -> None:
        raise OSError("stopped before deleting")


def test_compaction_that_stops_before_deleting_leaves_no_duplicates(tmp_path):
    store = NoDelete(tmp_path / "lake")
    exporter = Exporter(store, schema.ip_hasher(b"p"))
    records = [record(i) for i in range(6)]
    exporter.write_batch(stream_batch(records[:3], 1))
    exporter.write_batch(stream_batch(records[3:], 4))
    with pytest.raises(OSError):
        compact_day(store, DAY)
    assert len(store.list("usage/")) == 3  # the compacted file and both parts
    assert sorted(lake_ids(store)) == sorted(r["id"] for r in records)  # parts replaced are skipped
    healthy = LocalStore(tmp_path / "lake")
    compact_day(healthy, DAY)  # the next run collects the garbage
    assert [o.key for o in healthy.list("usage/")] == [f"usage/dt={DAY}/compacted.parquet"]
    assert sorted(lake_ids(healthy)) == sorted(r["id"] for r in records)


def test_a_part_rewritten_after_compaction_read_it_stays_live(store, exporter):
    """A late retry rewrites a part with more rows between compaction's read and its delete: nothing is lost."""
    records = [record(i) for i in range(6)]
    exporter.write_batch(stream_batch(records[:3], 1))
    exporter.write_batch(stream_batch(records[3:5], 4))
    original = store.delete

    def rewrite_then_delete(info: ObjectInfo) -> None:
        if "/part-4-" in info.key and not hasattr(store, "done"):
            store.done = True
            exporter.write_batch(stream_batch(records[3:], 4))  # same name, one more row
        original(info)

    store.delete = rewrite_then_delete
    compact_day(store, DAY)
    assert store.done
    assert sorted(lake_ids(store)) == sorted(r["id"] for r in records)
    assert len(set(lake_ids(store))) == len(lake_ids(store))


def test_reconciliation_finds_missing_records_repairs_them_once_and_sums_match(store, exporter):
    records = fixture_records()
    exporter.write_batch(stream_batch(records[:5], 1))  # the rest never reached the lake
    (day1, day2) = reconcile(records, exporter)
    assert (day1.day, day1.table.records, day1.lake.records, len(day1.missing)) == (DAY, 8, 5, 3)
    assert (day2.table.records, day2.lake.records) == (3, 0) and not day2.matches
    reconcile(records, exporter, repair=True)
    reconcile(records, exporter, repair=True)  # repairing twice writes the same objects
    after = reconcile(records, exporter)
    assert all(r.matches for r in after)
    assert after[0].table.as_dict() == after[0].lake.as_dict() == {
        "records": 8, "prompt_tokens": 4 * 10 + 2 * 1000 + 0 + 10, "completion_tokens": 4 * 20 + 2 * 50 + 0 + 2,
        "cost": round(4 * 0.001 + 2 * 0.01 + 0.0001, 9)}
    assert len(lake_ids(store)) == 8


def test_a_record_in_two_objects_counts_once_in_every_query(store, exporter):
    """A redelivered batch with other bounds puts records in two parts: analytics and rankings count them once."""
    from datetime import date

    from shared.lake.query import LakeQuery

    records = [record(i) for i in range(10)]
    exporter.write_batch(stream_batch(records[:6], 1))
    exporter.write_batch(stream_batch(records[6:], 7))
    exporter.write_batch(stream_batch(records[3:8], 4))  # ids 3..7 again, under another name
    got = LakeQuery(store).run("SELECT count(*) AS n, sum(input_tokens) AS t FROM usage_records", {},
                               date(2025, 12, 2), date(2025, 12, 2)).to_pylist()
    assert got == [{"n": 10, "t": 100}]


def test_two_compactions_at_once_lose_no_row(store, exporter):
    """Interleaved: A lists, a part arrives, B lists, B writes and A writes (without the part), then B deletes."""
    from shared.lake import compact

    records = [record(i) for i in range(10)]
    exporter.write_batch(stream_batch(records[:5], 1))
    original_put, step = store.put, {"n": 0}

    def slow_put(key, data, **kwargs):  # A's compacted write happens after B's whole run
        if key.endswith(parts.COMPACTED) and step["n"] == 0:
            step["n"] = 1
            exporter.write_batch(stream_batch(records[5:], 6))  # a new part
            compact._compact_once(store, DAY)  # B: merges both, writes, deletes what its file names
        return original_put(key, data, **kwargs)

    store.put = slow_put
    compact._compact_once(store, DAY)  # A: writes a compacted file without the new part
    store.put = original_put
    assert sorted(parts.read_day(store, DAY).column("id").to_pylist()) == sorted(r["id"] for r in records)
