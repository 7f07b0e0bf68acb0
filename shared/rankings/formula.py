"""The ranking formula, open and versioned: every published score can be recomputed from its three terms.

    score = 0.4 · success + 0.3 · speed + 0.3 · price          (the brief's weights)

- success: the Wilson lower bound (95%, z = 1.96) of completed / (completed + failed), over calls the model
  is answerable for: a failure counts when the gateway answered it with a 5xx, a 408 or a 429 (the model or
  its provider failed); a client's own error (another 4xx: a bad body, a prompt too long, no credit) and a
  cancelled call count for nothing. A model with 3 perfect calls gets 0.44, not 1.0.
- speed: 1 / P95 latency of completed calls, log-scaled min-max within the day's ranked cohort:
  (ln max − ln p95) / (ln max − ln min), so the fastest model has 1 and the slowest 0; 1 for all when they tie.
- price: 1 / cost per 1k tokens, the same way. Cost per 1k tokens is the day's traffic-weighted blend: the
  model's total cost / (prompt + completion tokens) × 1000 (what its callers actually paid per token, with
  their own mix of input and output). Free models are floored at $0.000001 per 1k.

A model is ranked when it has at least `min_calls` answerable calls after the anti-gaming filters (default 10);
otherwise it is listed with status "insufficient_data" and no rank. Ties rank by more calls, then by id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VERSION = "rankings-v1"
WEIGHTS = {"success": 0.4, "speed": 0.3, "price": 0.3}
Z = 1.96
PRICE_FLOOR = 1e-6  # USD per 1k tokens
NORMALISATION = "log-scaled min-max within the day's ranked cohort"
BLEND = "traffic-weighted: total cost / total tokens × 1000"


def wilson_lower(successes: int, trials: int, z: float = Z) -> float:
    if trials <= 0:
        return 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, (centre - margin) / denominator)


def log_minmax(value: float, low: float, high: float) -> float:
    """1 for the smallest value (fastest, cheapest), 0 for the largest, log-scaled between."""
    if high <= low:
        return 1.0
    return (math.log(high) - math.log(value)) / (math.log(high) - math.log(low))


@dataclass(slots=True)
class Terms:
    success: float
    speed: float
    price: float

    @property
    def score(self) -> float:
        return round(WEIGHTS["success"] * self.success + WEIGHTS["speed"] * self.speed
                     + WEIGHTS["price"] * self.price, 6)


def score_cohort(rows: list[dict], *, min_calls: int) -> None:
    """Adds status, terms, score and rank to each model row (in place). A row needs `completed`, `failed`
    (answerable failures), `p95_latency_ms` and `cost_per_1k_tokens`."""
    eligible = [r for r in rows if r["completed"] + r["failed"] >= min_calls and r["completed"] > 0
                and r["p95_latency_ms"] is not None]
    for r in rows:
        r.update(status="insufficient_data", rank=None, term_success=None, term_speed=None, term_price=None,
                 score=None, success_lower_bound=round(wilson_lower(r["completed"], r["completed"] + r["failed"]), 6))
    if not eligible:
        return
    latencies = [max(r["p95_latency_ms"], 1e-3) for r in eligible]
    prices = [max(r["cost_per_1k_tokens"] or 0.0, PRICE_FLOOR) for r in eligible]
    for r, latency, price in zip(eligible, latencies, prices):
        terms = Terms(r["success_lower_bound"], round(log_minmax(latency, min(latencies), max(latencies)), 6),
                      round(log_minmax(price, min(prices), max(prices)), 6))
        r.update(status="ranked", term_success=terms.success, term_speed=terms.speed, term_price=terms.price,
                 score=terms.score)
    ordered = sorted(eligible, key=lambda r: (-r["score"], -(r["completed"] + r["failed"]), r["model"]))
    for i, r in enumerate(ordered, 1):
        r["rank"] = i
