"""Fixes for moto's DynamoDB, applied by the local stack and the tests (never on AWS).

Requests are serialised. DynamoDB applies writes to one item one at a time (a conditional update is atomic)
and never lets a read see half a write; moto's threaded server does neither: two concurrent
`SET committed = committed + :a` on one item could both read the old value (a spend hold was lost and a limit
overshot, caught by tests/test_spend.py), and a read serialising an item while a write changed it raised
"dictionary changed size during iteration". Every DynamoDB request, and every write made to the backend
directly, takes one lock here (`lock`, also taken by infra/state.py while it reads the tables to save them).

moto's `transact_write_items` keeps a rollback copy by deep-copying every table the transaction touches,
once per action: O(actions × table size) per call. With the usage table holding tens of thousands of records,
one metering batch took about a second and the local stack could meter only ~25 calls a second.
Here the rollback copy shares the untouched items and deep-copies only the items the transaction can change,
so a transaction costs O(actions) again; moto's own logic (conditions, cancellation reasons, rollback) runs
unchanged. tests/test_moto_patches.py checks that a cancelled transaction still leaves every table as it was,
its stream included (the rollback copy shares the stream, so the records of cancelled writes are cut off here).

moto keeps every stream record in memory forever: `trim_streams` applies DynamoDB's 24-hour retention.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from typing import Any

lock = _lock = threading.RLock()  # every DynamoDB request and backend write, transactions included


class _Copier:
    """Stands in for the `copy` module inside moto's DynamoDB models during one transaction."""

    def __init__(self, touched: dict[int, set[tuple[Any, Any]]]) -> None:
        self.touched = touched
        self.made: dict[int, Any] = {}

    def deepcopy(self, obj: Any, memo: Any = None) -> Any:
        keys = self.touched.get(id(obj))
        if keys is None:
            return copy.deepcopy(obj, memo)
        if id(obj) not in self.made:
            self.made[id(obj)] = _rollback_copy(obj, keys)
        return self.made[id(obj)]

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _rollback_copy(table: Any, keys: set[tuple[Any, Any]]) -> Any:
    snapshot = copy.copy(table)
    items = defaultdict(dict, table.items)  # shallow: the untouched items are shared, never mutated here
    copied: set[Any] = set()
    for hash_key, range_key in keys:
        if hash_key not in table.items:
            continue
        if table.has_range_key:
            if hash_key not in copied:  # one copy of each inner mapping, however many of its items are touched
                items[hash_key] = dict(table.items[hash_key])
                copied.add(hash_key)
            if range_key in items[hash_key]:
                items[hash_key][range_key] = copy.deepcopy(items[hash_key][range_key])
        else:
            items[hash_key] = copy.deepcopy(table.items[hash_key])
    snapshot.items = items
    return snapshot


def install() -> None:
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "switchyard_patched", False):
        return
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: dict[int, set[tuple[Any, Any]]] = {}
        for action in transact_items:
            op = next(iter(action.values()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            hash_value = key.get(table.hash_key_attr)
            range_value = key.get(table.range_key_attr) if table.has_range_key else None
            touched.setdefault(id(table), set()).add(
                (DynamoType(hash_value) if hash_value else None, DynamoType(range_value) if range_value else None))
        with _lock:
            saved = models.copy
            models.copy = _Copier(touched)  # type: ignore[assignment]
            streams = {t.name: len(t.stream_shard.items) for t in self.tables.values()
                       if id(t) in touched and t.stream_shard is not None}
            try:
                return original(self, transact_items)
            except Exception:
                # the rolled-back tables share their stream with the live ones (see _rollback_copy): the records
                # of the cancelled writes must go too, or a stream consumer would see writes that never happened
                for name, length in streams.items():
                    del self.tables[name].stream_shard.items[length:]
                raise
            finally:
                models.copy = saved

    transact_write_items.switchyard_patched = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items
    for name in ("put_item", "update_item", "delete_item"):
        setattr(backend, name, _serialised(getattr(backend, name)))
    from moto.dynamodb.responses import DynamoHandler

    DynamoHandler.call_action = _serialised(DynamoHandler.call_action)  # the action and its response's items
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    DynamoDBStreamsHandler.call_action = _serialised(DynamoDBStreamsHandler.call_action)  # reads the shard's list
    from moto.dynamodb.models import table as table_module

    # moto serialises every stream record once more only to measure it (`SizeBytes`, "a substantial
    # overestimate"): 50-130 µs a usage record, inside the metering transaction. Nothing we run reads it.
    table_module.dynamo_json_dump = lambda _record: ""


def without_streams(table_names: list[str]) -> None:
    """No stream records for these tables (the local stack without its usage exporter: nothing would read them)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    with _lock:
        for backend in dynamodb_backends[DEFAULT_ACCOUNT_ID].values():
            for name in table_names:
                if name in backend.tables:
                    backend.tables[name].stream_shard = None


def trim_streams(max_age_seconds: float = 86400.0) -> int:
    """Drop stream records older than DynamoDB's 24-hour retention (moto keeps every one in memory forever);
    returns how many. Sequence numbers stay as they were: the shard's start moves past the trimmed records."""
    import datetime as dt

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    cutoff = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=max_age_seconds)
    trimmed = 0
    with _lock:
        for backend in dynamodb_backends[DEFAULT_ACCOUNT_ID].values():
            for table in backend.tables.values():
                shard = table.stream_shard
                if shard is None:
                    continue
                n = 0
                for record in shard.items:
                    created = record.record["dynamodb"]["ApproximateCreationDateTime"]
                    if created.replace(tzinfo=None) >= cutoff:  # moto's utcnow(): naive UTC
                        break
                    n += 1
                if n:
                    del shard.items[:n]
                    shard.starting_sequence_number += n
                    trimmed += n
    return trimmed


def _serialised(write: Any) -> Any:
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return write(self, *args, **kwargs)

    locked.__name__ = write.__name__
    return locked
