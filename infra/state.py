"""Persistence of the local stack's tables under .switchyard/, so keys and usage survive restarts.

Small tables (keys, counters) are written whole when they change; the usage table only ever gains records,
so new records are appended to a journal instead of rewriting it. Restored items do not reach the tables'
streams (they were streamed when first written). The buckets (the usage lake) are mirrored object by object
under `s3/<bucket>/`. Items are read from and restored into the
in-process moto backend directly (no HTTP round trips), in DynamoDB JSON, which does not depend on moto's
version. Every file is the owner's only (0600): the key records hold key hashes, the journal who spent what.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from infra import moto_patches

TABLES_FILE = "tables.json"
JOURNAL_FILE = "usage.jsonl"
_PRIVATE = 0o600


def _open_private(path: Path, flags: int) -> int:
    """A file descriptor on `path`, created 0600 (an older file is narrowed to 0600 too)."""
    fd = os.open(path, flags | os.O_CREAT, _PRIVATE)
    os.fchmod(fd, _PRIVATE)
    return fd


def _backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][os.environ.get("AWS_DEFAULT_REGION", "us-east-1")]


def _items(table: Any) -> list[Any]:
    """A consistent list of a moto table's items (list() copies under the GIL in one step)."""
    if table.has_range_key:
        return [item for inner in list(table.items.values()) for item in list(inner.values())]
    return list(table.items.values())


def _s3_backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["global"]


class LocalState:
    def __init__(self, state_dir: Path, names: dict[str, str], append_only: frozenset[str]) -> None:
        self.tables_file = state_dir / TABLES_FILE
        self.journal_file = state_dir / JOURNAL_FILE
        self.objects_dir = state_dir / "s3"
        self.buckets = {logical: name for logical, name in names.items() if logical.endswith("Bucket")}
        self._saved_objects: dict[tuple[str, str], str] = {}  # (bucket, key) -> etag on disk
        self.names = {logical: name for logical, name in names.items() if logical.endswith("Table")}
        self.append_only = append_only
        self._journaled: set[Any] = set()
        self._last_dump = ""
        for path in (self.tables_file, self.journal_file):  # written 0644 by earlier versions
            if path.exists():
                path.chmod(_PRIVATE)

    def restore(self) -> int:
        """Load saved items into the (empty) tables and objects into the buckets; returns how many."""
        backend = _backend()
        streams = {}
        for name in self.names.values():  # restored items were streamed when they were first written
            table = backend.get_table(name)
            streams[name], table.stream_shard = table.stream_shard, None
        try:
            return self._restore_items(backend) + self._restore_objects()
        finally:
            for name, shard in streams.items():
                backend.get_table(name).stream_shard = shard

    def _restore_items(self, backend: Any) -> int:
        count = 0
        if self.tables_file.exists():
            for logical, items in json.loads(self.tables_file.read_text()).items():
                if logical in self.names:
                    table = backend.get_table(self.names[logical])
                    for attrs in items:
                        table.put_item(attrs)
                    count += len(items)
        if self.journal_file.exists():
            with self.journal_file.open() as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a crash
                    if entry["table"] in self.names:
                        item = backend.get_table(self.names[entry["table"]]).put_item(entry["item"])
                        self._journaled.add(item.hash_key)
                        count += 1
        return count

    def _object_path(self, logical: str, key: str) -> Path:
        path = (self.objects_dir / logical / key).resolve()
        if not path.is_relative_to((self.objects_dir / logical).resolve()):
            raise ValueError(f"object key {key!r} leaves its bucket's folder")
        return path

    def _restore_objects(self) -> int:
        s3, count = _s3_backend(), 0
        for logical, bucket in self.buckets.items():
            root = self.objects_dir / logical
            if not root.exists():
                continue
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.endswith(".tmp"):
                    key = path.relative_to(root).as_posix()
                    fake = s3.put_object(bucket, key, path.read_bytes())
                    self._saved_objects[(bucket, key)] = fake.etag
                    count += 1
        return count

    def save_objects(self) -> None:
        """Mirror the buckets' objects to disk: new and changed ones written, deleted ones removed."""
        s3 = _s3_backend()
        for logical, bucket in self.buckets.items():
            try:
                current = {key: obj for key, obj in list(s3.get_bucket(bucket).keys.items())
                           if hasattr(obj, "value")}  # not delete markers
            except RuntimeError:  # changed while listed: the next save catches up
                continue
            for key, obj in current.items():
                if self._saved_objects.get((bucket, key)) == obj.etag:
                    continue
                path = self._object_path(logical, key)
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as f:
                    f.write(obj.value)
                tmp.replace(path)
                self._saved_objects[(bucket, key)] = obj.etag
            for (b, key) in [k for k in self._saved_objects if k[0] == bucket and k[1] not in current]:
                self._object_path(logical, key).unlink(missing_ok=True)
                del self._saved_objects[(b, key)]

    def save(self) -> None:
        self.save_objects()
        backend = _backend()
        with moto_patches.lock:  # no request changes an item while it is read (infra/moto_patches.py)
            dump = json.dumps({logical: [i.to_json()["Attributes"] for i in _items(backend.get_table(name))]
                               for logical, name in self.names.items() if logical not in self.append_only},
                              sort_keys=True)
            fresh = [(logical, item) for logical in self.append_only & set(self.names)
                     for item in _items(backend.get_table(self.names[logical])) if item.hash_key not in self._journaled]
            lines = [json.dumps({"table": logical, "item": item.to_json()["Attributes"]}) + "\n"
                     for logical, item in fresh]
        if dump != self._last_dump:
            tmp = self.tables_file.with_suffix(".tmp")
            with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as f:
                f.write(dump)
            tmp.replace(self.tables_file)
            self._last_dump = dump
        self._journaled.update(item.hash_key for _, item in fresh)
        if lines:
            with os.fdopen(_open_private(self.journal_file, os.O_WRONLY | os.O_APPEND), "a") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
