"""The lake's layout: which objects make a day, and how they are written and read.

    usage/dt=YYYY-MM-DD/part-<batch>.parquet     one per stream batch and day (export.py)
    usage/dt=YYYY-MM-DD/repair-<ids>.parquet     rows a reconciliation found missing (reconcile.py)
    usage/dt=YYYY-MM-DD/compacted.parquet        the day's rows in one file (compact.py)

Every name is a function of what it holds, so writing the same rows again replaces an object rather than
adding a copy. `compacted.parquet` names, in its Parquet metadata, each part it replaced with that part's
ETag: a reader skips exactly those (a part rewritten since has a new ETag and is read), so a day reads the
same before, during and after compaction, even if compaction stopped between writing and deleting.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from shared.lake import schema
from shared.lake.store import LakeStore, ObjectInfo

PREFIX = "usage/"
COMPACTED = "compacted.parquet"
REPLACES_KEY = b"switchyard.replaces"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def day_prefix(day: str) -> str:
    if not _DAY.match(day):
        raise ValueError(f"not a day: {day!r}")
    return f"{PREFIX}dt={day}/"


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def parquet_bytes(table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> bytes:
    """The table as Parquet (zstd, statistics on): the same rows give the same bytes."""
    meta = dict(schema.SCHEMA.metadata or {})
    meta.update(metadata or {})
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), sink, compression="zstd", row_group_size=256 * 1024,
                   write_statistics=True, store_schema=True)
    return sink.getvalue()


def replaced_by(data_or_file: bytes | pa.NativeFile) -> dict[str, str]:
    """{part key: ETag} that a compacted file replaced."""
    source = pa.BufferReader(data_or_file) if isinstance(data_or_file, bytes) else data_or_file
    meta = pq.read_metadata(source).metadata or {}
    return json.loads(meta.get(REPLACES_KEY, b"{}"))


def live_files(store: LakeStore, day: str) -> list[ObjectInfo]:
    """The objects that make the day now: the compacted file and every part it did not replace."""
    objects = [o for o in store.list(day_prefix(day)) if o.key.endswith(".parquet")]
    compacted = next((o for o in objects if o.key.endswith("/" + COMPACTED)), None)
    if compacted is None:
        return objects
    fs, root = store.arrow()
    with fs.open_input_file(f"{root}/{compacted.key}") as f:  # the footer only: two ranged reads on S3
        replaced = replaced_by(f)
    return [o for o in objects if replaced.get(o.key) != o.etag]


def read_objects(store: LakeStore, objects: list[ObjectInfo]) -> pa.Table:
    tables = [schema.conform(pq.read_table(pa.BufferReader(store.get(o.key)))) for o in objects]
    return pa.concat_tables(tables) if tables else schema.SCHEMA.empty_table()


def distinct(table: pa.Table) -> pa.Table:
    """One row per id, sorted by (created_at, id): a record written twice (a part and a repair, say) counts once."""
    import pyarrow.compute as pc

    if table.num_rows < 2:
        return table
    table = table.sort_by([("id", "ascending"), ("created_at", "ascending")])
    ids = table.column("id")
    keep = pc.fill_null(pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)), True)
    mask = pa.concat_arrays([pa.array([True]), keep.combine_chunks()])
    return table.filter(mask).sort_by(schema.SORT_KEYS)


def read_day(store: LakeStore, day: str) -> pa.Table:
    return distinct(read_objects(store, live_files(store, day)))
