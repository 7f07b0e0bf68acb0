"""Synthetic data jobs (Prefect 3): thin tasks over shared/synthetic/.

    python -m pipelines.synthetic templates
    python -m pipelines.synthetic preview (SPEC.yaml | --template NAME) [-n 5]
    python -m pipelines.synthetic run (SPEC.yaml | --template NAME) [--num-records N] [--out DIR|s3://...]
    python -m pipelines.synthetic submit (SPEC.yaml | --template NAME) [--num-records N]

`run` makes the job here, as the Prefect flow `synthetic-job` (`--no-prefect`: the same without Prefect's
runtime), calling the gateway (`--gateway`, default the local stack) with an inference key (`--key`,
SWITCHYARD_API_KEY, or the local stack's `.switchyard/dev-key`), and writes `<out>/synthetic/<job>/`
(default: ./synthetic-data). `submit` hands the job to the gateway (`POST /api/v1/synthetic/jobs`, a
management key: `--admin-key`, SWITCHYARD_ADMIN_KEY or `.switchyard/admin-key`) and follows it. Both show a
progress bar when stdout is a terminal (`--quiet`: none; `--progress`: always; pipelines/progress.py); a job
stopped by its failure budget exits with status 1 and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE

from pipelines.progress import Progress, add_arguments, wanted
from shared.synthetic import jobs, templates
from shared.synthetic.client import GatewayClient, run_loop
from shared.synthetic.engine import Engine
from shared.synthetic.spec import load, parse, unwrap

STATE = Path(os.environ.get("SWITCHYARD_STATE_DIR", ".switchyard"))


def _default_gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/api/v1"


def _secret(given: str | None, env: str, file: str) -> str:
    if given:
        return given
    if os.environ.get(env):
        return os.environ[env]
    path = STATE / file
    if path.exists():
        return path.read_text().strip()
    sys.exit(f"no key: pass it, set {env}, or start the local stack (make run) for {path}")


def _http(method: str, url: str, key: str | None = None, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read())["error"]["message"]
        except Exception:  # noqa: BLE001
            message = e.reason
        sys.exit(f"{method} {url}: {e.code}: {message}")


def known_models(gateway: str) -> set[str]:
    return {m["id"] for m in _http("GET", f"{gateway}/models")["data"]}


def spec_data(args: argparse.Namespace) -> dict[str, Any]:
    if args.template:
        data = templates.load(args.template)
    elif args.spec:
        data = unwrap(load(args.spec).model_dump(mode="json"))
    else:
        sys.exit("give a spec file or --template NAME (python -m pipelines.synthetic templates)")
    for name in ("num_records", "seed", "name"):
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    return data


def rows_bar(total: int, show: bool | None) -> Progress:
    return Progress(total, desc="synthetic rows", unit="row", show=show)


def shown(bar: Progress, rows: int, failed: int, cost: float) -> None:
    bar.to(rows, failed=failed, cost=f"${cost:.6f}")


# -- the flow ---------------------------------------------------------------------------------------------
@task(name="check-job", cache_policy=NONE)
def check(data: dict[str, Any], out: str, gateway: str) -> jobs.Job:
    """The spec, its DAG, the license gate and the seed, before any call; the job's config and metadata."""
    from shared.lake.store import open_store

    job = jobs.prepare(data, reader=jobs.SeedReader(open_store(out), local_dir=Path.cwd()),
                       known_models=known_models(gateway))
    _begin(job, open_store(out))
    return job


@task(name="make-row-groups", cache_policy=NONE)
async def make(job: jobs.Job, out: str, gateway: str, key_env: str, bar: bool | None = None) -> str | None:
    """Every row group not yet written; why the job stopped, if it did."""
    from shared.lake.store import open_store

    key = os.environ.get(key_env) or sys.exit(f"the inference key is read from ${key_env}, which is not set")
    with rows_bar(job.spec.num_records, bar) as rows:
        try:
            await jobs.run_groups(job, open_store(out), GatewayClient(gateway, key, job.id),
                                  on_progress=_progress(rows))
        except jobs.JobStopped as e:
            return str(e)
    return None


@task(name="finish-job", cache_policy=NONE)
def end(job: jobs.Job, out: str, stopped: str | None) -> dict[str, Any]:
    from shared.lake.store import open_store

    return jobs.finish(job, open_store(out), stopped=stopped)


@flow(name="synthetic-job", log_prints=True)
async def synthetic_job(data: dict[str, Any], out: str, gateway: str,
                        key_env: str = "SWITCHYARD_API_KEY", bar: bool | None = None) -> dict[str, Any]:
    """A job (a spec as data: Data Designer's config format works) through the gateway at `gateway`, written to
    `out` (a directory or s3://bucket[/prefix]). The inference key comes from the environment variable
    `key_env`, never as a parameter: Prefect keeps a run's parameters in its database."""
    job = check(data, out, gateway)
    stopped = await make(job, out, gateway, key_env, bar)
    return end(job, out, stopped)


def _begin(job: jobs.Job, store: Any) -> None:
    from shared.synthetic.runner import mark_running

    outputs = jobs.Outputs(store, job.id)
    outputs.put_json("config.json", jobs.config_document(job))
    if outputs.get_json("metadata.json") is None:
        outputs.put_json("metadata.json", jobs.new_metadata(job, execution="cli"))
    else:  # a resumption: the spec as now given (its budget may have grown)
        jobs.update_metadata(outputs, lambda m: m.update(budget=jobs.new_metadata(job, execution="cli")["budget"]))
    mark_running(store, job.id)


def _progress(bar: Progress) -> Any:
    def show(engine: Engine) -> None:
        p = engine.progress
        shown(bar, p.rows_done, p.rows_failed, p.cost)

    return show


def run(data: dict[str, Any], out: str, gateway: str, key: str, *, prefect: bool = True,
        bar: bool | None = None) -> dict[str, Any]:
    """The job made here (`bar`: the progress bar wanted, None: if stdout is a terminal)."""
    if prefect:
        os.environ["SWITCHYARD_API_KEY"] = key  # this process's own environment, read by the flow's task
        return run_loop(synthetic_job(data, out, gateway, bar=bar))
    from shared.lake.store import open_store
    from shared.synthetic import runner

    store = open_store(out)
    job = jobs.prepare(data, reader=jobs.SeedReader(store, local_dir=Path.cwd()), known_models=known_models(gateway))
    _begin(job, store)
    with rows_bar(job.spec.num_records, bar) as rows:
        return run_loop(runner.run(job, store, GatewayClient(gateway, key, job.id), on_progress=_progress(rows)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("templates", help="list the built-in templates")
    for name in ("preview", "run", "submit"):
        p = sub.add_parser(name)
        p.add_argument("spec", nargs="?", help="a job spec (YAML or JSON; Data Designer's config format works)")
        p.add_argument("--template", help="a built-in template instead of a spec file")
        p.add_argument("--gateway", default=_default_gateway(), help="the gateway's API base URL")
        p.add_argument("--seed", type=int)
        p.add_argument("--name")
        if name == "preview":
            p.add_argument("-n", "--num-records", type=int, default=5)
            p.add_argument("--admin-key")
        else:
            p.add_argument("--num-records", type=int)
        if name == "run":
            p.add_argument("--out", default="synthetic-data", help="a directory or s3://bucket[/prefix]")
            p.add_argument("--key", help="an inference key")
            p.add_argument("--no-prefect", action="store_true", help="run without Prefect's runtime")
        if name == "submit":
            p.add_argument("--admin-key")
        if name != "preview":
            add_arguments(p)
    args = parser.parse_args(argv)
    if args.command == "templates":
        for name in templates.names():
            print(f"{name}: {templates.load(name).get('description', '')}")
        return
    data = spec_data(args)
    parse(data)  # a bad spec fails here, before any call
    if args.command == "preview":
        key = _secret(args.admin_key, "SWITCHYARD_ADMIN_KEY", "admin-key")
        result = _http("POST", f"{args.gateway}/synthetic/preview", key, {"spec": data, "num_records": args.num_records})
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if args.command == "run":
        key = _secret(args.key, "SWITCHYARD_API_KEY", "dev-key")
        meta = run(data, args.out, args.gateway, key, prefect=not args.no_prefect, bar=wanted(args))
    else:
        key = _secret(args.admin_key, "SWITCHYARD_ADMIN_KEY", "admin-key")
        meta = _http("POST", f"{args.gateway}/synthetic/jobs", key, {"spec": data})
        meta = follow(args.gateway, key, meta, rows_bar(meta["num_records"], wanted(args)))
    print(json.dumps({k: meta[k] for k in ("job_id", "status", "rows_done", "rows_failed", "cost_usd",
                                           "stopped_reason", "outputs") if k in meta}, indent=2))
    if meta["status"] != "completed":
        sys.exit(1)


def follow(gateway: str, key: str, meta: dict[str, Any], bar: Progress, every: float = 0.5) -> dict[str, Any]:
    """Poll a submitted job until it ends, its progress on `bar`; its last metadata."""
    with bar:
        while meta["status"] in ("queued", "running"):
            live = meta.get("live") or {}
            shown(bar, max(meta.get("rows_done", 0), live.get("rows_made", 0)),
                  max(meta.get("rows_failed", 0), live.get("attempts_failed", 0)),
                  max(meta.get("cost_usd", 0.0), live.get("cost_usd", 0.0)))
            time.sleep(every)
            meta = _http("GET", f"{gateway}/synthetic/jobs/{meta['job_id']}", key)
        shown(bar, meta.get("rows_done", 0), meta.get("rows_failed", 0), meta.get("cost_usd", 0.0))
    return meta


def cli(argv: list[str] | None = None) -> None:
    """`main`, with the documented errors said plainly (no stack trace): a bad spec, a license refusal."""
    from shared.errors import SwitchyardError

    try:
        main(argv)
    except SwitchyardError as e:
        problems = e.metadata.get("problems") or []
        lines = [f"error: {e.message}"] + [f"  - {p['kind']} {p['name']}: {p['reason']}" for p in problems]
        sys.exit("\n".join(lines))


if __name__ == "__main__":
    cli()
