"""Jobs: a spec checked (its DAG, its licenses) before any call, run through the gateway, written to the store.

A job's id is its name's slug and its fingerprint (the spec's and its seed's content): submitting the same
spec again is the same job, and resumes it from its last written row group. Everything a job has is under
`synthetic/<id>/` (shared/synthetic/output.py); its progress is summed from `groups/part-GGGGG.json`, written
with each group, so that any number of workers (AWS: one per row group, through SQS) report into one place
without a lock. `metadata.json` holds the job's status; `README.md` is its dataset card.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
import pyarrow as pa

from shared.errors import BadRequestError, LicenseRefusedError, NotFoundError, SwitchyardError
from shared.lake.store import ABSENT, ConflictError, LakeStore
from shared.synthetic import licensing
from shared.synthetic.client import GatewayClient
from shared.synthetic.engine import Engine, Group, JobStopped, ModelUsage
from shared.synthetic.plan import Plan
from shared.synthetic.output import Layout, failures_table, parquet
from shared.synthetic.seeds import Seed, SeedReader
from shared.synthetic.spec import JobSpec, parse

PREFIX = "synthetic/"
ENGINE = "switchyard-synthetic/1"
PREVIEW_MAX = 50


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- a job, checked -----------------------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    spec: JobSpec
    fingerprint: str
    plan: Plan
    layout: Layout
    gate: Any  # licensing.GateResult
    seed: Seed | None

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.id}/"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "job"


def prepare(data: Any, *, reader: SeedReader, known_models: set[str] | None,
            spec: JobSpec | None = None) -> Job:
    """Parse, check the DAG and the licenses, read the seed: everything before the first call. Raises
    BadRequestError (the spec) or LicenseRefusedError (with every offending model and seed)."""
    spec = spec or parse(data)
    seed = reader.read(spec.seed_config) if spec.seed_config else None
    policy = spec.license_policy
    seed_policy = licensing.SeedLicensePolicy()
    if policy.allowed_seed_licenses is not None:
        try:
            seed_policy = licensing.SeedLicensePolicy(allowed=tuple(policy.allowed_seed_licenses))
        except ValueError as e:
            message = e.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(e, "errors") else str(e)
            raise BadRequestError(f"license_policy.allowed_seed_licenses: {message}",
                                  metadata={"field": "license_policy.allowed_seed_licenses"}) from None
    gate = licensing.check(
        {m.alias: m.model for m in spec.model_configs},
        [licensing.Seed(name=seed.name, license=seed.license)] if seed else [],
        purpose=licensing.Purpose(commercial=policy.commercial, train_models=policy.train_models),
        policy=seed_policy, known_models=known_models)
    if not gate.ok:
        reasons = "; ".join(p.reason for p in gate.problems)
        raise LicenseRefusedError(f"This job is not license-safe: {reasons}",
                                  metadata={"problems": [p.model_dump() for p in gate.problems],
                                            "policy_version": gate.policy_version})
    if seed is not None:
        reader.load(spec.seed_config, seed)  # type: ignore[arg-type]
    plan = Plan(spec, seed.rows if seed else None)
    layout = Layout(spec, seed.schema if seed else None, plan.seed_columns)
    fingerprint = hashlib.sha256(f"{spec.fingerprint()}|{seed.digest if seed else ''}".encode()).hexdigest()[:16]
    return Job(f"{slug(spec.name)}-{fingerprint[:12]}", spec, fingerprint, plan, layout, gate, seed)


# -- what is written --------------------------------------------------------------------------------------
def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def part_name(index: int) -> str:
    return f"part-{index:05d}"


class Outputs:
    """A job's objects in the store."""

    def __init__(self, store: LakeStore, job_id: str) -> None:
        self.store, self.prefix = store, f"{PREFIX}{job_id}/"

    def put_json(self, name: str, value: Any) -> None:
        self.store.put(self.prefix + name, dumps(value))

    def get_json(self, name: str) -> Any | None:
        try:
            return orjson.loads(self.store.get(self.prefix + name))
        except FileNotFoundError:
            return None

    def written_groups(self) -> set[int]:
        return {int(i.key.rsplit("part-", 1)[1].split(".")[0]) for i in self.store.list(self.prefix + "data/")
                if i.key.endswith(".parquet")}

    def group_stats(self) -> list[dict[str, Any]]:
        stats = []
        for info in self.store.list(self.prefix + "groups/"):
            try:
                stats.append(orjson.loads(self.store.get(info.key)))
            except FileNotFoundError:
                continue
        return sorted(stats, key=lambda s: s["group"])

    def write_partial(self, index: int, failures: list[dict[str, Any]]) -> None:
        """A group the job stopped in: its failed attempts so far, no data part (not a checkpoint). A resumed
        job makes the group again, the same attempts, and writes over these."""
        name = part_name(index)
        self.store.put(f"{self.prefix}failures/{name}.parquet", parquet(failures_table(failures)))
        self.put_json(f"groups/{name}.json", {"group": index, "rows": 0, "failed": len(failures), "usage": {},
                                              "partial": True, "at": now()})

    def write_stopped_usage(self, usage: dict[str, dict[str, Any]]) -> None:
        """What the calls of unfinished groups cost when the job stopped: kept for good (the money was spent)."""
        import uuid

        self.put_json(f"groups/stopped-{uuid.uuid4().hex[:12]}.json",
                      {"group": -1, "rows": 0, "failed": 0, "usage": usage, "partial": True, "at": now()})

    def write_group(self, job: Job, group: Group, usage: dict[str, dict[str, Any]]) -> None:
        """Failures and stats first, the data part last: a data part is the checkpoint, whole or absent."""
        name = part_name(group.index)
        data = parquet(job.layout.table(group.rows))  # first: nothing is written for a group that cannot be
        self.store.put(f"{self.prefix}failures/{name}.parquet", parquet(failures_table(group.failures)))
        self.put_json(f"groups/{name}.json", {"group": group.index, "rows": len(group.rows),
                                              "failed": len(group.failures), "usage": usage, "at": now()})
        key = f"{self.prefix}data/{name}.parquet"
        try:
            self.store.put(key, data, expect=ABSENT)
        except ConflictError:  # another worker wrote this group first: the same rows (same attempts, same seed)
            self.store.get(key)  # ... which must then be there


def totals(stats: list[dict[str, Any]], written: set[int] | None = None) -> dict[str, Any]:
    """Rows, failed attempts, groups done and money over the groups' stats (partial ones: failures and cost).
    With `written` (the groups whose data part exists), a group's stats without its part count as partial
    (a crash between the two writes)."""
    if written is not None:
        stats = [s if s.get("partial") or s["group"] in written else {**s, "rows": 0, "partial": True} for s in stats]
    usage: dict[str, ModelUsage] = {}
    for s in stats:
        for model, u in s["usage"].items():
            into = usage.setdefault(model, ModelUsage())
            into.calls += u["calls"]
            into.prompt_tokens += u["prompt_tokens"]
            into.completion_tokens += u["completion_tokens"]
            into.cost += u["cost"]
    rows = sum(s["rows"] for s in stats)
    cost = sum(u.cost for u in usage.values())
    return {"rows_done": rows, "rows_failed": sum(s["failed"] for s in stats),
            "groups_done": sum(1 for s in stats if not s.get("partial")),
            "cost_usd": round(cost, 10), "cost_per_row_usd": round(cost / rows, 10) if rows else None,
            "usage": {m: {"calls": u.calls, "prompt_tokens": u.prompt_tokens,
                          "completion_tokens": u.completion_tokens, "cost_usd": round(u.cost, 10),
                          "tokens_per_row": round((u.prompt_tokens + u.completion_tokens) / rows, 2) if rows else None}
                      for m, u in sorted(usage.items())}}


def config_document(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "fingerprint": job.fingerprint, "engine": ENGINE,
            "seed_digest": job.seed.digest if job.seed else None,
            "spec": job.spec.model_dump(mode="json", exclude_defaults=False)}


def new_metadata(job: Job, *, execution: str) -> dict[str, Any]:
    return {"job_id": job.id, "name": job.spec.name, "status": "queued", "fingerprint": job.fingerprint,
            "engine": ENGINE, "execution": execution, "num_records": job.spec.num_records,
            "buffer_size": job.spec.buffer_size, "groups_total": job.plan.groups, "created_at": now(),
            "started_at": None, "finished_at": None, "stopped_reason": None, "license": job.gate.to_dict(),
            "budget": {"max_attempts_per_row": job.spec.budget.max_attempts_per_row,
                       "max_failed_rows": job.spec.max_failed_rows, "max_cost_usd": job.spec.budget.max_cost_usd},
            "review": {"reviewed": False, "reviewer": None, "reviewed_at": None, "notes": None},
            "outputs": {"data": f"{job.prefix}data/*.parquet", "failures": f"{job.prefix}failures/*.parquet",
                        "card": f"{job.prefix}README.md", "config": f"{job.prefix}config.json",
                        "metadata": f"{job.prefix}metadata.json"}}


def update_metadata(outputs: Outputs, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read, change and write metadata.json conditionally (the runner and a review may write at once)."""
    for _ in range(20):
        infos = [i for i in outputs.store.list(outputs.prefix + "metadata.json") if i.key.endswith("metadata.json")]
        if not infos:
            raise NotFoundError("No such synthetic job", metadata={"job_id": outputs.prefix.split("/")[1]})
        meta = orjson.loads(outputs.store.get(infos[0].key))
        change(meta)
        try:
            outputs.store.put(outputs.prefix + "metadata.json", dumps(meta), expect=infos[0].etag)
            return meta
        except ConflictError:
            time.sleep(0.05)
    raise SwitchyardError("metadata.json kept changing under us")


# -- running ------------------------------------------------------------------------------------------------
async def run_groups(job: Job, store: LakeStore, client: GatewayClient, groups: list[int] | None = None,
                     on_progress: Callable[[Engine], None] | None = None) -> Engine:
    """Make and write the job's groups not yet written (or the given ones). Raises JobStopped."""
    outputs = Outputs(store, job.id)
    written = outputs.written_groups()
    todo = [g for g in (groups if groups is not None else range(job.plan.groups)) if g not in written]
    engine = Engine(job.plan, client, job_id=job.id, fingerprint=job.fingerprint, layout=job.layout)
    if todo:  # the failed attempts of the groups written count against the budget; unfinished ones are redone
        engine.failed_before = sum(s["failed"] for s in outputs.group_stats() if not s.get("partial"))
    def usage_of(*groups: int) -> dict[str, dict[str, Any]]:
        """What the calls of these groups cost (taken out of the engine's running count)."""
        usage: dict[str, dict[str, Any]] = {}
        for index in groups:
            for model, u in engine.group_usage.pop(index, {}).items():
                into = usage.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})
                into["calls"] += u.calls
                into["prompt_tokens"] += u.prompt_tokens
                into["completion_tokens"] += u.completion_tokens
                into["cost"] += u.cost
        return usage

    async def write(group: Group) -> None:
        await asyncio.to_thread(outputs.write_group, job, group, usage_of(group.index))
        if on_progress:
            on_progress(engine)

    if on_progress:
        on_progress(engine)
    try:
        await engine.run(todo, write)
    except JobStopped:
        # the groups left unfinished: their failed attempts and their calls' cost are on record too (a resumed
        # job makes those groups again, the same attempts, and writes over the attempts; the money stays)
        for index, failures in sorted(engine.open_failures.items()):
            await asyncio.to_thread(outputs.write_partial, index, failures)
        await asyncio.to_thread(outputs.write_stopped_usage, usage_of(*list(engine.group_usage)))
        raise
    return engine


def finish(job: Job, store: LakeStore, *, stopped: str | None = None) -> dict[str, Any]:
    """The job's end: metadata (status, totals) and the dataset card, from what the groups wrote."""
    from shared.synthetic.card import card

    outputs = Outputs(store, job.id)
    written = outputs.written_groups()
    sums = totals(outputs.group_stats(), written)
    complete = stopped is None and len(written) == job.plan.groups

    def change(meta: dict[str, Any]) -> None:
        meta.update(sums)
        meta["status"] = "completed" if complete else "failed"
        meta["stopped_reason"] = stopped
        meta["finished_at"] = now()
        store.put(outputs.prefix + "README.md", card(job, meta).encode())  # the card before the status says so

    return update_metadata(outputs, change)


def status(store: LakeStore, job_id: str) -> dict[str, Any]:
    """A job's metadata with its progress summed from the groups written so far."""
    if not re.fullmatch(r"[a-z0-9-]{1,80}", job_id):
        raise NotFoundError("No such synthetic job", metadata={"job_id": job_id[:80]})
    outputs = Outputs(store, job_id)
    meta = outputs.get_json("metadata.json")
    if meta is None:
        raise NotFoundError("No such synthetic job", metadata={"job_id": job_id})
    if meta["status"] in ("queued", "running"):
        meta.update(totals(outputs.group_stats(), outputs.written_groups()))
    return meta


def review(store: LakeStore, job_id: str, *, reviewed: bool, reviewer: str, notes: str | None) -> dict[str, Any]:
    """Set the human-review block, in metadata.json and on the card."""
    from shared.synthetic.card import card

    status(store, job_id)  # 404 for an unknown job
    outputs = Outputs(store, job_id)
    config = outputs.get_json("config.json")

    def change(meta: dict[str, Any]) -> None:
        meta["review"] = {"reviewed": reviewed, "reviewer": reviewer, "reviewed_at": now(), "notes": notes}

    meta = update_metadata(outputs, change)
    if meta["status"] in ("completed", "failed") and config is not None:
        store.put(outputs.prefix + "README.md", card(None, meta, config=config).encode())
    return meta


def read_rows(store: LakeStore, job_id: str, folder: str = "data") -> pa.Table:
    """Every accepted row of a job (`folder="failures"`: every failed attempt), in row order."""
    import pyarrow.parquet as pq

    outputs = Outputs(store, job_id)
    parts = sorted(i.key for i in store.list(f"{outputs.prefix}{folder}/") if i.key.endswith(".parquet"))
    tables = [pq.read_table(pa.BufferReader(store.get(k))) for k in parts]
    return pa.concat_tables(tables).sort_by([("_row", "ascending"), ("_attempt", "ascending")]) if tables \
        else pa.table({})


def to_jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(orjson.dumps(rows, default=str))


__all__ = ["Job", "JobStopped", "LicenseRefusedError", "Outputs", "Seed", "SeedReader", "finish", "prepare", "read_rows",
           "review", "run_groups", "status"]
