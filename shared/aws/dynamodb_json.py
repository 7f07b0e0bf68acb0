"""The metering write path to DynamoDB, without boto3's per-item serialisation.

Measured on the usage-record transaction (97 records, `python -m benchmarks.parts`): boto3's TypeSerializer
plus botocore's shape-walking JSON serialiser cost ~150 µs of CPU per record in the gateway process; this module
writes DynamoDB JSON by hand (shared/aws/codec.py, the serialiser of every write path), serialises the request
with orjson and signs it with botocore's own SigV4 signer:
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
            raise StorageError(f"Storage is unavailable ({operation}: {type(e).__name__})",
                               metadata={"aws_code": "", "transport": True}) from e
        try:
            payload = orjson.loads(response.data) if response.data else {}
        except orjson.JSONDecodeError:
            payload = {}  # e.g. an HTML error page from a proxy or a crashed local server
        if response.status == 200 and isinstance(payload, dict):
            return payload
        code = str(payload.get("__type", "")).rsplit("#", 1)[-1] if isinstance(payload, dict) else ""
        if code == "TransactionCanceledException":
            raise TransactionConflictError([r.get("Code", "None") for r in payload.get("CancellationReasons", [])])
        raise StorageError(f"Storage is unavailable ({operation}: {code or response.status})",
                           metadata={"aws_code": code, "http_status": response.status})


@lru_cache(maxsize=1)
def json_client() -> JsonClient:
    return JsonClient()


def transact_write(actions: list[dict[str, Any]]) -> None:
    json_client().call("TransactWriteItems", {"TransactItems": actions})
