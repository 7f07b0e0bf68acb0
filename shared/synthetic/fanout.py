"""Jobs on AWS: one SQS message a row group, each made by one invocation of SyntheticWorkerFunction.

Why this and not a Prefect work pool: a row group is the unit the engine already checkpoints, so a message is
a unit of work that is idempotent (a group written is skipped; a group retried makes the same rows) and
bounded (`buffer_size` rows, sized to finish well inside Lambda's 15 minutes); SQS gives retries and a
dead-letter queue, and the job needs no server of its own. The worker that writes the last group finishes
the job (metadata and card), as does one that finds the failure budget spent."""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.lake.store import LakeStore
from shared.synthetic import jobs

log = logging.getLogger("switchyard.synthetic")


def enqueue(queue_url: str, job: jobs.Job, store: LakeStore) -> int:
    """Queue every row group not yet written; the job is then running. Returns the number queued."""
    from shared.aws import client
    from shared.synthetic.runner import mark_running

    todo = sorted(set(range(job.plan.groups)) - jobs.Outputs(store, job.id).written_groups())
    mark_running(store, job.id)
    sqs = client("sqs")
    for start in range(0, len(todo), 10):
        entries = [{"Id": str(g), "MessageBody": json.dumps({"job_id": job.id, "group": g})}
                   for g in todo[start:start + 10]]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or []
        if failed:
            raise RuntimeError(f"SQS refused {len(failed)} row groups of job {job.id}")
    if not todo:
        jobs.finish(job, store)
    return len(todo)


def load_job(store: LakeStore, job_id: str, known_models: set[str] | None) -> jobs.Job:
    config = jobs.Outputs(store, job_id).get_json("config.json")
    if config is None:
        raise LookupError(f"synthetic job {job_id} has no config.json")
    job = jobs.prepare(config["spec"], reader=jobs.SeedReader(store), known_models=known_models)
    if job.id != job_id:
        raise LookupError(f"synthetic job {job_id}: its config now makes {job.id} (the seed changed?)")
    return job


async def work(store: LakeStore, job: jobs.Job, group: int, client: Any) -> dict[str, Any] | None:
    """Make one row group; finish the job when it was the last one, or when the job cannot complete."""
    outputs = jobs.Outputs(store, job.id)
    meta = outputs.get_json("metadata.json") or {}
    if meta.get("status") in ("completed", "failed"):
        return None  # finished (a duplicate message, or the job stopped meanwhile)
    try:
        await jobs.run_groups(job, store, client, groups=[group])
    except jobs.JobStopped as e:
        return jobs.finish(job, store, stopped=str(e))
    finally:
        client.close()
    if len(outputs.written_groups()) == job.plan.groups:
        return jobs.finish(job, store)
    return None
