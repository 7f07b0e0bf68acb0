"""Lambda entry point: the FastAPI app behind Mangum; metering is flushed before the function returns."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum

from functions.gateway.app import app
from functions.gateway.state import gateway

logger = Logger()
metrics = Metrics()
asgi = Mangum(app, lifespan="off")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    try:
        return asgi(event, context)
    finally:
        # A frozen function runs no background work: write the usage records now.
        metrics.add_metric(name="UsageRecordsWritten", unit=MetricUnit.Count, value=gateway().meter.flush())
