"""Synthetic data jobs (management key: `synthetic:read` to look, `synthetic:write` to start, cancel, review
or preview; start, cancel and review are audited): start one, follow it, review it; preview a spec; the templates.

A job is checked whole before anything runs (the spec, its column DAG, the license gate, the seed), then
runs in this process (the local stack) or, on AWS (SWITCHYARD_SYNTHETIC_QUEUE_URL set), as one SQS message a
row group to SyntheticWorkerFunction. Its calls go through this gateway with a key derived for the job, as the
app `switchyard-synthetic`: metered, routed and healed like any call. These routes need the `synthetic` and
`lake` extras (501 without them)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.gateway.deps import audit, scoped
from functions.gateway.state import gateway
from shared.errors import BadRequestError, NotServedHereError
from shared.keys import ApiKey
from shared.keys import scopes as sc

router = APIRouter(prefix="/api/v1/synthetic", tags=["synthetic"])
Reader = Annotated[ApiKey, Depends(scoped("synthetic:read"))]
Writer = Annotated[ApiKey, Depends(scoped("synthetic:write"))]
log = logging.getLogger("switchyard.synthetic")


@lru_cache(maxsize=1)
def _modules() -> Any:
    try:
        import jinja2  # noqa: F401
        import pyarrow  # noqa: F401
        from shared.synthetic import jobs, runner, templates
    except ImportError as e:
        raise NotServedHereError("Synthetic jobs are served by the synthetic function (it has pyarrow and Jinja); "
                                 "this one has not", metadata={"missing": e.name}) from None
    return jobs, runner, templates


def _store() -> Any:
    from shared.lake.store import open_store

    s = gateway().settings
    return open_store(s.lake_uri or f"s3://{s.data_bucket}")


def _gateway_url() -> str:
    s = gateway().settings
    return s.gateway_url or f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/api/v1"


MAX_SPEC_BYTES = 1024 * 1024  # a job spec; YAML is parsed in pure Python, so it is parsed off the event loop


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_SPEC_BYTES:
        from shared.errors import PayloadTooLargeError

        raise PayloadTooLargeError(f"A job spec is at most {MAX_SPEC_BYTES} bytes", metadata={"limit": MAX_SPEC_BYTES})
    kind = request.headers.get("content-type", "")

    def parse() -> Any:
        if "yaml" in kind:
            from shared.synthetic.spec import yaml_data

            return yaml_data(raw)
        return orjson.loads(raw or b"{}")

    try:
        data = await asyncio.to_thread(parse) if "yaml" in kind else parse()
    except Exception as e:  # noqa: BLE001 (any parse failure is the client's)
        raise BadRequestError("The body is not valid JSON (or YAML with Content-Type: application/yaml)"
                              + (": a job spec may not use YAML aliases" if "aliases" in str(e) else "")) from None
    if not isinstance(data, dict):
        raise BadRequestError("The body is a JSON object")
    return data


class Submission(BaseModel):
    """`{"spec": {...}}` (a job spec, Data Designer's config format accepted) or `{"template": name}`, with
    optional overrides of the spec's name, num_records and seed."""

    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] | None = None
    template: str | None = None
    name: str | None = None
    num_records: Annotated[int, Field(ge=1)] | None = None
    seed: Annotated[int, Field(ge=0)] | None = None


def _spec_data(data: dict[str, Any], templates: Any) -> dict[str, Any]:
    if "columns" in data or "data_designer" in data:  # a bare spec
        data = {"spec": data}
    try:
        sub = Submission.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequestError(f"{where}: {first['msg']}", metadata={"field": where}) from None
    if (sub.spec is None) == (sub.template is None):
        raise BadRequestError("Give either spec or template", metadata={"field": "spec"})
    spec = dict(sub.spec) if sub.spec is not None else templates.load(sub.template)
    from shared.synthetic.spec import unwrap

    spec = unwrap(spec)
    for name in ("name", "num_records", "seed"):
        if getattr(sub, name) is not None:
            spec[name] = getattr(sub, name)
    limit = gateway().settings.synthetic_max_records
    if isinstance(spec.get("num_records"), int) and spec["num_records"] > limit:
        raise BadRequestError(f"num_records is at most {limit} here", metadata={"field": "num_records"})
    return spec


def _prepare(spec: dict[str, Any], jobs: Any) -> Any:
    known = {m.id for m in gateway().catalog}
    return jobs.prepare(spec, reader=jobs.SeedReader(_store(), bucket=gateway().settings.data_bucket),
                        known_models=known)


def _job_key(job_id: str, limit: float | None = None, created_by: str | None = None) -> str:
    """The job's inference key (derived from the pepper: never stored), its record made or re-enabled, with
    the job's `budget.max_cost_usd` as its spend limit (the gateway's reservations then hold the job to it)."""
    from shared.keys.tokens import derived_key

    keys = gateway().keys
    token, parts = derived_key(keys.pepper(), f"synthetic-job|{job_id}")
    existing = keys.get(parts.key_id)
    if existing is None:
        try:
            keys.create(f"synthetic:{job_id}"[:100], token=(token, parts), tags=("synthetic",), limit=limit,
                        created_by=created_by)
        except FileExistsError:  # made meanwhile by a request for the same job
            pass
    elif existing.disabled:
        keys.update(parts.key_id, disabled=False)
    return token


def _disable_key(job_id: str) -> None:
    from shared.keys.tokens import derived_key

    keys = gateway().keys
    _, parts = derived_key(keys.pepper(), f"synthetic-job|{job_id}")
    try:
        keys.update(parts.key_id, disabled=True)
        gateway().auth.forget(parts.key_id)  # refused here at once (other processes: within the key cache)
    except Exception:  # noqa: BLE001
        log.warning("could not disable the key of synthetic job %s", job_id)


_starting = threading.Lock()  # one submission at a time starts a job in this process


def _start(spec: dict[str, Any], manager: ApiKey) -> tuple[int, dict[str, Any]]:
    jobs, runner, templates = _modules()
    job = _prepare(spec, jobs)
    # The job calls models with a key of its own, limited to its budget: a manager with a spend limit gives
    # it no more than that limit (and a job without a budget not at all), as it would any key.
    sc.check_grant(manager, management=False, scopes=None, limit=job.spec.budget.max_cost_usd)
    with _starting:
        return _start_checked(job, jobs, runner, manager)


def _start_checked(job: Any, jobs: Any, runner: Any, manager: ApiKey) -> tuple[int, dict[str, Any]]:
    from shared.lake.store import ABSENT, ConflictError

    store = _store()
    outputs = jobs.Outputs(store, job.id)
    meta = outputs.get_json("metadata.json")
    queued = bool(gateway().settings.synthetic_queue_url)
    if meta is not None and (meta["status"] == "completed" or runner.RUNNER.running(job.id)
                             or (queued and meta["status"] in ("queued", "running"))):
        return 200, jobs.status(store, job.id)  # the same job, made here or by the workers: nothing to do
    if not gateway().settings.synthetic_queue_url and runner.RUNNER.busy():
        from shared.errors import RateLimitedError

        raise RateLimitedError(f"{runner.MAX_LOCAL_JOBS} synthetic jobs are running in this process; try again "
                               "when one ends", metadata={"running": runner.MAX_LOCAL_JOBS},
                               headers={"Retry-After": "30"})
    if meta is None:
        queue = gateway().settings.synthetic_queue_url
        outputs.put_json("config.json", jobs.config_document(job))
        try:  # the first submission of this job anywhere (another instance may be making it too)
            store.put(outputs.prefix + "metadata.json", jobs.dumps(jobs.new_metadata(job, execution="sqs" if queue
                                                                                     else "local")), expect=ABSENT)
        except ConflictError:
            return 200, jobs.status(store, job.id)
        store.put(f"{jobs.PREFIX}_jobs/{job.id}", b"")
    else:  # a resumption: the spec as now submitted (its budget may have grown)
        outputs.put_json("config.json", jobs.config_document(job))
        jobs.update_metadata(outputs, lambda m: m.update(budget=jobs.new_metadata(job, execution="")["budget"]))
    token = _job_key(job.id, job.spec.budget.max_cost_usd, manager.key_id)
    queue = gateway().settings.synthetic_queue_url
    if queue:
        from shared.synthetic.fanout import enqueue

        enqueue(queue, job, store)
    else:
        from shared.synthetic.client import GatewayClient

        runner.mark_running(store, job.id)  # before the 202: a resumed job must not still read `failed`
        started = runner.RUNNER.start(job, store, lambda: GatewayClient(_gateway_url(), token, job.id),
                                      before_finish=lambda: _disable_key(job.id))
        if not started:
            return 200, jobs.status(store, job.id)  # running here already
    return 202, jobs.status(store, job.id)


@router.post("/jobs", summary="Start a synthetic data job (management key)", status_code=202)
async def create_job(request: Request, manager: Writer) -> Any:
    """202 with the job (its id, status and outputs); 200 when the same spec is already running or done
    (a job's id is its spec's fingerprint: a failed or interrupted job resumes). 400 for a spec that does not
    hold together, 403 `license_refused` listing every model and seed that is not license-safe."""
    from starlette.responses import JSONResponse

    _, _, templates = _modules()
    spec = _spec_data(await _body(request), templates)
    status, body = await asyncio.to_thread(_start, spec, manager)
    if status == 202:  # 200: the same spec, already running or done: nothing changed
        await audit(request, manager, "synthetic.job.create", str(body.get("job_id")),
                    after={k: body[k] for k in ("job_id", "name", "status", "fingerprint", "execution") if k in body})
    return JSONResponse(body, status_code=status)


@router.get("/jobs", summary="Synthetic jobs, newest first (management key)")
async def list_jobs(_: Reader) -> dict:
    jobs, runner, _ = _modules()

    def read() -> list[dict[str, Any]]:
        store = _store()
        ids = [i.key.rsplit("/", 1)[1] for i in store.list(f"{jobs.PREFIX}_jobs/")]
        found = []
        for job_id in ids:
            try:
                found.append(_job_status(store, job_id, jobs, runner))
            except Exception:  # noqa: BLE001 (a job being written)
                continue
        return sorted(found, key=lambda m: m["created_at"], reverse=True)

    return {"data": await asyncio.to_thread(read)}


@router.get("/jobs/{job_id}", summary="A synthetic job's progress and outputs (management key)")
async def get_job(job_id: str, _: Reader) -> dict:
    jobs, runner, _ = _modules()
    return await asyncio.to_thread(_job_status, _store(), job_id, jobs, runner)


def _job_status(store: Any, job_id: str, jobs: Any, runner: Any) -> dict[str, Any]:
    """A job's status with a local run's live progress. A local job that no process runs any more (the stack
    stopped mid-job) is `interrupted`: submitting its spec again resumes it. Whether it runs is asked first,
    so that a run ending meanwhile has written its end before the metadata is read."""
    running = runner.RUNNER.running(job_id)
    meta = jobs.status(store, job_id)
    live = runner.RUNNER.live(job_id) if running else None
    if live:
        meta["live"] = live
    elif not running and meta["status"] in ("queued", "running") and meta.get("execution") == "local":
        meta["status"] = "interrupted"
    return meta


@router.get("/jobs/{job_id}/rows", summary="A page of a job's accepted rows, or of its failures (management key)")
async def job_rows(job_id: str, _: Reader,
                   offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                   failures: bool = False) -> dict:
    """Rows in row order (`failures=true`: failed attempts), as JSON: for a look without reading the bucket."""
    jobs, _, _ = _modules()

    def read() -> dict[str, Any]:
        store = _store()
        jobs.status(store, job_id)  # 404 for an unknown job
        table = jobs.read_rows(store, job_id, folder="failures" if failures else "data")
        page = table.slice(offset, limit).to_pylist() if table.num_rows else []
        return {"data": jobs.to_jsonable(page), "total": table.num_rows, "offset": offset}

    return await asyncio.to_thread(read)


@router.get("/jobs/{job_id}/card", summary="A job's dataset card, README.md (management key)")
async def job_card(job_id: str, _: Reader) -> Any:
    from starlette.responses import Response as Plain

    jobs, _, _ = _modules()

    def read() -> bytes:
        store = _store()
        meta = jobs.status(store, job_id)
        try:
            return store.get(f"{jobs.PREFIX}{meta['job_id']}/README.md")
        except FileNotFoundError:
            from shared.errors import NotFoundError

            raise NotFoundError("The job has no card yet: it is written when the job ends",
                                metadata={"job_id": job_id}) from None

    return Plain(await asyncio.to_thread(read), media_type="text/markdown; charset=utf-8")


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewed: bool = True
    reviewer: Annotated[str, Field(min_length=1, max_length=200)]
    notes: Annotated[str, Field(max_length=5000)] | None = None


@router.post("/jobs/{job_id}/review", summary="Set a job's human-review block (management key)")
async def review_job(request: Request, job_id: str, body: ReviewRequest, manager: Writer) -> dict:
    jobs, runner, _ = _modules()
    if re.search(r"[\r\n\x00]", body.reviewer):
        raise BadRequestError("reviewer is one line", metadata={"field": "reviewer"})

    def set_review() -> tuple[Any, dict[str, Any]]:
        store = _store()
        meta = _job_status(store, job_id, jobs, runner)
        if meta["status"] in ("queued", "running"):
            from shared.errors import ConflictError

            raise ConflictError("A job is reviewed once it has ended", metadata={"job_id": job_id})
        review = jobs.review(store, job_id, reviewed=body.reviewed, reviewer=body.reviewer, notes=body.notes)
        return meta.get("review"), review

    before, result = await asyncio.to_thread(set_review)
    await audit(request, manager, "synthetic.job.review", job_id, before={"review": before},
                after={"review": result.get("review", body.model_dump())})
    return result


@router.post("/jobs/{job_id}/cancel", summary="Stop a running synthetic job (management key)")
async def cancel_job(request: Request, job_id: str, manager: Writer) -> dict:
    """The job stops: calls in flight end, the groups written stay, the job ends `failed` with
    `stopped_reason` "cancelled" (submitting its spec again resumes it). 409 for a job that has ended."""
    jobs, runner, _ = _modules()

    def cancel() -> tuple[str, dict[str, Any]]:
        store = _store()
        meta = _job_status(store, job_id, jobs, runner)
        if meta["status"] not in ("queued", "running"):
            from shared.errors import ConflictError

            raise ConflictError(f"The job has ended ({meta['status']})", metadata={"job_id": job_id})
        if not runner.RUNNER.cancel(job_id):  # AWS: the workers see it before their next group
            jobs.update_metadata(jobs.Outputs(store, job_id),
                                 lambda m: m.update(status="failed", stopped_reason="cancelled",
                                                    finished_at=jobs.now()))
        return meta["status"], {"job_id": job_id, "cancelled": True}

    before, result = await asyncio.to_thread(cancel)
    await audit(request, manager, "synthetic.job.cancel", job_id, before={"status": before},
                after={"status": "failed", "stopped_reason": "cancelled"})
    return result


@router.post("/preview", summary="Make a few rows of a spec, in memory (management key)")
async def preview(request: Request, _: Writer) -> dict:
    """Up to 50 rows (default 5), nothing written: the same checks as a job, the same calls through the
    gateway (metered as the app switchyard-synthetic)."""
    jobs, runner, templates = _modules()
    data = await _body(request)
    spec = _spec_data(data, templates)
    n = data.get("num_records")  # asked for; else the spec's own, at most 5
    if n is None:
        own = spec.get("num_records")
        n = min(own, 5) if isinstance(own, int) and not isinstance(own, bool) and own >= 1 else 5
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= jobs.PREVIEW_MAX:
        raise BadRequestError(f"a preview is 1 to {jobs.PREVIEW_MAX} rows", metadata={"field": "num_records"})
    spec = {**spec, "num_records": n, "buffer_size": n}
    if not _previews.acquire(blocking=False):
        from shared.errors import RateLimitedError

        raise RateLimitedError(f"{PREVIEWS_AT_ONCE} previews are running; try again shortly",
                               headers={"Retry-After": "5"})
    try:
        job = await asyncio.to_thread(_prepare, spec, jobs)
        token = await asyncio.to_thread(_job_key, "preview")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_preview_pool, runner.preview_in_thread, job, _gateway_url(), token)
    finally:
        _previews.release()


PREVIEWS_AT_ONCE = 2  # previews run on threads of their own, not the pool the other routes' storage calls share
_previews = threading.BoundedSemaphore(PREVIEWS_AT_ONCE)
_preview_pool = ThreadPoolExecutor(max_workers=PREVIEWS_AT_ONCE, thread_name_prefix="synthetic-preview")


@router.get("/templates", summary="The built-in job templates")
async def list_templates(_: Reader) -> dict:
    _, _, templates = _modules()
    return {"data": [{"name": n, "description": templates.load(n).get("description", "")} for n in templates.names()]}


@router.get("/templates/{name}", summary="A built-in job template's spec")
async def get_template(name: str, _: Reader) -> dict:
    _, _, templates = _modules()
    return templates.load(name)
