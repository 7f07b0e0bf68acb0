"""Every analytics query, as SQL, in one place. Written for DuckDB (the embedded engine, shared/lake/query.py);
`athena(sql)` gives the Trino dialect for the Glue table template.yaml declares (`usage_records`, partitioned
by `dt`), and tests/test_lake_queries.py checks that each one parses in both dialects.

Portability: the aggregates, filters and time buckets run on Athena as transpiled; percentiles do not match
exactly there: DuckDB's `quantile_cont` is exact (linear interpolation), Trino's `approx_percentile` (what it
becomes) is approximate. The category and repair_kind dimensions (`UNNEST` of a list) are DuckDB's syntax only.

Parameters are named (`$from`, `$to`, `$key`…); the dimension and filter fragments below are fixed strings
chosen by name, never text from a request.
"""

from __future__ import annotations

TABLE = "usage_records"

# group_by name -> (select expression, output column)
DIMENSIONS = {
    "model": ("coalesce(model, request_model, '')", "model"),
    "lab": ("coalesce(lab, '')", "lab"),
    "provider": ("coalesce(provider_name, '')", "provider"),
    "app": ("coalesce(app, '')", "app"),
    "key": ("key_id", "key"),
    "status": ("status", "status"),
    "error_type": ("coalesce(error_type, '')", "error_type"),
    "category": ("coalesce(category, '')", "category"),
    "heal_status": ("coalesce(heal_status, '')", "heal_status"),  # '' where healing did not apply
    "repair_kind": ("coalesce(repair.kind, '')", "repair_kind"),  # a call counts once in each kind it had
}
GRANULARITY = {"hour": "date_trunc('hour', created_at)", "day": "date_trunc('day', created_at)"}

# filter name -> SQL with its parameter (values are bound, never spliced)
FILTERS = {
    "key": "key_id = $key",
    "model": "coalesce(model, request_model) = $model",
    "lab": "lab = $lab",
    "provider": "provider_name = $provider",
    "app": "app = $app",
    "status": "status = $status",
    "error_type": "error_type = $error_type",
    "category": "list_contains(categories, $category)",
    "heal_status": "heal_status = $heal_status",
}

METRICS = """
    count(*) AS calls,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    coalesce(sum(input_tokens), 0) AS prompt_tokens,
    coalesce(sum(output_tokens), 0) AS completion_tokens,
    coalesce(sum(reasoning_output_tokens), 0) AS reasoning_tokens,
    coalesce(sum(cache_read_input_tokens), 0) AS cached_tokens,
    coalesce(sum(cost_usd), 0) AS cost,
    quantile_cont(latency_ms, 0.5) FILTER (WHERE status = 'completed') AS latency_ms_p50,
    quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'completed') AS latency_ms_p95,
    quantile_cont(latency_ms, 0.99) FILTER (WHERE status = 'completed') AS latency_ms_p99,
    quantile_cont(ttft_ms, 0.5) FILTER (WHERE status = 'completed') AS ttft_ms_p50,
    quantile_cont(ttft_ms, 0.95) FILTER (WHERE status = 'completed') AS ttft_ms_p95,
    histogram(coalesce(error_type, 'unknown')) FILTER (WHERE status = 'failed') AS error_counts,
    count(heal_status) AS heal_calls,
    count(*) FILTER (WHERE heal_status = 'healed') AS heal_healed,
    count(*) FILTER (WHERE heal_status = 'skipped') AS heal_skipped,
    count(*) FILTER (WHERE heal_status = 'failed') AS heal_failed,
    coalesce(sum(heal_repairs), 0) AS heal_repairs,
    max(created_at) AS last_call_at"""


def _source(group_by: list[str]) -> str:
    source = TABLE
    if "category" in group_by:  # a call with two categories counts once in each
        source = f"(SELECT *, UNNEST(coalesce(categories, [NULL::VARCHAR])) AS category FROM {source})"
    if "repair_kind" in group_by:  # and a call with two kinds of repair once in each
        source = (f"(SELECT *, UNNEST(coalesce(heal_repair_kinds, [NULL::STRUCT(kind VARCHAR, count INTEGER)]))"
                  f" AS repair FROM {source})")
    return source


def _where(filters: list[str]) -> str:
    clauses = ["created_at >= $from", "created_at < $to"] + [FILTERS[f] for f in filters]
    return " AND ".join(clauses)


def usage(group_by: list[str], granularity: str | None, filters: list[str]) -> tuple[str, list[str]]:
    """(SQL, output dimension columns): the analytics rows, in one scan (the error types as a histogram)."""
    selects, columns = [], []
    if granularity:
        selects.append(f"{GRANULARITY[granularity]} AS period")
        columns.append("period")
    for g in group_by:
        expression, name = DIMENSIONS[g]
        selects.append(f"{expression} AS {name}")
        columns.append(name)
    metrics = [METRICS.strip()]
    if "repair_kind" in group_by:
        metrics.append("coalesce(sum(repair.count), 0) AS repairs_of_kind")
    head = ", ".join(selects + metrics)
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(columns)))}" if columns else ""
    order = " ORDER BY " + ", ".join(["calls DESC"] + [str(i + 1) for i in range(len(columns))])
    return f"SELECT {head} FROM {_source(group_by)} WHERE {_where(filters)}{group}{order}", columns


ACTIVITY = f"""
SELECT strftime(date_trunc('day', created_at), '%Y-%m-%d') AS date,
    coalesce(model, request_model, '') AS model,
    coalesce(response_model, model, '') AS model_permaslug,
    coalesce(provider_name, '') AS provider_name,
    coalesce(sum(cost_usd), 0) AS usage,
    count(*) AS requests,
    coalesce(sum(input_tokens), 0) AS prompt_tokens,
    coalesce(sum(output_tokens), 0) AS completion_tokens,
    coalesce(sum(reasoning_output_tokens), 0) AS reasoning_tokens
FROM {TABLE}
WHERE created_at >= $from AND created_at < $to AND ($key IS NULL OR key_id = $key)
GROUP BY 1, 2, 3, 4
ORDER BY 1 DESC, 5 DESC, 2, 4"""


def athena(sql: str) -> str:
    """The query in Athena's (Trino's) dialect; parameters become `?` in the order they appear."""
    import re

    import sqlglot  # a development tool: the deployed functions never call this

    positional = re.sub(r"\$[a-z_]+", "?", sql)
    trino = sqlglot.transpile(positional, read="duckdb", write="trino")[0]
    return re.sub(r"\bPERCENTILE_CONT\(", "APPROX_PERCENTILE(", trino)  # Trino has no exact percentile
