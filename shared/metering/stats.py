"""Per-endpoint health from our own usage records: uptime and latency percentiles over a recent window."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import client
from shared.aws.dynamodb import from_item, to_item
from shared.errors import StorageError

WINDOW_SECONDS = 30 * 60
MAX_RECORDS = 5000  # enough for stable percentiles; a busy model's window is sampled from its newest calls
_PROVIDER_FAULTS = {408, 429, 500, 502, 503, 504}  # what counts against an endpoint's uptime (not 4xx input)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"p50": pick(0.50), "p75": pick(0.75), "p90": pick(0.90), "p99": pick(0.99)}


def recent_calls(usage_table: str, model: str, *, now: float | None = None) -> list[dict[str, Any]]:
    since = (now or time.time()) - WINDOW_SECONDS
    kwargs: dict[str, Any] = {
        "TableName": usage_table, "IndexName": "by_model", "ScanIndexForward": False, "Limit": 1000,
        "KeyConditionExpression": "model = :m AND created_at >= :t",
        "ExpressionAttributeValues": to_item({":m": model, ":t": round(since, 3)}),
    }
    calls: list[dict[str, Any]] = []
    try:
        while len(calls) < MAX_RECORDS:
            page = client("dynamodb").query(**kwargs)
            calls.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except (ClientError, BotoCoreError) as e:
        raise StorageError("Storage is unavailable (usage stats)") from e
    return calls


def endpoint_stats(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{provider: {uptime, requests, latency (ms, whole call), time_to_first_token (ms)}}."""
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        if call.get("provider"):
            by_provider.setdefault(call["provider"], []).append(call)
    stats = {}
    for provider, group in by_provider.items():
        faults = sum(1 for c in group if c.get("status") == "failed" and c.get("error_code") in _PROVIDER_FAULTS)
        ok = [c for c in group if c.get("status") == "completed"]
        stats[provider] = {
            "requests": len(group),
            "uptime": round(1 - faults / len(group), 4),
            "latency": _percentiles([float(c["latency_ms"]) for c in ok if c.get("latency_ms") is not None]),
            "time_to_first_token": _percentiles([float(c["ttft_ms"]) for c in ok if c.get("ttft_ms") is not None]),
        }
    return stats
