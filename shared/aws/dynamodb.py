"""DynamoDB adapter: plain dicts in, plain dicts out (shared/aws/codec.py); botocore errors translated here, chained."""

from __future__ import annotations

from typing import Any, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import client
from shared.aws.codec import item as to_item, plain as from_item
from shared.errors import StorageError

__all__ = ["ConditionFailedError", "Table", "TransactionConflictError", "batch_get", "from_item", "to_item"]


class ConditionFailedError(Exception):
    """A conditional write found its condition false (e.g. the item exists already); `item`: the item as it was,
    when the write asked for it (`update(..., old_on_failure=True)`), else None."""

    def __init__(self, what: str, item: dict[str, Any] | None = None) -> None:
        super().__init__(what)
        self.item = item


class TransactionConflictError(Exception):
    """A transaction was cancelled; `reasons` holds each item's cancellation code ('None' where it passed)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


def _translate(e: Exception, what: str) -> Exception:
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            old = e.response.get("Item")
            return ConditionFailedError(what, from_item(old) if old else None)
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
               values: dict[str, Any] | None = None, condition: str | None = None,
               old_on_failure: bool = False) -> dict[str, Any]:
        """The item after the update; `old_on_failure`: a failed condition carries the item as it was
        (ConditionFailedError.item), in the same round trip."""
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": to_item(key), "UpdateExpression": expression,
                                  "ReturnValues": "ALL_NEW"}
        if old_on_failure:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
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

    def query(self, hash_name: str, hash_value: str, *, range_name: str | None = None,
              prefix: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Up to `limit` items of one partition, optionally those whose sort key starts with `prefix`."""
        condition, values = "#h = :h", {":h": hash_value}
        names = {"#h": hash_name}
        if prefix is not None and range_name is not None:
            condition += " AND begins_with(#r, :p)"
            names["#r"], values[":p"] = range_name, prefix
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": condition,
                                  "ExpressionAttributeNames": names, "ExpressionAttributeValues": to_item(values)}
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            try:
                page = client("dynamodb").query(**kwargs)
            except (ClientError, BotoCoreError) as e:
                raise _translate(e, f"query {self.name}") from e
            found.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def newest(self, index: str, hash_name: str, hash_value: Any, range_name: str, at_least: Any, *,
               limit: int, max_pages: int) -> list[dict[str, Any]]:
        """Up to `limit` items of one partition of `index` whose sort key is at least `at_least`, newest first,
        read in at most `max_pages` pages."""
        kwargs: dict[str, Any] = {
            "TableName": self.name, "IndexName": index, "ScanIndexForward": False, "Limit": limit,
            "KeyConditionExpression": "#h = :h AND #r >= :r",
            "ExpressionAttributeNames": {"#h": hash_name, "#r": range_name},
            "ExpressionAttributeValues": to_item({":h": hash_value, ":r": at_least}),
        }
        found: list[dict[str, Any]] = []
        for _ in range(max_pages):
            try:
                page = client("dynamodb").query(**kwargs)
            except (ClientError, BotoCoreError) as e:
                raise _translate(e, f"query {self.name}") from e
            found.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page or len(found) >= limit:
                break
            kwargs.update(ExclusiveStartKey=page["LastEvaluatedKey"], Limit=limit - len(found))
        return found

    def page(self, condition: str, *, names: dict[str, str], values: dict[str, Any], index: str | None = None,
             forward: bool = True, limit: int = 100, start: dict[str, Any] | None = None,
             consistent: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a query (`condition` on the key): up to `limit` items in sort-key order (`forward`) or
        reversed, and the key to continue from (None: nothing more)."""
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": condition,
                                  "ExpressionAttributeNames": names, "ExpressionAttributeValues": to_item(values),
                                  "ScanIndexForward": forward, "Limit": limit, "ConsistentRead": consistent}
        if index:
            kwargs["IndexName"] = index
        if start:
            kwargs["ExclusiveStartKey"] = to_item(start)
        try:
            page = client("dynamodb").query(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, f"query {self.name}") from e
        last = page.get("LastEvaluatedKey")
        return [from_item(i) for i in page.get("Items", [])], (from_item(last) if last else None)

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
