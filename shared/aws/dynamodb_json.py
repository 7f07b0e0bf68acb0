"""The metering write path to DynamoDB, without boto3's per-item serialisation.

Measured on the usage-record transaction (97 records, `python -m benchmarks.parts`): boto3's TypeSerializer
plus botocore's shape-walking JSON serialiser cost ~150 µs of CPU per record in the gateway process; this module
writes DynamoDB JSON by hand, serialises the request with orjson and signs it with botocore's own SigV4 signer:
~17 µs per record (benchmarks/README.md). Everything else about DynamoDB stays on boto3 (shared/aws/dynamodb.py).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import orjson
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import get_session

from shared.aws.dynamodb import TransactionConflictError
from shared.errors import StorageError

_TARGET = "DynamoDB_20120810."


def attr(value: Any) -> dict[str, Any] | None:
    """A Python scalar as a DynamoDB attribute value (None: leave the attribute out)."""
    if value is None:
        return None
    if value is True or value is False:
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, dict):
        return {"M": item(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [a for v in value if (a := attr(v)) is not None]}
    raise TypeError(f"no DynamoDB attribute for {type(value).__name__}")


def item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: a for k, v in data.items() if (a := attr(v)) is not None}


class JsonClient:
    """Signed DynamoDB JSON-protocol calls over one pooled connection set."""

    def __init__(self) -> None:
        session = get_session()
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or session.get_config_variable("region") or "us-east-1"
        self.credentials = session.get_credentials()
        endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
        self.url = (endpoint or f"https://dynamodb.{self.region}.amazonaws.com").rstrip("/") + "/"
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False,
                                        timeout=urllib3.Timeout(connect=2.0, read=10.0))

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        data = orjson.dumps(body)
        request = AWSRequest(method="POST", url=self.url, data=data, headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": _TARGET + operation})
        if self.credentials is None:
            raise StorageError("No AWS credentials for DynamoDB")
        SigV4Auth(self.credentials.get_frozen_credentials(), "dynamodb", self.region).add_auth(request)
        try:
            response = self.pool.request("POST", self.url, body=data, headers=dict(request.headers.items()))
        except urllib3.exceptions.HTTPError as e:
            raise StorageError(f"Storage is unavailable ({operation}: {type(e).__name__})") from e
        payload = orjson.loads(response.data) if response.data else {}
        if response.status == 200:
            return payload
        code = str(payload.get("__type", "")).rsplit("#", 1)[-1]
        if code == "TransactionCanceledException":
            raise TransactionConflictError([r.get("Code", "None") for r in payload.get("CancellationReasons", [])])
        raise StorageError(f"Storage is unavailable ({operation}: {code or response.status})",
                           metadata={"aws_code": code})


@lru_cache(maxsize=1)
def json_client() -> JsonClient:
    return JsonClient()


def transact_write(actions: list[dict[str, Any]]) -> None:
    json_client().call("TransactWriteItems", {"TransactItems": actions})
