"""SyntheticWorkerFunction: one SQS message, one row group of a synthetic job (shared/synthetic/fanout.py).

The job's calls go to the gateway's public URL (SWITCHYARD_GATEWAY_URL) with the job's derived key, so they
are metered, routed and healed like any app's. A message whose group fails is reported back to SQS (partial
batch response) to be retried, and after the queue's maxReceiveCount it goes to the dead-letter queue."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

log = logging.getLogger("switchyard.synthetic")


def handler(event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
    from shared.aws.secrets import pepper
    from shared.catalog.source import CatalogSource
    from shared.catalog.store import DynamoCatalogStore
    from shared.config import get_settings
    from shared.keys.tokens import derived_key
    from shared.lake.store import open_store
    from shared.synthetic import fanout
    from shared.synthetic.client import GatewayClient

    s = get_settings()
    store = open_store(s.lake_uri or f"s3://{s.data_bucket}")
    known = {m.id for m in CatalogSource(s.config, DynamoCatalogStore(s.catalog_table)).current}
    failures = []
    for record in event.get("Records", []):
        try:
            body = json.loads(record["body"])
            job = fanout.load_job(store, body["job_id"], known)
            token, parts = derived_key(pepper(), f"synthetic-job|{job.id}")
            client = GatewayClient(s.gateway_url or "", token, job.id)
            if asyncio.run(fanout.work(store, job, int(body["group"]), client)) is not None:  # the job ended
                from shared.keys.store import DynamoKeyStore

                DynamoKeyStore(s.keys_table, s.counters_table, pepper).update(parts.key_id, disabled=True)
        except Exception:  # noqa: BLE001 (retried by SQS, then dead-lettered)
            log.exception("synthetic row group failed: %s", record.get("body", "")[:200])
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
