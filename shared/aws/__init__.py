"""One adapter per AWS service; clients are built once per process by a cached factory.

botocore directly rather than boto3: the gateway needs only low-level clients, and `import boto3` adds
s3transfer and the resource layer (~120 ms of the Lambda handler's import on this machine)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from botocore.config import Config
from botocore.session import get_session

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=32,
    tcp_keepalive=True,
    parameter_validation=False,  # our request shapes are fixed and tested; skip re-checking them per call
)


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    """A shared client; region and endpoint come from the environment (AWS_ENDPOINT_URL locally)."""
    return get_session().create_client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between stacks)."""
    client.cache_clear()
