"""Lambda entry point: the FastAPI app behind Mangum; metering is flushed before the function returns."""

from aws_lambda_powertools import Logger
from mangum import Mangum

from functions.gateway.app import app
from functions.gateway.state import gateway

logger = Logger()
asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: object) -> dict:
    try:
        return asgi(event, context)
    finally:
        gateway().meter.flush()  # a frozen function runs no background work: write usage now
