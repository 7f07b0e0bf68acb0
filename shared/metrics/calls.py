"""`CallMetrics`: counts, sums and histogram buckets of the metered calls, in plain dicts and lists.

The meter hands it each usage event once (`observe`, on the request path: a lock, a few dict look-ups and list
adds, ~2 µs); nothing here knows Prometheus or CloudWatch, which read `snapshot()` when they are asked
(shared/metrics/prometheus.py at a scrape; on Lambda, functions/gateway/cloudwatch.py reads the `tap`).

Labels are bounded by construction: the model is a catalog model's id (what a refused call named that is not in
the catalog is `other`), the provider a catalog provider's, the app one of the first `max_apps` apps seen
(X-Title, else the HTTP-Referer's origin; every later one is `other`), statuses and error types the
gateway's own few; the key id only when `key_labels` is on (SWITCHYARD_METRICS_KEY_LABELS).

Histogram bucket bounds (seconds, tokens) are OpenTelemetry's advice for the GenAI metrics, with 2.5 and 5 ms
added below the operation duration's first bound (a gateway answers a cached or simulated call in less).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from shared.metering import UsageEvent

DURATION_BOUNDS = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                   81.92)
TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BOUNDS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
OTHER = "other"  # the label value of everything past a bound

# (model, provider, app, status, code, error_type, key) → [calls, cost, input, output, cached, reasoning]
CallKey = tuple[str, str, str, str, str, str, str]
Histogram = list  # a count per bucket (the last: above every bound), then the sum of the values observed


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of every table, taken under the lock (what a scrape or a flush reads)."""

    calls: dict[CallKey, list]
    duration: dict[tuple[str, str, str], Histogram]  # (model, provider, error_type)
    ttft: dict[tuple[str, str], Histogram]  # (model, provider): streamed calls that completed
    tpot: dict[tuple[str, str], Histogram]  # (model, provider): streamed calls with two or more output tokens
    input_tokens: dict[tuple[str, str], Histogram]  # (model, provider): calls that completed
    output_tokens: dict[tuple[str, str], Histogram]
    heals: dict[tuple[str, str], list]  # (model, outcome) → [calls, repairs]


def _observe(table: dict, key: tuple, bounds: tuple, value: float) -> None:
    h = table.get(key)
    if h is None:
        h = table[key] = [0] * (len(bounds) + 1) + [0.0]
    h[bisect_left(bounds, value)] += 1  # bisect_left: a value equal to a bound counts in it (Prometheus' `le`)
    h[-1] += value


class CallMetrics:
    def __init__(self, *, known_model: Callable[[str], bool], max_apps: int = 20, key_labels: bool = False) -> None:
        self.known_model = known_model  # is this id in the catalog (a refused call may name anything)
        self.max_apps, self.key_labels = max_apps, key_labels
        self.tap: list[UsageEvent] | None = None  # when a list: every event observed is appended (Lambda)
        self._apps: dict[str, str] = {}
        self._lock = threading.Lock()
        self._calls: dict[CallKey, list] = {}
        self._duration: dict[tuple[str, str, str], Histogram] = {}
        self._ttft: dict[tuple[str, str], Histogram] = {}
        self._tpot: dict[tuple[str, str], Histogram] = {}
        self._input: dict[tuple[str, str], Histogram] = {}
        self._output: dict[tuple[str, str], Histogram] = {}
        self._heals: dict[tuple[str, str], list] = {}

    def app_label(self, app: str | None) -> str:
        if not app:
            return ""
        label = self._apps.get(app)
        if label is None:
            if len(self._apps) >= self.max_apps:
                return OTHER  # (not remembered: a flood of made-up titles must not grow the table)
            label = self._apps[app] = app
        return label

    def model_label(self, e: "UsageEvent") -> str:
        """The model a call names, if it is a catalog model's (a routed call's always is), else `other`."""
        return e.model if e.provider or not e.model or self.known_model(e.model) else OTHER

    def observe(self, e: "UsageEvent") -> None:
        """Count one metered call (called once a call, by the meter)."""
        provider = e.provider or ""
        model = self.model_label(e)
        status = e.status
        code = "200" if status == "completed" else "499" if status == "cancelled" else str(e.error_code or 500)
        error = e.error_type or ""
        with self._lock:
            app = self.app_label(e.app)
            key = (model, provider, app, status, code, error, (e.key_id or "") if self.key_labels else "")
            row = self._calls.get(key)
            if row is None:
                row = self._calls[key] = [0, 0.0, 0, 0, 0, 0]
            row[0] += 1
            if e.prompt_tokens or e.completion_tokens:
                row[1] += e.cost
                row[2] += e.prompt_tokens
                row[3] += e.completion_tokens
                row[4] += e.cached_tokens
                row[5] += e.reasoning_tokens
            if provider:  # it reached an endpoint: its timing (a call refused before routing has none worth a bucket)
                seconds = e.latency_ms / 1000
                _observe(self._duration, (model, provider, error), DURATION_BOUNDS, seconds)
                if status == "completed":
                    mp = (model, provider)
                    _observe(self._input, mp, TOKEN_BOUNDS, e.prompt_tokens)
                    _observe(self._output, mp, TOKEN_BOUNDS, e.completion_tokens)
                    if e.streamed and e.ttft_ms is not None:
                        _observe(self._ttft, mp, TTFT_BOUNDS, e.ttft_ms / 1000)
                        if e.completion_tokens > 1:
                            _observe(self._tpot, mp, TPOT_BOUNDS,
                                     max(seconds - e.ttft_ms / 1000, 0.0) / (e.completion_tokens - 1))
            if e.heal_status is not None:
                heal = self._heals.get((model, e.heal_status))
                if heal is None:
                    heal = self._heals[(model, e.heal_status)] = [0, 0]
                heal[0] += 1
                heal[1] += e.heal_repairs
            if self.tap is not None:
                self.tap.append(e)

    def snapshot(self) -> Snapshot:
        with self._lock:
            def copy(table: dict) -> dict:
                return {k: list(v) for k, v in table.items()}

            return Snapshot(copy(self._calls), copy(self._duration), copy(self._ttft), copy(self._tpot),
                            copy(self._input), copy(self._output), copy(self._heals))
