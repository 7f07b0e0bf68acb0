"""What one metered call records (`UsageEvent`) and what it costs (`cost_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal

from shared.catalog import Pricing

Status = Literal["completed", "failed", "cancelled"]


def cost_of(pricing: Pricing, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
    """USD for a call at per-1M-token prices, cached prompt tokens at the cache-read price where there is one;
    zero tokens cost nothing, and no count makes a cost negative."""
    prompt_tokens, completion_tokens = max(prompt_tokens, 0), max(completion_tokens, 0)
    cached = min(max(cached_tokens, 0), prompt_tokens) if pricing.cache_read is not None else 0
    prompt = (prompt_tokens - cached) * pricing.prompt + cached * (pricing.cache_read or 0.0)
    return round((prompt + completion_tokens * pricing.completion) / 1_000_000, 12)


@dataclass(slots=True)
class UsageEvent:
    """What is recorded for a call: never the prompt or the completion."""

    id: str
    key_id: str
    created_at: float
    model: str
    lab: str
    provider: str | None = None
    upstream_model: str | None = None
    upstream_id: str | None = None
    app: str | None = None
    app_title: str | None = None
    app_referer: str | None = None
    categories: list[str] | None = None  # X-OpenRouter-Categories
    request_model: str | None = None  # what the request named (a model, a policy, the head of `models`)
    prompt_fingerprint: str | None = None  # salted HMAC of the prompt (shared/metering/fingerprint.py)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost: float = 0.0
    reserved: float | None = None  # USD held against the key's limit before the call, settled by this record
    reserved_on: str | None = None  # the counter row that holds it (None: "total"; see shared/keys/counters.py)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: Status = "completed"
    error_code: int | None = None
    error_type: str | None = None
    finish_reason: str | None = None
    heal_status: str | None = None  # healed | skipped | failed; None when healing did not apply
    heal_repairs: int = 0
    heal_audit: list[dict[str, Any]] | None = None  # kinds, offsets, paths of the repairs: never content
    schema_valid: bool | None = None
    route: str | None = None  # the routing policy the call named (a virtual model), if any
    route_rule: str | None = None  # the policy's rule that chose the models
    attempts: list[dict[str, Any]] | None = None  # every upstream attempt: provider, model, status, latency, error
    streamed: bool = False
    client_ip: str | None = None
    user_agent: str | None = None
    zero_log: bool | None = None  # True: a zero-log key's call; what reads the record keeps nothing that identifies

    def to_record(self, retention_days: int) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in _FIELDS}
        if not record["model"]:
            del record["model"]  # an index key cannot be empty (a call refused before its model was known)
        record["created_at"] = round(self.created_at, 3)
        record["day"] = day_of(int(self.created_at))
        record["expires_at"] = int(self.created_at) + retention_days * 86400
        return record


_FIELDS = tuple(UsageEvent.__dataclass_fields__)


@lru_cache(maxsize=8)
def day_of(epoch_second: int) -> str:
    """The UTC day of a second (cached: consecutive calls share their second)."""
    return datetime.fromtimestamp(epoch_second, timezone.utc).strftime("%Y-%m-%d")
