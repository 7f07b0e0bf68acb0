"""Lambda entry point: the FastAPI app behind Mangum. Every call ends in time to be metered before the
function returns: its deadline is the invocation's remaining time less a margin (a setting, 2.5 s). The
invocation's metrics go to CloudWatch as EMF (functions/gateway/cloudwatch.py): nothing scrapes a Lambda."""

import time
from typing import Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum

from functions.gateway import cloudwatch
from functions.gateway.app import app
from functions.gateway.state import gateway
from shared.providers.base import DEADLINE

logger = Logger()
metrics = Metrics()
asgi = Mangum(app, lifespan="off")


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    g = gateway()
    margin = g.settings.lambda_deadline_margin_seconds
    token = DEADLINE.set(time.perf_counter() + context.get_remaining_time_in_millis() / 1000 - margin)
    invocation = cloudwatch.begin(g)
    try:
        return asgi(event, context)
    finally:
        DEADLINE.reset(token)
        # A frozen function runs no background work: write the usage records now, retrying a passing failure
        # within the time the invocation has left (what is still pending stays for the next invocation).
        meter = g.meter
        written = meter.written
        try:
            meter.drain(max(context.get_remaining_time_in_millis() / 1000 - 0.5, 0.1), final=False)
        except Exception:  # metering must not turn an answered call into a failed invocation
            logger.exception("usage flush failed")
        metrics.add_metric(name="UsageRecordsWritten", unit=MetricUnit.Count, value=meter.written - written)
        try:
            cloudwatch.emit(g, invocation)
        except Exception:  # nor must a metric
            logger.exception("metrics not emitted")
