"""The gateway's metrics on Lambda: CloudWatch embedded metric format (EMF) through Powertools, once an invocation.

A Lambda instance is frozen between invocations and nothing scrapes it, so the handler (functions/gateway/
handler.py) opens an `Invocation` before the request and `emit`s after it: the calls metered meanwhile (the
`CallMetrics.tap`: one under API Gateway, which sends one request an invocation) as one EMF document per
(model, provider), and the process-wide counts as what changed during the invocation. CloudWatch aggregates
(Sum, percentiles of the raw values); the dashboard in template.yaml (`GatewayDashboard`) graphs them.

Dimensions, few by construction: `service` always; `model`, `provider` on the per-call metrics (`none` when a
call was refused before either was known); `provider`, `error_type` on upstream errors; `limit` on refusals.
No app or key dimension: each distinct set of dimensions is a billed custom metric.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

if TYPE_CHECKING:
    from functions.gateway.state import Gateway
    from shared.metering import UsageEvent

# name → unit, per call (dimensions model, provider)
PER_CALL = {
    "switchyard_requests": MetricUnit.Count,
    "switchyard_request_errors": MetricUnit.Count,  # 1 for a call that did not complete, else 0
    "switchyard_cost_usd": MetricUnit.NoUnit,
    "gen_ai_client_token_usage_input": MetricUnit.Count,
    "gen_ai_client_token_usage_output": MetricUnit.Count,
    "gen_ai_client_operation_duration": MetricUnit.Seconds,
    "gen_ai_server_time_to_first_token": MetricUnit.Seconds,  # streamed calls that completed
    "gen_ai_server_time_per_output_token": MetricUnit.Seconds,
    "switchyard_heal_healed": MetricUnit.Count,
    "switchyard_heal_failed": MetricUnit.Count,
}
UPSTREAM_ERRORS = "switchyard_upstream_errors"  # dimensions provider, error_type
RATE_LIMIT_REFUSALS = "switchyard_rate_limit_refusals"  # dimension limit
# dimension service only: what the process holds after the invocation, and the invocation's dead letters
PROCESS = {"switchyard_metering_backlog": MetricUnit.Count, "switchyard_metering_dead_letters": MetricUnit.Count,
           "switchyard_circuit_breakers_open": MetricUnit.Count}
METRICS = (*PER_CALL, UPSTREAM_ERRORS, RATE_LIMIT_REFUSALS, *PROCESS)  # every name emitted


@dataclass(slots=True)
class Invocation:
    """What the process had counted when the invocation began."""

    upstream_errors: dict[tuple[str, str, str], int]
    refused: dict[str, int]
    dead_letters: int
    events: list["UsageEvent"] = field(default_factory=list)


def begin(g: "Gateway") -> Invocation | None:
    if g.metrics is None:
        return None
    opened = Invocation(dict(g.chat.routing.upstream_errors), dict(g.chat.rates.refused if g.chat.rates else {}),
                        g.meter.dead_letters.count)
    g.metrics.tap = opened.events
    return opened


def _metrics(**dimensions: str) -> EphemeralMetrics:
    m = EphemeralMetrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Switchyard"),
                         service=os.environ.get("POWERTOOLS_SERVICE_NAME", "switchyard-gateway"))
    for name, value in dimensions.items():
        m.add_dimension(name, value or "none")
    return m


def per_call(e: "UsageEvent") -> dict[str, float]:
    """One call's values (a name absent: nothing to say, e.g. no first token of an unstreamed call)."""
    values = {"switchyard_requests": 1.0, "switchyard_request_errors": float(e.status != "completed")}
    if e.prompt_tokens or e.completion_tokens:
        values.update(switchyard_cost_usd=e.cost, gen_ai_client_token_usage_input=e.prompt_tokens,
                      gen_ai_client_token_usage_output=e.completion_tokens)
    if e.provider:
        values["gen_ai_client_operation_duration"] = e.latency_ms / 1000
        if e.status == "completed" and e.streamed and e.ttft_ms is not None:
            values["gen_ai_server_time_to_first_token"] = e.ttft_ms / 1000
            if e.completion_tokens > 1:
                values["gen_ai_server_time_per_output_token"] = \
                    max(e.latency_ms - e.ttft_ms, 0.0) / 1000 / (e.completion_tokens - 1)
    if e.heal_status in ("healed", "failed"):
        values["switchyard_heal_" + e.heal_status] = 1.0
    return values


def emit(g: "Gateway", opened: Invocation | None) -> None:
    """Print the invocation's EMF documents (stdout: Lambda sends them to CloudWatch Logs, which extracts them)."""
    if opened is None or g.metrics is None:
        return
    g.metrics.tap = None
    groups: dict[tuple[str, str], list["UsageEvent"]] = {}
    for e in opened.events:
        groups.setdefault((g.metrics.model_label(e), e.provider or ""), []).append(e)
    for (model, provider), events in groups.items():
        m = _metrics(model=model, provider=provider)
        for e in events:
            for name, value in per_call(e).items():
                m.add_metric(name, PER_CALL[name], value)
        m.flush_metrics()
    for key, n in g.chat.routing.upstream_errors.items():
        if n > opened.upstream_errors.get(key, 0):
            m = _metrics(provider=key[0], error_type=key[2])
            m.add_metric(UPSTREAM_ERRORS, MetricUnit.Count, n - opened.upstream_errors.get(key, 0))
            m.flush_metrics()
    for limit, n in (g.chat.rates.refused if g.chat.rates else {}).items():
        if n > opened.refused.get(limit, 0):
            m = _metrics(limit=limit)
            m.add_metric(RATE_LIMIT_REFUSALS, MetricUnit.Count, n - opened.refused.get(limit, 0))
            m.flush_metrics()
    m = _metrics()
    m.add_metric("switchyard_metering_backlog", MetricUnit.Count, g.meter.backlog)
    m.add_metric("switchyard_metering_dead_letters", MetricUnit.Count, g.meter.dead_letters.count - opened.dead_letters)
    m.add_metric("switchyard_circuit_breakers_open", MetricUnit.Count,
                 sum(s != "closed" for s in g.chat.routing.breakers.states().values()))
    m.flush_metrics()
