"""The local stack's faster moto transactions keep moto's semantics: all or nothing."""

import boto3
import pytest
from botocore.exceptions import ClientError


def s(v):
    return {"S": v}


def n(v):
    return {"N": str(v)}


@pytest.fixture
def ddb(aws):
    client = boto3.client("dynamodb")
    usage, counters = aws["UsageTable"], aws["CountersTable"]
    for i in range(50):
        client.put_item(TableName=usage, Item={"id": s(f"old-{i}"), "key_id": s("k"), "created_at": n(i)})
    for period in ("total", "day#y", "day#z"):  # several items under one hash key, all updated below
        client.put_item(TableName=counters, Item={"pk": s("key#k"), "period": s(period), "cost": n(1)})
    return client, usage, counters


def dump(client, table):
    return sorted(map(str, client.scan(TableName=table)["Items"]))


def actions(usage, counters, ids):
    return ([{"Put": {"TableName": usage, "Item": {"id": s(i), "key_id": s("k"), "created_at": n(1)},
                      "ConditionExpression": "attribute_not_exists(id)"}} for i in ids]
            + [{"Update": {"TableName": counters, "Key": {"pk": s("key#k"), "period": s("total")},
                           "UpdateExpression": "ADD cost :c", "ExpressionAttributeValues": {":c": n(5)}}},
               {"Update": {"TableName": counters, "Key": {"pk": s("key#k"), "period": s("month#x")},
                           "UpdateExpression": "ADD cost :c", "ExpressionAttributeValues": {":c": n(5)}}}]
            + [{"Update": {"TableName": counters, "Key": {"pk": s("key#k"), "period": s(p)},
                           "UpdateExpression": "ADD cost :c", "ExpressionAttributeValues": {":c": n(5)}}}
               for p in ("day#y", "day#z")])


def test_a_cancelled_transaction_changes_nothing(ddb):
    client, usage, counters = ddb
    before = dump(client, usage), dump(client, counters)
    with pytest.raises(ClientError) as e:
        client.transact_write_items(TransactItems=actions(usage, counters, ["new-1", "old-3", "new-2"]))
    reasons = [r["Code"] for r in e.value.response["CancellationReasons"]]
    assert reasons[1] == "ConditionalCheckFailed" and reasons[0] == "None"
    assert (dump(client, usage), dump(client, counters)) == before


def test_a_committed_transaction_changes_everything(ddb):
    client, usage, counters = ddb
    client.transact_write_items(TransactItems=actions(usage, counters, ["new-1", "new-2"]))
    assert len(client.scan(TableName=usage)["Items"]) == 52
    total = client.get_item(TableName=counters, Key={"pk": s("key#k"), "period": s("total")})["Item"]
    month = client.get_item(TableName=counters, Key={"pk": s("key#k"), "period": s("month#x")})["Item"]
    assert total["cost"] == n(6) and month["cost"] == n(5)
    # and a later cancelled one rolls back the items the earlier one created
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=actions(usage, counters, ["new-3", "new-1"]))
    assert client.get_item(TableName=counters, Key={"pk": s("key#k"), "period": s("total")})["Item"]["cost"] == n(6)
    assert "Item" not in client.get_item(TableName=usage, Key={"id": s("new-3")})


def test_concurrent_updates_of_one_item_are_never_lost(aws):
    """DynamoDB applies one item's writes one at a time; moto's threaded server did not (lost updates)."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.aws.dynamodb import Table

    table = Table(aws["CountersTable"])
    key = {"pk": "key#race", "period": "total"}

    def add(_: int) -> None:
        for _ in range(25):
            table.update(key, "ADD n :one, committed :half", values={":one": 1, ":half": 0.5})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(add, range(16)))
    row = table.get(key)
    assert row["n"] == 400 and row["committed"] == 200
