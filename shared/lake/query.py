"""The query engine: DuckDB over the lake's live files for a range of days.

Only the days a query covers are listed, and per day only its live objects (parts.live_files: a compacted day
is one file). Local lakes are read by DuckDB's own Parquet reader; S3 through pyarrow's S3 filesystem (DuckDB's
httpfs extension would be downloaded at run time), which DuckDB scans with projection and filter pushdown.
Either way the view `usage_records` has every column of the current schema: a column a file predates reads
as null.
"""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from shared.lake import parts, schema
from shared.lake.queries import TABLE
from shared.lake.store import LakeStore, LocalStore

_LIST_THREADS = 8
_TEMP = os.path.join(tempfile.gettempdir(), "switchyard-duckdb").replace("'", "")


class LakeQuery:
    def __init__(self, store: LakeStore) -> None:
        self.store = store
        self._lock = threading.Lock()

    def files(self, first: date, last: date) -> list[list[str]]:
        """Per day first..last, the paths (on the store's arrow filesystem) of its live objects."""
        days = parts.days_between(first, last)
        _, root = self.store.arrow()
        with ThreadPoolExecutor(min(_LIST_THREADS, max(1, len(days)))) as pool:
            per_day = list(pool.map(lambda d: parts.live_files(self.store, d), days))
        return [[f"{root}/{o.key}" for o in objects] for objects in per_day if objects]

    def connect(self, first: date, last: date) -> duckdb.DuckDBPyConnection:
        """A connection whose `usage_records` view holds the days first..last (UTC), one row per call.

        A day in one file (compacted: its rows are unique) is read as it is; a day in several files (today's
        parts, a day not compacted yet) keeps one row per id, so a record that reached two objects (a
        redelivered batch with other bounds, a repair racing a late retry) is counted once."""
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        # a day of millions of calls holds every row for the rankings' window functions (~0.5 GB a million):
        # let DuckDB spill to disk under its memory limit (SWITCHYARD_DUCKDB_MEMORY_LIMIT, e.g. "1500MB" on a
        # 2 GB Lambda; default: DuckDB's, 80% of the memory) rather than fail
        con.execute(f"SET temp_directory = '{_TEMP}'")
        if os.environ.get("SWITCHYARD_DUCKDB_MEMORY_LIMIT"):
            con.execute("SET memory_limit = $limit", {"limit": os.environ["SWITCHYARD_DUCKDB_MEMORY_LIMIT"]})
        per_day = self.files(first, last)
        single = [p for day in per_day if len(day) == 1 for p in day]
        several = [p for day in per_day if len(day) > 1 for p in day]
        parts_sql = []
        for name, paths in (("_single", single), ("_several", several)):
            if paths:
                self._source(con, name, paths)
                parts_sql.append(f"SELECT * FROM {name}" if name == "_single" else
                                 f"SELECT * FROM {name} QUALIFY row_number() OVER (PARTITION BY id ORDER BY "
                                 f"created_at, key_id, status, cost_usd) = 1")  # copies are alike; ties fixed
        if not parts_sql:
            con.register("_empty", schema.SCHEMA.empty_table())
            parts_sql.append("SELECT * FROM _empty")
        con.execute(f"CREATE VIEW {TABLE} AS " + " UNION ALL ".join(parts_sql))
        return con

    def _source(self, con: duckdb.DuckDBPyConnection, name: str, paths: list[str]) -> None:
        """`name`: the files as a relation with every column of the current schema, in its order."""
        if isinstance(self.store, LocalStore):
            listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
            con.execute(f"CREATE VIEW {name}_raw AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
            present = {row[0] for row in con.execute(f"DESCRIBE {name}_raw").fetchall()}
            columns = ", ".join(f.name if f.name in present else f"NULL::{_duck_type(f.type)} AS {f.name}"
                                for f in schema.SCHEMA)
            con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM {name}_raw")
        else:
            fs, _ = self.store.arrow()
            con.register(name, ds.dataset(paths, schema=_read_schema(), format="parquet", filesystem=fs))

    def run(self, sql: str, params: dict[str, Any], first: date, last: date) -> pa.Table:
        con = self.connect(first, last)
        try:
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            return con.sql(sql, params=used).to_arrow_table()
        finally:
            con.close()


def _read_schema() -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema.SCHEMA])


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return {pa.string(): "VARCHAR", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
            pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}[t]
