"""Persistence of the local stack's tables under .switchyard/, so keys and usage survive restarts.

Small tables (keys, counters) are written whole when they change; the usage table only ever gains records,
so new records are appended to a journal instead of rewriting it. Items are read from and restored into the
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


class LocalState:
    def __init__(self, state_dir: Path, names: dict[str, str], append_only: frozenset[str]) -> None:
        self.tables_file = state_dir / TABLES_FILE
        self.journal_file = state_dir / JOURNAL_FILE
        self.names = {logical: name for logical, name in names.items() if logical.endswith("Table")}
        self.append_only = append_only
        self._journaled: set[Any] = set()
        self._last_dump = ""
        for path in (self.tables_file, self.journal_file):  # written 0644 by earlier versions
            if path.exists():
                path.chmod(_PRIVATE)

    def restore(self) -> int:
        """Load saved items into the (empty) tables; returns how many."""
        backend, count = _backend(), 0
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

    def save(self) -> None:
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
