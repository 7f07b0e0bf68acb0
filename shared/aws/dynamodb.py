"""DynamoDB adapter: plain dicts in, plain dicts out; botocore errors translated here, chained."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import client
from shared.errors import StorageError

_ser = TypeSerializer()
_de = TypeDeserializer()


class ConditionFailedError(Exception):
    """A conditional write found its condition false (e.g. the item exists already)."""


class TransactionConflictError(Exception):
    """A transaction was cancelled; `reasons` holds each item's cancellation code ('None' where it passed)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_dynamo_value(v)) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _dynamo_value(v: Any) -> Any:
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, dict):
        return {k: _dynamo_value(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [_dynamo_value(x) for x in v]
    return v


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _translate(e: Exception, what: str) -> Exception:
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            return ConditionFailedError(what)
        if code == "TransactionCanceledException":
            reasons = [r.get("Code", "None") for r in e.response.get("CancellationReasons", [])]
            return TransactionConflictError(reasons)
        return StorageError(f"Storage is unavailable ({what}: {code or 'error'})", metadata={"aws_code": code})
    return StorageError(f"Storage is unavailable ({what})")


class Table:
    """One DynamoDB table by name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, key: dict[str, Any], *, consistent: bool = False) -> dict[str, Any] | None:
        try:
            out = client("dynamodb").get_item(TableName=self.name, Key=to_item(key), ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"get {self.name}") from e
        item = out.get("Item")
        return from_item(item) if item else None

    def put(self, item: dict[str, Any], *, condition: str | None = None,
            names: dict[str, str] | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": to_item(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            client("dynamodb").put_item(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"put {self.name}") from e

    def update(self, key: dict[str, Any], expression: str, *, names: dict[str, str] | None = None,
               values: dict[str, Any] | None = None, condition: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": to_item(key), "UpdateExpression": expression,
                                  "ReturnValues": "ALL_NEW"}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = to_item(values)
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            return from_item(client("dynamodb").update_item(**kwargs)["Attributes"])
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"update {self.name}") from e

    def delete(self, key: dict[str, Any]) -> None:
        try:
            client("dynamodb").delete_item(TableName=self.name, Key=to_item(key))
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"delete {self.name}") from e

    def scan(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.name}
        while True:
            try:
                page = client("dynamodb").scan(**kwargs)
            except (ClientError, BotoCoreError) as e:
                raise _translate(e, f"scan {self.name}") from e
            yield from (from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_get(requests: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Get items from several tables in one round trip: {table: [key, ...]} → {table: [item, ...]}."""
    pending = {t: {"Keys": [to_item(k) for k in keys]} for t, keys in requests.items()}
    found: dict[str, list[dict[str, Any]]] = {t: [] for t in requests}
    for _ in range(5):
        try:
            out = client("dynamodb").batch_get_item(RequestItems=pending)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, "batch get") from e
        for t, items in out.get("Responses", {}).items():
            found[t].extend(from_item(i) for i in items)
        pending = out.get("UnprocessedKeys") or {}
        if not pending:
            return found
    raise StorageError("Storage is unavailable (batch get kept returning unprocessed keys)")
