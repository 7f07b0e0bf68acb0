"""The rankings' SQL over one day of the lake (DuckDB; the view `usage_records` of shared/lake/query.py).

The anti-gaming filters, in order (thresholds are parameters, their effect is counted):
1. source cap: a source (the client's hashed IP; the key when there is none) may contribute at most `share`
   of a model's calls: its calls are cut to max(floor(share · others / (1 − share)), `floor`), where `others`
   is every other source's calls to that model. The calls kept are a deterministic sample spread over the
   day (ordered by a hash of their ids), not the earliest, so a capped source's hours all count.
   Limit: sources that collude (several addresses flooding together) count each other among the `others`.
2. repeated prompts: one prompt fingerprint sent to a model more than `repeat` times within an hour, from
   any number of sources, counts once for that hour.
Rows without a model (refused before one was named) are not ranked.
"""

from __future__ import annotations

FILTERED = """
WITH base AS (
    SELECT *, coalesce(ip_hash, 'key:' || key_id) AS source
    FROM usage_records
    WHERE created_at >= $from AND created_at < $to AND coalesce(model, '') <> ''
),
per_source AS (SELECT model, source, count(*) AS n FROM base GROUP BY model, source),
per_model AS (SELECT model, sum(n) AS total FROM per_source GROUP BY model),
caps AS (
    SELECT s.model, s.source,
           greatest(floor($share * (m.total - s.n) / (1 - $share)), $floor) AS cap
    FROM per_source s JOIN per_model m USING (model)
),
numbered AS (
    SELECT b.*, row_number() OVER (PARTITION BY b.model, b.source ORDER BY md5(b.id), b.id) AS nth
    FROM base b
),
capped AS (
    SELECT n.* FROM numbered n JOIN caps c USING (model, source) WHERE n.nth <= c.cap
),
repeats AS (
    SELECT *,
        count(*) OVER w AS same_prompt,
        row_number() OVER (w ORDER BY created_at, id) AS prompt_nth
    FROM capped
    WINDOW w AS (PARTITION BY model, prompt_fingerprint, date_trunc('hour', created_at))
)
SELECT *, (prompt_fingerprint IS NULL OR same_prompt <= $repeat OR prompt_nth = 1) AS kept FROM repeats
"""

# Money summed exactly (the lake rounds it to 12 decimals), so the total is the same whatever order DuckDB's
# threads add the rows in: a float sum's last digits vary from run to run, and the files must not.
COST = "sum(cost_usd::DECIMAL(18, 12))::DOUBLE"

# answerable failures: the model or its provider failed (5xx, 408, 429); other 4xx are the client's own
ANSWERABLE_FAILURE = "(status = 'failed' AND (coalesce(error_code, 500) >= 500 OR error_code IN (408, 429)))"

MODELS = f"""
WITH raw AS (
    SELECT model, any_value(lab) AS lab, count(*) AS calls,
           sum(input_tokens) AS prompt_tokens, sum(output_tokens) AS completion_tokens, {COST} AS cost
    FROM usage_records
    WHERE created_at >= $from AND created_at < $to AND coalesce(model, '') <> ''
    GROUP BY model
),
f AS ({FILTERED}),
capped_counts AS (SELECT model, count(*) AS after_cap FROM f GROUP BY model),
ranked AS (
    SELECT model,
        count(*) AS calls_after_filters,
        count(*) FILTER (WHERE status = 'completed') AS completed,
        count(*) FILTER (WHERE {ANSWERABLE_FAILURE}) AS failed,
        quantile_cont(latency_ms, 0.95) FILTER (WHERE status = 'completed') AS p95_latency_ms,
        quantile_cont(latency_ms, 0.5) FILTER (WHERE status = 'completed') AS p50_latency_ms,
        sum(input_tokens) AS kept_prompt_tokens, sum(output_tokens) AS kept_completion_tokens,
        {COST} AS kept_cost
    FROM f WHERE kept GROUP BY model
)
SELECT raw.model, raw.lab, raw.calls, raw.prompt_tokens, raw.completion_tokens, raw.cost,
    coalesce(ranked.calls_after_filters, 0) AS calls_after_filters,
    raw.calls - coalesce(capped_counts.after_cap, 0) AS removed_source_cap,
    coalesce(capped_counts.after_cap, 0) - coalesce(ranked.calls_after_filters, 0) AS removed_repeated_prompt,
    coalesce(ranked.completed, 0) AS completed, coalesce(ranked.failed, 0) AS failed,
    ranked.p95_latency_ms, ranked.p50_latency_ms,
    coalesce(ranked.kept_prompt_tokens, 0) + coalesce(ranked.kept_completion_tokens, 0) AS tokens_after_filters,
    coalesce(ranked.kept_cost, 0) AS cost_after_filters
FROM raw LEFT JOIN capped_counts USING (model) LEFT JOIN ranked USING (model)
ORDER BY raw.model
"""

APPS = f"""
SELECT coalesce(app, '') AS app, count(*) AS calls, sum(input_tokens) AS prompt_tokens,
    sum(output_tokens) AS completion_tokens, {COST} AS cost, count(DISTINCT model) AS models,
    arg_max(model, n) AS top_model
FROM (SELECT *, count(*) OVER (PARTITION BY app, model) AS n FROM usage_records
      WHERE created_at >= $from AND created_at < $to AND coalesce(model, '') <> '')
GROUP BY 1 ORDER BY 1
"""

# keys and apps sending almost everything to one model (flagged, not removed)
CONCENTRATION = """
WITH t AS (
    SELECT kind, who, model, count(*) AS n, sum(count(*)) OVER (PARTITION BY kind, who) AS total
    FROM (SELECT 'key' AS kind, key_id AS who, model FROM usage_records
          WHERE created_at >= $from AND created_at < $to AND coalesce(model, '') <> ''
          UNION ALL
          SELECT 'app', app, model FROM usage_records
          WHERE created_at >= $from AND created_at < $to AND coalesce(model, '') <> '' AND app IS NOT NULL)
    GROUP BY kind, who, model
)
SELECT kind, who, model, n, total, n / total AS share FROM t
WHERE total >= $min_calls AND n / total >= $concentration
ORDER BY kind, who
"""
