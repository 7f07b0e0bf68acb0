"""The local stack's usage export: the Lambda's code (functions/usage_export/) driven by a poller of moto's
DynamoDB Stream, in a child process of `make run`, a second or two behind the calls.

    python -m infra.lake_export STATE_DIR

It does what Lambda's event source mapping does for the deployed function: reads each shard of the usage
table's stream in order, hands batches (up to BATCH records, waiting at most WINDOW seconds for more) to
`Exporter.write_batch`, and retries a batch from the first record it reports as failed. Unless the last run stopped
cleanly (drained, then wrote `.switchyard/lake-export.clean`), it first reconciles the table with the lake and
writes what is missing (calls metered while no exporter ran, e.g. before a crash);
every COMPACT_SECONDS it compacts the days it wrote to. It stops when its stdin closes (infra/local.py closes it
after the gateway's meter is drained), after exporting what the stream still holds.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BATCH = 1000
WINDOW = 1.0
POLL = 0.25
COMPACT_SECONDS = 300.0
CLEAN_STOP = "lake-export.clean"  # written after a full drain; without it, the next start reconciles first

log = logging.getLogger("switchyard.lake")


def _lambda_record(record: dict[str, Any], source: str) -> dict[str, Any]:
    """A GetRecords record in the shape Lambda delivers it (the ARN added, the time as epoch seconds)."""
    ddb = dict(record["dynamodb"])
    when = ddb.get("ApproximateCreationDateTime")
    if isinstance(when, datetime):
        ddb["ApproximateCreationDateTime"] = when.replace(tzinfo=when.tzinfo or timezone.utc).timestamp()
    return {**record, "dynamodb": ddb, "eventSourceARN": source}


class StreamPoller:
    """One pass over the usage table's stream at a time; `run` loops until `stop` is set, then drains."""

    def __init__(self, table: str, exporter: Any) -> None:
        from shared.aws import client

        self.table, self.exporter = table, exporter
        self.ddb, self.streams = client("dynamodb"), client("dynamodbstreams")
        self.stream_arn: str | None = None
        self.iterators: dict[str, str] = {}
        self.days_written: set[str] = set()
        self.exported = 0

    def _iterator(self, shard: str, after: str | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard}
        if after is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=after)
        return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def poll_once(self) -> int:
        """Read what is new on every shard (up to BATCH records, WINDOW seconds); export it. Returns how many."""
        if self.stream_arn is None:
            self.stream_arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        total = 0
        for shard in shards:
            sid = shard["ShardId"]
            iterator = self.iterators.get(sid) or self._iterator(sid)
            batch: list[dict[str, Any]] = []
            deadline = time.monotonic() + WINDOW
            while len(batch) < BATCH:
                page = self.streams.get_records(ShardIterator=iterator, Limit=BATCH - len(batch))
                iterator = page.get("NextShardIterator") or iterator
                batch.extend(_lambda_record(r, self.stream_arn) for r in page.get("Records", []))
                if not batch or time.monotonic() >= deadline:
                    break
                if not page.get("Records"):
                    time.sleep(POLL)
            if batch:
                failures = self.exporter.write_batch(batch)["batchItemFailures"]
                if failures:  # retried from the reported record, as Lambda would
                    iterator = self._iterator(sid, after=failures[0]["itemIdentifier"])
                    self.iterators[sid] = iterator
                    time.sleep(1.0)
                    continue
                total += len(batch)
                self.days_written.update(_days(batch))
            self.iterators[sid] = iterator
        self.exported += total
        return total

    def compact(self) -> None:
        from shared.lake.compact import compact_day

        for day in sorted(self.days_written):
            try:
                compact_day(self.exporter.store, day)
            except Exception as e:  # next time
                log.warning("usage lake: compaction of %s failed: %s", day, e)
        self.days_written.clear()


def _days(batch: list[dict[str, Any]]) -> set[str]:
    days = set()
    for r in batch:
        created = r["dynamodb"].get("NewImage", {}).get("created_at", {}).get("N")
        if created:
            days.add(datetime.fromtimestamp(float(created), timezone.utc).strftime("%Y-%m-%d"))
    return days


def catch_up(usage_table: str, exporter: Any) -> int:
    """Records in the table that the lake lacks (metered while no exporter ran), written now; returns how many."""
    from shared.lake.reconcile import reconcile, table_records

    reports = reconcile(table_records(usage_table), exporter, repair=True)
    return sum(r.repaired for r in reports)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="switchyard: %(message)s")
    log.setLevel(logging.INFO)
    marker = Path(sys.argv[1]) / CLEAN_STOP if len(sys.argv) > 1 else None
    from shared.config import get_settings
    from shared.lake.export import default_exporter

    settings = get_settings()
    exporter = default_exporter()
    poller = StreamPoller(settings.usage_table, exporter)
    for sig in (signal.SIGTERM, signal.SIGINT):  # the gateway's to handle: it stops us once its meter is drained
        signal.signal(sig, signal.SIG_IGN)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), name="stop-on-stdin-eof", daemon=True).start()
    clean = marker is not None and marker.exists()
    if marker is not None:
        marker.unlink(missing_ok=True)
    try:
        repaired = 0 if clean else catch_up(settings.usage_table, exporter)
        if repaired:
            log.info("usage lake: %d records metered while no exporter ran were written", repaired)
    except Exception as e:
        log.warning("usage lake: catch-up failed (%s); the next start tries again", e)
    print("ready", flush=True)
    last_compaction = time.monotonic()
    while not stop.is_set():
        try:
            if not poller.poll_once():
                stop.wait(POLL)
        except Exception as e:
            log.warning("usage lake: export failed (%s); retrying", e)
            stop.wait(1.0)
        if time.monotonic() - last_compaction > COMPACT_SECONDS:
            poller.compact()
            last_compaction = time.monotonic()
    for _ in range(100):  # drain: the meter has written its last records
        try:
            if not poller.poll_once():
                break
        except Exception as e:
            log.warning("usage lake: export at stop failed (%s)", e)
            return
    poller.compact()
    if marker is not None:  # everything metered is in the lake: the next start need not reconcile
        marker.write_text(datetime.now(timezone.utc).isoformat())


if __name__ == "__main__":
    main()
