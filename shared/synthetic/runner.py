"""Where a job runs. Locally (and from the CLI) in the process that accepted it, in a thread with its own event
loop, so the engine's work never holds up the gateway's requests. On AWS each row group is one SQS message
to SyntheticWorkerFunction (functions/synthetic/handler.py), so a job of any length is made of invocations
well inside Lambda's 15 minutes; the worker that writes the last group finishes the job."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

from shared.lake.store import LakeStore
from shared.synthetic import jobs
from shared.synthetic.client import GatewayClient, run_loop
from shared.synthetic.engine import Engine, JobStopped

log = logging.getLogger("switchyard.synthetic")


def mark_running(store: LakeStore, job_id: str) -> None:
    def change(meta: dict[str, Any]) -> None:
        meta["status"] = "running"
        meta["started_at"] = meta.get("started_at") or jobs.now()
        meta["finished_at"] = meta["stopped_reason"] = None

    jobs.update_metadata(jobs.Outputs(store, job_id), change)


async def run(job: jobs.Job, store: LakeStore, client: GatewayClient,
              on_progress: Callable[[Engine], None] | None = None,
              before_finish: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run a job to its end in this process: every group not yet written, then (after `before_finish`, e.g.
    disabling the job's key, so that a finished job has no key left) its card and metadata."""
    await asyncio.to_thread(mark_running, store, job.id)
    stopped = None
    try:
        await jobs.run_groups(job, store, client, on_progress=on_progress)
    except JobStopped as e:
        stopped = str(e)
    except Exception as e:  # noqa: BLE001 (the job records why it ended, whatever it was)
        log.exception("synthetic job %s failed", job.id)
        stopped = f"internal error: {type(e).__name__}: {str(e)[:200]}"
    finally:
        client.close()
    if before_finish:
        await asyncio.to_thread(before_finish)
    return await asyncio.to_thread(jobs.finish, job, store, stopped=stopped)


MAX_LOCAL_JOBS = 2  # jobs running at once in one process (each up to spec.MAX_PARALLEL calls in flight)


class LocalRunner:
    """Jobs running in this process: at most one run of a job at a time, MAX_LOCAL_JOBS in all, with their
    live progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[str, Engine | None] = {}
        self._cancelled: set[str] = set()

    def running(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._engines

    def busy(self) -> bool:
        with self._lock:
            return len(self._engines) >= MAX_LOCAL_JOBS

    def cancel(self, job_id: str) -> bool:
        """Stop a job running here (its engine stops at the next attempt); False when it does not run here."""
        with self._lock:
            if job_id not in self._engines:
                return False
            self._cancelled.add(job_id)
            engine = self._engines[job_id]
        if engine is not None:
            engine.cancel("cancelled")
        return True

    def live(self, job_id: str) -> dict[str, Any] | None:
        """What the run in this process has made so far, groups not yet written included (a resumed job's earlier
        groups are not counted here: they are in `rows_done`)."""
        with self._lock:
            engine = self._engines.get(job_id)
        if engine is None:
            return None
        p = engine.progress
        return {"rows_made": p.rows_done, "attempts_failed": p.rows_failed, "cost_usd": round(p.cost, 10)}

    def start(self, job: jobs.Job, store: LakeStore, client: Callable[[], GatewayClient],
              before_finish: Callable[[], None] | None = None) -> bool:
        """Start the job in a thread; False when it is already running here."""
        with self._lock:
            if job.id in self._engines:
                return False
            self._engines[job.id] = None

        def progress(engine: Engine) -> None:
            with self._lock:
                self._engines[job.id] = engine
                cancelled = job.id in self._cancelled
            if cancelled:
                engine.cancel("cancelled")

        def main() -> None:
            try:
                run_loop(run(job, store, client(), on_progress=progress, before_finish=before_finish))
            except Exception:  # noqa: BLE001
                log.exception("synthetic job %s could not be finished", job.id)
            finally:
                with self._lock:
                    self._engines.pop(job.id, None)
                    self._cancelled.discard(job.id)

        threading.Thread(target=main, name=f"synthetic-{job.id}", daemon=True).start()
        return True


RUNNER = LocalRunner()


def preview_in_thread(job: jobs.Job, base_url: str, key: str) -> dict[str, Any]:
    """Make a job's rows in memory (a preview: nothing written), on a loop of this thread's own."""

    async def main() -> dict[str, Any]:
        client = GatewayClient(base_url, key, job.id)
        engine = Engine(job.plan, client, job_id=job.id, fingerprint=job.fingerprint, layout=job.layout)
        try:
            rows, failures = await engine.preview()
        except JobStopped as e:
            rows, failures = [], [f for fs in engine.open_failures.values() for f in fs]
            stopped: str | None = str(e)
        else:
            stopped = None
        finally:
            client.close()
        return {"job_id": job.id, "fingerprint": job.fingerprint, "rows": jobs.to_jsonable(rows),
                "failures": jobs.to_jsonable(failures), "stopped_reason": stopped, "license": job.gate.to_dict(),
                "usage": {m: vars(u) for m, u in engine.progress.usage.items()}}

    return run_loop(main())
