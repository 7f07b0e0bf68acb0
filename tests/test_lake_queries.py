"""Every analytics query parses as DuckDB (which runs it) and, transpiled, as Trino (Athena's dialect)."""

from __future__ import annotations

import itertools

import pytest
import sqlglot

from shared.lake import queries


def all_queries() -> list[tuple[str, str]]:
    out = [("activity", queries.ACTIVITY)]
    dims = sorted(queries.DIMENSIONS)
    for group in [[], *([d] for d in dims), ["app", "model"], ["lab", "provider", "status"]]:
        for granularity in (None, *queries.GRANULARITY):
            for filters in ([], sorted(queries.FILTERS)):
                sql, _ = queries.usage(group, granularity, filters)
                out.append((f"usage {group} {granularity} {len(filters)} filters", sql))
    return out


@pytest.mark.parametrize("name, sql", all_queries(), ids=[n for n, _ in all_queries()])
def test_parses_for_duckdb_and_for_athena(name, sql):
    sqlglot.parse_one(sql, read="duckdb")
    trino = queries.athena(sql)
    sqlglot.parse_one(trino, read="trino")
    assert "$" not in trino and "PERCENTILE_CONT" not in trino.upper()


def test_the_queries_run_in_duckdb_on_an_empty_lake(tmp_path):
    from datetime import date, datetime, timezone

    from shared.lake.query import LakeQuery
    from shared.lake.store import LocalStore

    engine = LakeQuery(LocalStore(tmp_path))
    params = {"from": datetime(2025, 1, 1, tzinfo=timezone.utc), "to": datetime(2025, 1, 2, tzinfo=timezone.utc),
              **{f: "x" for f in queries.FILTERS}}
    for _, sql in itertools.islice(all_queries(), 0, None, 7):
        params["key"] = None if "$key IS NULL" in sql else "x"
        engine.run(sql, params, date(2025, 1, 1), date(2025, 1, 1))


def test_filters_and_dimensions_are_fixed_fragments():
    """Request text never reaches the SQL: values are bound parameters, names are chosen from these tables."""
    for fragment in queries.FILTERS.values():
        assert "$" in fragment
    with pytest.raises(KeyError):
        queries.usage(["model; DROP TABLE x"], None, [])
