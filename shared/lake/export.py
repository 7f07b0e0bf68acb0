"""Usage records into the lake, from DynamoDB Stream batches: exactly once, whatever is redelivered.

A batch's rows are grouped by UTC day and written as one object per day, named after the batch's first record
(its stream, event id and sequence number). Lambda retries a batch from its first unfinished record: we report
the batch's first record when any of its days fails to write, so a retry starts where the batch started, and
rewrites the same objects (with the same rows, or more of them) instead of adding copies. Batches that arrive
again after they were written, or out of order, therefore change nothing. (Rows are also unique by id in
every read and compaction, so even a part written twice under different names would count once.)

Only INSERTs are exported: usage records are written once and never updated (a REMOVE is the table's TTL,
which the lake outlives). A record that cannot become a row (no id or time) is set aside under
`usage-rejects/` by its key and sequence number, without its content, so it cannot hold the others back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Callable

from shared.aws.codec import plain
from shared.lake import parts, schema
from shared.lake.store import LakeStore

log = logging.getLogger("switchyard.lake")
REJECTS = "usage-rejects/"


def batch_name(records: list[dict[str, Any]]) -> str:
    """The batch's identity: its stream and its first record. A retry from the same record has the same name."""
    first = records[0]
    source = first.get("eventSourceARN", "")
    seq = str(first.get("dynamodb", {}).get("SequenceNumber", ""))
    digest = hashlib.sha256(f"{source}\n{first.get('eventID', '')}\n{seq}".encode()).hexdigest()[:16]
    return f"part-{seq[-24:] or '0'}-{digest}"


class Exporter:
    def __init__(self, store: LakeStore, hash_ip: schema.IpHasher) -> None:
        self.store, self.hash_ip = store, hash_ip

    def rows_of(self, records: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        """({day: rows}, rejects) of a batch's INSERT records."""
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        rejects = []
        for r in records:
            if r.get("eventName") != "INSERT":
                continue
            ddb = r.get("dynamodb") or {}
            try:
                row = schema.row(plain(ddb.get("NewImage") or {}), self.hash_ip)
            except (ValueError, TypeError, KeyError, OverflowError) as e:
                rejects.append({"keys": ddb.get("Keys"), "sequence_number": ddb.get("SequenceNumber"),
                                "event_id": r.get("eventID"), "error": str(e)[:200]})
                continue
            by_day[row["created_at"].strftime("%Y-%m-%d")].append(row)
        return by_day, rejects

    def write_batch(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Lambda's answer for a stream batch: `{"batchItemFailures": [...]}` (empty when all was written)."""
        if not records:
            return {"batchItemFailures": []}
        name = batch_name(records)
        by_day, rejects = self.rows_of(records)
        try:
            for day, rows in sorted(by_day.items()):
                self.store.put(parts.day_prefix(day) + name + ".parquet", parts.parquet_bytes(schema.table(rows)))
            if rejects:
                log.error("usage export: %d records could not become rows: %s", len(rejects),
                          [x["keys"] for x in rejects][:10])
                day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
                self.store.put(f"{REJECTS}dt={day}/{name}.json", json.dumps(rejects, default=str).encode())
        except Exception:
            log.exception("usage export: batch %s not written; it will be retried whole", name)
            first = records[0].get("dynamodb", {}).get("SequenceNumber")
            return {"batchItemFailures": [{"itemIdentifier": first}]}
        return {"batchItemFailures": []}

    def write_rows(self, records: list[dict[str, Any]], tag: str) -> list[str]:
        """Records (plain dicts, as the table holds them) written under names made from their ids and `tag`:
        the same records give the same objects. Returns the keys written."""
        by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            row = schema.row(record, self.hash_ip)
            by_day[row["created_at"].strftime("%Y-%m-%d")].append(row)
        keys = []
        for day, rows in sorted(by_day.items()):
            digest = hashlib.sha256("\n".join(sorted(r["id"] for r in rows)).encode()).hexdigest()[:16]
            key = f"{parts.day_prefix(day)}{tag}-{digest}.parquet"
            self.store.put(key, parts.parquet_bytes(schema.table(rows)))
            keys.append(key)
        return keys


def default_exporter(pepper: Callable[[], bytes] | None = None) -> Exporter:
    from shared.aws.secrets import pepper as configured_pepper
    from shared.lake.store import default_store

    return Exporter(default_store(), schema.ip_hasher((pepper or configured_pepper)()))
