"""Jobs on AWS: one SQS message a row group, each made by one invocation of SyntheticWorkerFunction.

Why this and not a Prefect work pool: a row group is the unit the engine already checkpoints, so a message is
a unit of work that is idempotent (a group written is skipped; a group retried makes the same rows) and
bounded (`buffer_size` rows, sized to finish well inside Lambda's 15 minutes); SQS gives retries and a
dead-letter queue, and the job needs no server of its own. The worker that writes the last group finishes
the job (metadata and card), as does one that finds the failure budget spent, and one whose group failed its
last try (`give_up`): a job never stays `running` once nothing is left to run it."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

from shared.lake.store import LakeStore
from shared.synthetic import jobs

log = logging.getLogger("switchyard.synthetic")
ENDED = ("completed", "failed")


class GroupTimedOut(Exception):
    """A row group was not made in the time the invocation had left: retried (fewer rows a group help)."""


def enqueue(queue_url: str, job: jobs.Job, store: LakeStore,
            before_finish: Callable[[], None] | None = None) -> int:
    """Queue every row group not yet written; the job is then running (or, with none left, finished after
    `before_finish`). Returns the number queued."""
    from shared.aws.sqs import send_all
    from shared.synthetic.runner import mark_running

    todo = sorted(set(range(job.plan.groups)) - jobs.Outputs(store, job.id).written_groups())
    mark_running(store, job.id)  # before the first message: a worker may finish the job before we return
    send_all(queue_url, [json.dumps({"job_id": job.id, "group": g}) for g in todo])
    if not todo:
        _finish(job, store, before_finish)
    return len(todo)


def load_job(store: LakeStore, job_id: str, known_models: set[str] | None) -> jobs.Job:
    config = jobs.Outputs(store, job_id).get_json("config.json")
    if config is None:
        raise LookupError(f"synthetic job {job_id} has no config.json")
    job = jobs.prepare(config["spec"], reader=jobs.SeedReader(store), known_models=known_models)
    if job.id != job_id:
        raise LookupError(f"synthetic job {job_id}: its config now makes {job.id} (the seed changed?)")
    return job


def _ended(outputs: jobs.Outputs) -> bool:
    return (outputs.get_json("metadata.json") or {}).get("status") in ENDED


def _finish(job: jobs.Job, store: LakeStore, before_finish: Callable[[], None] | None,
            stopped: str | None = None) -> dict[str, Any]:
    if before_finish:
        before_finish()  # e.g. disable the job's key: a job seen finished has no key left
    return jobs.finish(job, store, stopped=stopped)


async def work(store: LakeStore, job: jobs.Job, group: int, client: Any, seconds: float | None = None,
               before_finish: Callable[[], None] | None = None) -> dict[str, Any] | None:
    """Make one row group (in at most `seconds`); finish the job (after `before_finish`) when it was the last
    one, or when the job cannot complete. Returns the job's metadata when this call ended it, else None."""
    outputs = jobs.Outputs(store, job.id)
    if _ended(outputs):
        client.close()
        return None  # finished (a duplicate message, or the job stopped meanwhile)
    try:
        await asyncio.wait_for(jobs.run_groups(job, store, client, groups=[group]), seconds)
    except jobs.JobStopped as e:
        if _ended(outputs):  # another worker ended the job first (its key is disabled since): its reason stands
            return None
        return _finish(job, store, before_finish, stopped=str(e))
    except TimeoutError:
        if seconds is None:
            raise
        raise GroupTimedOut(f"row group {group} was not made in the {seconds:.0f} s the function had left "
                            f"(buffer_size = {job.spec.buffer_size} rows a group)") from None
    finally:
        client.close()
    if len(outputs.written_groups()) == job.plan.groups and not _ended(outputs):  # (cancelled meanwhile: it stays)
        return _finish(job, store, before_finish)
    return None


def give_up(store: LakeStore, job_id: str, group: int, reason: str, known_models: set[str] | None,
            before_finish: Callable[[], None] | None = None) -> dict[str, Any] | None:
    """A row group failed its last try: the job ends as failed, saying why (submitting its spec again resumes
    it from the groups written). Returns the metadata, or None when the job had ended already."""
    outputs = jobs.Outputs(store, job_id)
    if outputs.get_json("metadata.json") is None or _ended(outputs):
        return None
    if before_finish:
        before_finish()
    stopped = f"row group {group} failed its last try: {reason}"
    try:
        job = load_job(store, job_id, known_models)
    except Exception:  # noqa: BLE001 (its config is gone or no longer passes the gate: the status alone)
        log.exception("synthetic job %s could not be loaded to end it", job_id)

        def change(meta: dict[str, Any]) -> None:
            meta.update(status="failed", stopped_reason=stopped, finished_at=jobs.now())

        return jobs.update_metadata(outputs, change)
    return jobs.finish(job, store, stopped=stopped)
