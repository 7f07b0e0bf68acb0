"""One adapter per AWS service; boto3 clients are built once per process by a cached factory."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

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
    """A shared boto3 client; region and endpoint come from the environment (AWS_ENDPOINT_URL locally)."""
    return boto3.session.Session().client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between stacks)."""
    client.cache_clear()
