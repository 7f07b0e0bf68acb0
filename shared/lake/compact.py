"""Compaction: a day's parts into one `compacted.parquet`, idempotently.

Read every live object of the day (the compacted file too), keep one row per id, write the result as the
day's compacted file naming the parts it replaced (with their ETags), then delete those parts. Readers skip
replaced parts from the moment the new compacted file exists (parts.live_files), so a day reads the same
rows throughout; a compaction that stops before deleting leaves garbage, never duplicates, and the next run
collects it. A part rewritten meanwhile (a late retry of its batch) has a new ETag: it stays live and is
merged next time (right away: compaction runs again when a part it merged changed under it). Running compaction again
on a compacted day changes nothing.

Two compactions of one day at once should not happen (the maintenance function has a reserved concurrency of
1; locally only the exporter compacts). If they do, the compacted file is written conditionally (S3's If-Match
/ If-None-Match on the ETag listed), so the later writer finds it changed and drops its own; and a part is
deleted only when the compacted file in place names it. Nothing merged by one is lost by the other.

Memory: the day is held once as Arrow (~150 bytes a row: a few million rows per GB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared.lake import parts
from shared.lake.store import ABSENT, ConflictError, LakeStore


@dataclass(frozen=True, slots=True)
class Compaction:
    day: str
    inputs: int  # live objects read (the previous compacted file included)
    rows: int
    removed: int  # objects deleted (replaced parts)


def compact_day(store: LakeStore, day: str) -> Compaction:
    """Compact one day; repeated (at most 3 times) while a part changed under it (a late retry rewrote it)."""
    result, merged = _compact_once(store, day)
    for _ in range(2):
        if not any(merged.get(o.key) not in (None, o.etag) for o in store.list(parts.day_prefix(day))):
            break
        result, merged = _compact_once(store, day)
    return result


def _replaced_now(store: LakeStore, key: str) -> dict[str, str]:
    fs, root = store.arrow()
    try:
        with fs.open_input_file(f"{root}/{key}") as f:
            return parts.replaced_by(f)
    except (FileNotFoundError, OSError):
        return {}


def _compact_once(store: LakeStore, day: str) -> tuple[Compaction, dict[str, str]]:
    key = parts.day_prefix(day) + parts.COMPACTED
    live = parts.live_files(store, day)
    fresh = [o for o in live if o.key != key]
    stale = [o for o in store.list(parts.day_prefix(day))
             if o.key.endswith(".parquet") and o.key != key and o not in live]
    rows, replaces = 0, {}
    if fresh:
        table = parts.distinct(parts.read_objects(store, live))
        # what readers must skip: the parts merged now, and those an earlier run merged but did not delete
        replaces = {o.key: o.etag for o in fresh + stale}
        previous = next((o.etag for o in live if o.key == key), ABSENT)
        try:
            store.put(key, parts.parquet_bytes(table, {parts.REPLACES_KEY: json.dumps(replaces, sort_keys=True)
                                                        .encode()}), expect=previous)
        except ConflictError:  # another compaction wrote first: its file stands, ours is dropped
            return Compaction(day, len(live), 0, 0), {}
        rows = table.num_rows
    removed = 0
    # Delete only what the compacted file that is there now names, with the ETag it names: if another
    # compaction wrote after us, parts it did not merge stay live (and are merged next time), never lost.
    current = _replaced_now(store, key) if fresh or stale else {}
    for o in fresh + stale:
        if current.get(o.key) != o.etag:
            continue
        try:
            store.delete(o)
            removed += 1
        except FileExistsError:  # rewritten since it was read: live again, merged next time
            continue
    return Compaction(day, len(live), rows, removed), replaces
