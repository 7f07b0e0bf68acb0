"""Metrics of the gateway's calls, counted cheaply as the meter takes each usage event, exposed when asked.

    calls.py       CallMetrics: counts, sums and histogram buckets in plain dicts (no exporter on the request path)
    prometheus.py  GatewayCollector: the Prometheus families of GET /metrics, built at scrape time
(On Lambda, functions/gateway/cloudwatch.py sends the same metrics as CloudWatch EMF, once an invocation.)
"""

from shared.metrics.calls import CallMetrics

__all__ = ["CallMetrics"]
