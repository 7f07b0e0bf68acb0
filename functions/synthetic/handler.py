"""SyntheticWorkerFunction: one SQS message, one row group of a synthetic job (shared/synthetic/fanout.py).

The job's calls go to the gateway's public URL (SWITCHYARD_GATEWAY_URL) with the job's derived key, so they
are metered, routed and healed like any app's. A message whose group fails is reported back to SQS (partial
batch response) to be retried; its last try (SWITCHYARD_SYNTHETIC_MAX_RECEIVES, the queue's maxReceiveCount)
fails the job, and the message goes on to the dead-letter queue. Whenever a job ends, its key is disabled
first (a job seen finished has no key left)."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("switchyard.synthetic")
DEADLINE_MARGIN_SECONDS = 30.0  # left to write a group's failure or the job's end before Lambda stops us


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    from shared.aws.secrets import pepper
    from shared.catalog.source import CatalogSource
    from shared.catalog.store import DynamoCatalogStore
    from shared.config import get_settings
    from shared.keys.tokens import derived_key
    from shared.lake.store import open_store
    from shared.synthetic import fanout
    from shared.synthetic.client import GatewayClient, run_loop

    s = get_settings()
    store = open_store(s.lake_uri or f"s3://{s.data_bucket}")
    known = {m.id for m in CatalogSource(s.config, DynamoCatalogStore(s.catalog_table)).current}
    failures = []
    for record in event.get("Records", []):
        body: dict[str, Any] = {}
        try:
            body = json.loads(record["body"])
            job = fanout.load_job(store, body["job_id"], known)
            token, _ = derived_key(pepper(), f"synthetic-job|{job.id}")
            client = GatewayClient(s.gateway_url or "", token, job.id)
            seconds = context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_SECONDS if context else None
            run_loop(fanout.work(store, job, int(body["group"]), client, seconds,
                                    before_finish=lambda job_id=job.id: _disable_key(job_id)))
        except Exception as e:  # noqa: BLE001 (retried by SQS; its last try fails the job, then it is dead-lettered)
            log.exception("synthetic row group failed: %s", record.get("body", "")[:200])
            failures.append({"itemIdentifier": record["messageId"]})
            _last_try(record, body, e, store, known)
    return {"batchItemFailures": failures}


def _last_try(record: dict[str, Any], body: dict[str, Any], error: Exception, store: Any, known: set[str]) -> None:
    """On a message's last receive, end its job as failed with the reason."""
    from shared.config import get_settings
    from shared.synthetic import fanout

    tries = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
    if tries < get_settings().synthetic_max_receives or not isinstance(body.get("job_id"), str):
        return
    job_id = body["job_id"]
    try:
        fanout.give_up(store, job_id, int(body.get("group", -1)), f"{type(error).__name__}: {error}"[:300], known,
                       before_finish=lambda: _disable_key(job_id))
    except Exception:  # noqa: BLE001 (the job stays running; submitting its spec again resumes it)
        log.exception("could not end synthetic job %s", job_id)


def _disable_key(job_id: str) -> None:
    from shared.aws.secrets import pepper
    from shared.config import get_settings
    from shared.keys.store import DynamoKeyStore
    from shared.keys.tokens import derived_key

    s = get_settings()
    try:
        DynamoKeyStore(s.keys_table, s.counters_table, pepper).update(
            derived_key(pepper(), f"synthetic-job|{job_id}")[1].key_id, disabled=True)
    except Exception:  # noqa: BLE001 (the job's outputs are final either way)
        log.exception("could not disable the key of synthetic job %s", job_id)
