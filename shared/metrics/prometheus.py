"""The Prometheus text exposition of the gateway, built at scrape time from what the process already counts.

`GatewayCollector` is a prometheus-client custom collector: nothing Prometheus runs on the request path; each
scrape turns `CallMetrics.snapshot()` (shared/metrics/calls.py), the breakers and upstream errors of routing,
the meter's backlog and dead letters and the rate limiter's refusals into metric families. Names follow
OpenTelemetry's GenAI semantic conventions where they exist (`gen_ai_*`, with OTel's Prometheus unit suffix
`_seconds`), LiteLLM's where a dashboard might be ported from it (`litellm_*`), our own (`switchyard_*`) for
the rest. The mapping is the README's "Metrics and monitoring" table; `NAMES` lists every family exposed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.metrics.calls import (DURATION_BOUNDS, TOKEN_BOUNDS, TPOT_BOUNDS, TTFT_BOUNDS, CallMetrics, Histogram,
                                  Snapshot)
from shared.routing.breaker import CLOSED, HALF_OPEN, OPEN

if TYPE_CHECKING:
    from shared.keys.rates import RateLimiter
    from shared.metering import Meter
    from shared.routing.state import RoutingState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPERATION = "chat"  # gen_ai.operation.name: every front (chat, messages, responses…) is a chat call here
_BREAKER_STATES = (CLOSED, HALF_OPEN, OPEN)
_LITELLM_STATE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # litellm_deployment_state: healthy, partial, outage
_TOKEN_TYPES = ("input", "output", "cached", "reasoning")

# Every family /metrics exposes (as its `# TYPE` line names it; counters' samples add `_total`, histograms'
# `_bucket`, `_sum`, `_count`). tests/test_metrics_grafana.py checks the Grafana board against these.
NAMES = (
    "gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds", "gen_ai_server_time_to_first_token_seconds",
    "gen_ai_server_time_per_output_token_seconds",
    "switchyard_requests", "switchyard_tokens", "switchyard_cost_usd", "switchyard_upstream_errors",
    "switchyard_circuit_breaker_state", "switchyard_heal", "switchyard_heal_repairs", "switchyard_metering_backlog",
    "switchyard_metering_dead_letters", "switchyard_metering_written", "switchyard_metering_write_failures",
    "switchyard_rate_limit_refusals",
    "litellm_proxy_total_requests_metric", "litellm_proxy_failed_requests_metric", "litellm_spend_metric",
    "litellm_input_tokens_metric", "litellm_output_tokens_metric", "litellm_total_tokens_metric",
    "litellm_request_total_latency_metric", "litellm_llm_api_time_to_first_token_metric",
    "litellm_deployment_state", "litellm_deployment_failure_responses",
)


def _histogram(family: HistogramMetricFamily, labels: list[str], bounds: tuple, h: Histogram) -> None:
    buckets, running = [], 0
    for bound, count in zip(bounds, h):
        running += count
        buckets.append((_le(bound), running))
    buckets.append(("+Inf", running + h[len(bounds)]))
    family.add_metric(labels, buckets, h[-1])


def _le(bound: float) -> str:
    return repr(float(bound))


class GatewayCollector(Collector):
    def __init__(self, calls: CallMetrics, routing: "RoutingState", meter: "Meter",
                 rates: "RateLimiter | None") -> None:
        self.calls, self.routing, self.meter, self.rates = calls, routing, meter, rates

    def collect(self) -> Iterator[Metric]:
        snap = self.calls.snapshot()
        yield from self._requests(snap)
        yield from self._timing(snap)
        yield from self._routing()
        yield from self._heals(snap)
        yield from self._metering()
        refusals = CounterMetricFamily("switchyard_rate_limit_refusals",
                                       "Calls refused by their key's own rate limit (429), by limit", labels=["limit"])
        for limit, n in sorted((self.rates.refused if self.rates is not None else {}).items()):
            refusals.add_metric([limit], n)
        yield refusals

    def _requests(self, snap: Snapshot) -> Iterable[Metric]:
        keyed = self.calls.key_labels
        extra = ["key"] if keyed else []
        requests = CounterMetricFamily("switchyard_requests", "Metered calls, by model, provider, app and outcome",
                                       labels=["model", "provider", "app", "status", "code", "error_type", *extra])
        tokens = CounterMetricFamily("switchyard_tokens", "Tokens of metered calls, by type (cached is part of input, "
                                     "reasoning part of output)", labels=["model", "provider", "app", "type", *extra])
        cost = CounterMetricFamily("switchyard_cost_usd", "USD of metered calls at the catalog's prices",
                                   labels=["model", "provider", "app", *extra])
        l_total = CounterMetricFamily("litellm_proxy_total_requests_metric", "LiteLLM's name: every call",
                                      labels=["model", "requested_model", "api_provider", "status_code"])
        l_failed = CounterMetricFamily("litellm_proxy_failed_requests_metric", "LiteLLM's name: failed calls",
                                       labels=["model", "requested_model", "api_provider", "exception_status"])
        l_spend = CounterMetricFamily("litellm_spend_metric", "LiteLLM's name: USD spent", labels=["model"])
        l_in = CounterMetricFamily("litellm_input_tokens_metric", "LiteLLM's name: input tokens", labels=["model"])
        l_out = CounterMetricFamily("litellm_output_tokens_metric", "LiteLLM's name: output tokens", labels=["model"])
        l_all = CounterMetricFamily("litellm_total_tokens_metric", "LiteLLM's name: input + output tokens",
                                    labels=["model"])
        usage: dict[tuple, list] = {}  # (model, provider, app[, key]) → [cost, input, output, cached, reasoning]
        by_model: dict[str, list] = {}  # model → [cost, input, output]
        l_requests: dict[tuple, int] = {}
        for (model, provider, app, status, code, error, key), row in sorted(snap.calls.items()):
            k = [key] if keyed else []
            requests.add_metric([model, provider, app, status, code, error, *k], row[0])
            u = usage.setdefault((model, provider, app, *k), [0.0, 0, 0, 0, 0])
            m = by_model.setdefault(model, [0.0, 0, 0])
            for i in range(5):
                u[i] += row[1 + i]
            for i in range(3):
                m[i] += row[1 + i]
            lk = (model, model, provider, code, status != "completed")
            l_requests[lk] = l_requests.get(lk, 0) + row[0]
        for labels, u in usage.items():
            if not any(u):
                continue  # calls that used nothing (refused, failed) add no token or cost series
            cost.add_metric(list(labels), u[0])
            for i, kind in enumerate(_TOKEN_TYPES):
                tokens.add_metric([*labels[:3], kind, *labels[3:]], u[1 + i])
        for model, m in by_model.items():
            if not any(m):
                continue
            l_spend.add_metric([model], m[0])
            l_in.add_metric([model], m[1])
            l_out.add_metric([model], m[2])
            l_all.add_metric([model], m[1] + m[2])
        for (model, requested, provider, code, failed), n in l_requests.items():
            l_total.add_metric([model, requested, provider, code], n)
            if failed:
                l_failed.add_metric([model, requested, provider, code], n)
        yield from (requests, tokens, cost, l_total, l_failed, l_spend, l_in, l_out, l_all)

    def _timing(self, snap: Snapshot) -> Iterable[Metric]:
        gen_ai = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
        usage = HistogramMetricFamily("gen_ai_client_token_usage", "Tokens a completed call used, by type ({token})",
                                      labels=[*gen_ai, "gen_ai_token_type"])
        for (model, provider), h in sorted(snap.input_tokens.items()):
            _histogram(usage, [OPERATION, provider, model, "input"], TOKEN_BOUNDS, h)
        for (model, provider), h in sorted(snap.output_tokens.items()):
            _histogram(usage, [OPERATION, provider, model, "output"], TOKEN_BOUNDS, h)
        duration = HistogramMetricFamily("gen_ai_client_operation_duration_seconds",
                                         "A call's whole duration as its client saw it (error_type empty: success)",
                                         labels=[*gen_ai, "error_type"])
        l_latency = HistogramMetricFamily("litellm_request_total_latency_metric", "LiteLLM's name: whole duration",
                                          labels=["model"])
        latency_by_model: dict[str, Histogram] = {}
        for (model, provider, error), h in sorted(snap.duration.items()):
            _histogram(duration, [OPERATION, provider, model, error], DURATION_BOUNDS, h)
            total = latency_by_model.setdefault(model, [0] * len(h))
            for i, v in enumerate(h):
                total[i] += v
        for model, h in latency_by_model.items():
            _histogram(l_latency, [model], DURATION_BOUNDS, h)
        ttft = HistogramMetricFamily("gen_ai_server_time_to_first_token_seconds",
                                     "Time to the first token of a streamed call that completed", labels=gen_ai)
        l_ttft = HistogramMetricFamily("litellm_llm_api_time_to_first_token_metric", "LiteLLM's name: time to first "
                                       "token (streamed)", labels=["model", "api_provider"])
        for (model, provider), h in sorted(snap.ttft.items()):
            _histogram(ttft, [OPERATION, provider, model], TTFT_BOUNDS, h)
            _histogram(l_ttft, [model, provider], TTFT_BOUNDS, h)
        tpot = HistogramMetricFamily("gen_ai_server_time_per_output_token_seconds",
                                     "Time per output token after the first, of a streamed call", labels=gen_ai)
        for (model, provider), h in sorted(snap.tpot.items()):
            _histogram(tpot, [OPERATION, provider, model], TPOT_BOUNDS, h)
        yield from (usage, duration, l_latency, ttft, l_ttft, tpot)

    def _routing(self) -> Iterable[Metric]:
        errors = CounterMetricFamily("switchyard_upstream_errors", "Failed upstream attempts (a call may make "
                                     "several), by provider, model and error type",
                                     labels=["provider", "model", "error_type"])
        l_errors = CounterMetricFamily("litellm_deployment_failure_responses", "LiteLLM's name: failed upstream "
                                       "attempts", labels=["api_provider", "litellm_model_name", "exception_class"])
        for (provider, model, kind), n in sorted(dict(self.routing.upstream_errors).items()):
            errors.add_metric([provider, model, kind], n)
            l_errors.add_metric([provider, model, kind], n)
        state = GaugeMetricFamily("switchyard_circuit_breaker_state", "1 for each endpoint's current breaker state",
                                  labels=["provider", "upstream_model", "state"])
        l_state = GaugeMetricFamily("litellm_deployment_state", "LiteLLM's name: 0 closed (healthy), 1 half-open "
                                    "(partial), 2 open (outage)", labels=["api_provider", "litellm_model_name"])
        for endpoint, current in sorted(self.routing.breakers.states().items()):
            provider, _, upstream = endpoint.partition("/")
            for s in _BREAKER_STATES:
                state.add_metric([provider, upstream, s], 1.0 if s == current else 0.0)
            l_state.add_metric([provider, upstream], _LITELLM_STATE[current])
        yield from (errors, l_errors, state, l_state)

    def _heals(self, snap: Snapshot) -> Iterable[Metric]:
        heals = CounterMetricFamily("switchyard_heal", "Calls whose JSON healing ran, by outcome "
                                    "(healed, skipped, failed)", labels=["model", "outcome"])
        repairs = CounterMetricFamily("switchyard_heal_repairs", "Repairs made by JSON healing", labels=["model"])
        per_model: dict[str, int] = {}
        for (model, outcome), (n, fixed) in sorted(snap.heals.items()):
            heals.add_metric([model, outcome], n)
            per_model[model] = per_model.get(model, 0) + fixed
        for model, fixed in per_model.items():
            repairs.add_metric([model], fixed)
        yield from (heals, repairs)

    def _metering(self) -> Iterable[Metric]:
        m = self.meter
        yield GaugeMetricFamily("switchyard_metering_backlog", "Usage records not yet written", value=m.backlog)
        yield GaugeMetricFamily("switchyard_metering_dead_letters", "Usage records set aside by this process "
                                "(DynamoDB would not take them)", value=m.dead_letters.count)
        yield CounterMetricFamily("switchyard_metering_written", "Usage records written (or set aside)",
                                  value=m.written)
        yield CounterMetricFamily("switchyard_metering_write_failures", "Failed usage writes (retried or isolated)",
                                  value=m.failures)


def exposition(collector: GatewayCollector) -> bytes:
    """The text a scrape gets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
