"""`switchyard`: the management API from a shell. Answers are printed as JSON; an error answer as one line
(`switchyard: error: <status>: <message>`) with exit status 1.

Config: SWITCHYARD_BASE_URL (default http://127.0.0.1:8080) and SWITCHYARD_API_KEY, or --base-url and --key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from switchyard_client.client import DEFAULT_BASE_URL, APIError, Client
from switchyard_client.progress import bar

EPILOG = """examples:
  switchyard keys create ci-bot --limit 5 --allowed-model 'sim/*'
  switchyard catalog load my-catalog.yaml
  switchyard providers add-local vllm --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct
  switchyard analytics usage --group-by model --from 2026-01-01
  switchyard synthetic submit --template legal-clauses --num-records 20 --wait

Run `switchyard COMMAND --help` for a command's options."""


def _print(value: Any) -> None:
    if isinstance(value, bytes):
        sys.stdout.buffer.write(value)
    else:
        print(json.dumps(value, indent=2, ensure_ascii=False))


def _read(path: str) -> Any:
    """A JSON or YAML document from a file, or from stdin for `-`."""
    import yaml

    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return yaml.safe_load(text)


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"switchyard: error: expected NAME=VALUE, not {item!r}")
        pairs[name] = value
    return pairs


def _write(data: bytes, output: str | None) -> None:
    if output:
        Path(output).write_bytes(data)
        print(f"wrote {len(data)} bytes to {output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)


# -- keys -----------------------------------------------------------------------------------------------
def keys_create(sy: Client, a: argparse.Namespace) -> None:
    settings = dict(management=a.management, scopes=a.scope, limit=a.limit, limit_reset=a.limit_reset,
                    expires_at=a.expires_at, allowed_models=a.allowed_model, allowed_ips=a.allowed_ip,
                    allowed_origins=a.allowed_origin, rpm=a.rpm, rpd=a.rpd, tpm=a.tpm, tags=a.tag,
                    zero_log=a.zero_log or None)
    if a.count == 1:
        created = sy.create_key(a.name, **settings)
        print(created["key"]) if a.secret_only else _print(created)
        return
    with bar(a.count, "keys", a.progress) as progress:  # one JSON line a key, so that the secrets can be kept
        for n in range(1, a.count + 1):
            created = sy.create_key(f"{a.name}-{n}", **settings)
            print(created["key"] if a.secret_only else json.dumps(created, ensure_ascii=False), flush=True)
            progress.update(1)


def keys_update(sy: Client, a: argparse.Namespace) -> None:
    changes: dict[str, Any] = {k: json.loads(v) for k, v in _pairs(a.set).items()}
    for field in ("name", "limit"):
        if getattr(a, field) is not None:
            changes[field] = getattr(a, field)
    if a.disabled is not None:
        changes["disabled"] = a.disabled
    if not changes:
        raise SystemExit("switchyard: error: nothing to change (--name, --limit, --disable, --enable, --set F=JSON)")
    _print(sy.update_key(a.key_hash, **changes))


# -- catalog ----------------------------------------------------------------------------------------------
def catalog_load(sy: Client, a: argparse.Namespace) -> None:
    """Each entry of a catalog file through the API: providers first, then models, then routing policies."""
    file = (_read(a.file) or {}) if a.file else {}
    unknown = sorted(set(file) - {"providers", "models", "routes"})
    if unknown:
        raise SystemExit(f"switchyard: error: {a.file}: the catalog API takes providers, models and routes, "
                         f"not {', '.join(unknown)}")
    steps: list[tuple[str, str, Callable[[], Any]]] = []
    steps += [("provider", p.get("id", "?"), lambda p=p: sy.put_provider(p)) for p in file.get("providers") or []]
    steps += [("model", m.get("id", "?"), lambda m=m: sy.put_model(m)) for m in file.get("models") or []]
    steps += [("route", r.get("id", "?"), lambda r=r: sy.put_route(r)) for r in file.get("routes") or []]
    steps += [("hidden", m, lambda m=m: sy.set_model_hidden(m, True)) for m in a.hide]
    steps += [("shown", m, lambda m=m: sy.set_model_hidden(m, False)) for m in a.show]
    done: dict[str, int] = {}
    with bar(len(steps), "catalog", a.progress) as progress:
        for what, name, step in steps:
            try:
                step()
            except APIError as e:
                written = ", ".join(f"{n} {w}" for w, n in done.items()) or "nothing"
                raise APIError(e.status, f"{what} {name}: {e.message} (written before it: {written}; "
                                         "each entry replaces the one of its id, so loading again is safe)",
                               e.metadata) from None
            done[what] = done.get(what, 0) + 1
            progress.update(1)
    _print({"written": {w: done.get(w, 0) for w in ("provider", "model", "route", "hidden", "shown")}})


# -- providers ----------------------------------------------------------------------------------------------
def _served_models(base_url: str, api_key: str | None) -> list[str]:
    """What an OpenAI-compatible server lists at GET {base_url}/models (vLLM, llama.cpp, Ollama do)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        answer = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=10)
        answer.raise_for_status()
        return [m["id"] for m in answer.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise APIError(0, f"could not list the models of {base_url} ({e}): name them with --model") from None


def providers_add_local(sy: Client, a: argparse.Namespace) -> None:
    """A local OpenAI-compatible server (vLLM, llama.cpp, Ollama...) as a provider, and its models as NAME/model."""
    models = a.model or _served_models(a.server_url, os.environ.get(a.api_key_env) if a.api_key_env else None)
    ids = {upstream: f"{a.name}/{upstream.rsplit('/', 1)[-1]}" for upstream in models}  # Qwen/Qwen2.5 → NAME/Qwen2.5
    if len(set(ids.values())) < len(ids):
        raise APIError(0, f"these models would get the same id: {', '.join(sorted(ids))}: add them one by one "
                          "with `switchyard catalog put-model`")
    provider = {"id": a.name, "kind": "openai", "base_url": a.server_url, "name": a.display_name or a.name,
                **({"api_key_env": a.api_key_env} if a.api_key_env else {})}
    sy.put_provider(provider)
    added = []
    for upstream, model_id in ids.items():
        sy.put_model({"id": model_id, "provider": a.name, "upstream_model": upstream,
                      "context_length": a.context_length,
                      "pricing": {"prompt": a.prompt_price, "completion": a.completion_price}})
        added.append(model_id)
    _print({"provider": provider, "models": added})


# -- synthetic ---------------------------------------------------------------------------------------------------
def _submission(a: argparse.Namespace) -> dict[str, Any]:
    if a.file:
        body = _read(a.file)
    elif a.template:
        body = {"template": a.template}
    else:
        raise SystemExit("switchyard: error: give a spec FILE or --template NAME")
    if a.num_records is not None:
        body["num_records"] = a.num_records
    return body


def _wait(sy: Client, job_id: str, a: argparse.Namespace) -> dict[str, Any]:
    shown = 0

    with bar(None, f"job {job_id}", a.progress) as progress:
        def seen(job: dict[str, Any]) -> None:
            nonlocal shown
            if job.get("num_records") and progress.total != job["num_records"]:
                progress.total = job["num_records"]
            done = max(job.get("rows_done") or 0, (job.get("live") or {}).get("rows_made") or 0)
            progress.set_postfix_str(str(job.get("status", "")), refresh=False)
            progress.update(max(0, done - shown))
            shown = max(shown, done)

        return sy.wait_for_job(job_id, poll=a.poll, progress=seen)


def synthetic_submit(sy: Client, a: argparse.Namespace) -> None:
    job = sy.create_job(_submission(a))
    if a.wait:
        job = _wait(sy, job["job_id"], a)
    _print(job)
    if a.wait and job.get("status") != "completed":
        raise APIError(0, f"job {job.get('job_id')} ended {job.get('status')}: {job.get('stopped_reason') or ''}")


def synthetic_wait(sy: Client, a: argparse.Namespace) -> None:
    job = _wait(sy, a.job_id, a)
    _print(job)
    if job.get("status") != "completed":
        raise APIError(0, f"job {a.job_id} ended {job.get('status')}")


def rankings_run(sy: Client, a: argparse.Namespace) -> None:
    run = sy.run_rankings(a.date)
    if a.wait and run["data"].get("status") in ("queued", "running"):
        with bar(None, f"run {run['data']['id']}", a.progress):
            run = sy.wait_for_rankings_run(run["data"]["id"])
    _print(run)


# -- the parser ------------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="switchyard", description="Manage a Switchyard gateway over its HTTP API.",
                                  epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--base-url", default=None,
                     help=f"the gateway (env SWITCHYARD_BASE_URL, default {DEFAULT_BASE_URL})")
    top.add_argument("--key", default=None, help="the API key (env SWITCHYARD_API_KEY); most commands need a "
                                                 "management key")
    top.add_argument("--timeout", type=float, default=120.0, help="seconds a request may take (default 120)")
    shown = top.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                       help="progress bars on stderr even when it is not a terminal (default: when it is)")
    shown.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    groups = top.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def group(name: str, help: str) -> Any:
        return groups.add_parser(name, help=help, description=help).add_subparsers(
            dest="command", metavar="SUBCOMMAND", required=True)

    def command(where: Any, name: str, help: str, run: Callable[[Client, argparse.Namespace], Any]) -> Any:
        p = where.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        return p

    def show(call: Callable[[Client, argparse.Namespace], Any]) -> Callable[[Client, argparse.Namespace], None]:
        return lambda sy, a: _print(call(sy, a))

    # keys
    g = group("keys", "create, list, change, rotate and delete keys")
    p = command(g, "list", "list inference keys (--management: management keys)",
                show(lambda sy, a: sy.list_keys(offset=a.offset, management=a.management)))
    p.add_argument("--management", action="store_true")
    p.add_argument("--offset", type=int, default=0)
    command(g, "get", "one key", show(lambda sy, a: sy.get_key(a.key_hash))).add_argument("key_hash")
    command(g, "current", "the calling key: usage, limit and what remains", show(lambda sy, a: sy.current_key()))
    p = command(g, "create", "create a key (its secret is printed once)", keys_create)
    p.add_argument("name")
    p.add_argument("--management", action="store_true", help="a management key (for this API) instead of an "
                                                             "inference key")
    p.add_argument("--scope", action="append", help="a management key's scope (repeat), e.g. keys:write")
    p.add_argument("--limit", type=float, help="spend limit in USD")
    p.add_argument("--limit-reset", choices=["daily", "weekly", "monthly"])
    p.add_argument("--expires-at", help="ISO 8601 time")
    p.add_argument("--allowed-model", action="append", help="model id or pattern (repeat)")
    p.add_argument("--allowed-ip", action="append", help="IP or CIDR (repeat)")
    p.add_argument("--allowed-origin", action="append", help="Origin/Referer (repeat)")
    p.add_argument("--rpm", type=int, help="requests a minute")
    p.add_argument("--rpd", type=int, help="requests a day")
    p.add_argument("--tpm", type=int, help="tokens a minute")
    p.add_argument("--tag", action="append")
    p.add_argument("--zero-log", action="store_true")
    p.add_argument("--count", type=int, default=1, help="create N keys NAME-1..NAME-N (one JSON line each)")
    p.add_argument("--secret-only", action="store_true", help="print only the secret")
    p = command(g, "update", "change a key", keys_update)
    p.add_argument("key_hash")
    p.add_argument("--name")
    p.add_argument("--limit", type=float)
    p.add_argument("--disable", dest="disabled", action="store_const", const=True)
    p.add_argument("--enable", dest="disabled", action="store_const", const=False)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help='e.g. --set rpm=60 '
                   "--set 'allowed_models=[\"sim/*\"]' --set limit=null")
    p = command(g, "rotate", "a new secret; the old one works for --grace-seconds",
                show(lambda sy, a: sy.rotate_key(a.key_hash, grace_seconds=a.grace_seconds)))
    p.add_argument("key_hash")
    p.add_argument("--grace-seconds", type=int)
    command(g, "delete", "delete a key", show(lambda sy, a: sy.delete_key(a.key_hash))).add_argument("key_hash")

    # catalog
    g = group("catalog", "providers, models and routing policies, changed without a deploy")
    p = command(g, "load", "load a catalog file (SWITCHYARD_CONFIG's shape) through the API", catalog_load)
    p.add_argument("file", nargs="?", help="YAML or JSON with providers, models, routes (- for stdin)")
    p.add_argument("--hide", action="append", default=[], metavar="MODEL_ID")
    p.add_argument("--show", action="append", default=[], metavar="MODEL_ID")
    command(g, "put-provider", "add or replace a provider from a YAML/JSON file",
            show(lambda sy, a: sy.put_provider(_read(a.file)))).add_argument("file")
    command(g, "delete-provider", "remove a provider added through the API",
            show(lambda sy, a: sy.delete_provider(a.provider_id))).add_argument("provider_id")
    command(g, "put-model", "add or replace a model endpoint from a YAML/JSON file",
            show(lambda sy, a: sy.put_model(_read(a.file)))).add_argument("file")
    p = command(g, "delete-model", "remove a model endpoint added through the API",
                show(lambda sy, a: sy.delete_model(a.model_id, provider=a.provider)))
    p.add_argument("model_id")
    p.add_argument("--provider", required=True)
    command(g, "hide", "hide a model", show(lambda sy, a: sy.set_model_hidden(a.model_id, True))).add_argument(
        "model_id")
    command(g, "show", "show a hidden model again",
            show(lambda sy, a: sy.set_model_hidden(a.model_id, False))).add_argument("model_id")

    # providers
    g = group("providers", "list providers; register a local OpenAI-compatible server")
    command(g, "list", "the catalog's providers", show(lambda sy, a: sy.list_providers()))
    p = command(g, "add-local", "register a local vLLM / llama.cpp / Ollama server (OpenAI-compatible) and its "
                                "models, as NAME/<model>", providers_add_local)
    p.add_argument("name", help="the provider id, also the models' author (e.g. vllm)")
    p.add_argument("--base-url", dest="server_url", metavar="URL", required=True, help="its OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", action="append", help="an upstream model name (repeat; default: what the server "
                                                    "lists at GET /models)")
    p.add_argument("--context-length", type=int, default=8192)
    p.add_argument("--prompt-price", type=float, default=0.0, help="USD per 1M prompt tokens (default 0)")
    p.add_argument("--completion-price", type=float, default=0.0, help="USD per 1M completion tokens (default 0)")
    p.add_argument("--api-key-env", help="the gateway's env var holding the server's key, if it wants one (the "
                                         "catalog API allows SWITCHYARD_CATALOG_API_KEY_ENVS' names)")
    p.add_argument("--display-name")

    # models
    g = group("models", "the model list, counts and endpoints")
    p = command(g, "list", "models (OpenRouter's shape)", show(lambda sy, a: sy.list_models(
        supported_parameters=a.supported_parameters, output_modalities=a.output_modalities,
        input_modalities=a.input_modalities)))
    p.add_argument("--supported-parameters")
    p.add_argument("--output-modalities")
    p.add_argument("--input-modalities")
    command(g, "count", "how many models", show(lambda sy, a: sy.count_models()))
    command(g, "user", "the models the key may call", show(lambda sy, a: sy.user_models()))
    command(g, "embeddings", "embedding models", show(lambda sy, a: sy.embedding_models()))
    command(g, "endpoints", "a model's endpoints",
            show(lambda sy, a: sy.model_endpoints(a.model_id))).add_argument("model_id")

    # routes
    g = group("routes", "routing policies (virtual models)")
    command(g, "list", "every policy", show(lambda sy, a: sy.list_routes()))
    command(g, "get", "one policy", show(lambda sy, a: sy.get_route(a.model_id))).add_argument("model_id")
    command(g, "put", "add or replace a policy from a YAML/JSON file",
            show(lambda sy, a: sy.put_route(_read(a.file)))).add_argument("file")
    command(g, "delete", "remove a policy", show(lambda sy, a: sy.delete_route(a.model_id))).add_argument("model_id")

    # analytics
    g = group("analytics", "usage analytics, exports, activity and credits")
    p = command(g, "usage", "calls, tokens, cost, success rate and latency, grouped and bucketed",
                show(lambda sy, a: sy.analytics(from_=a.from_, to=a.to, group_by=a.group_by,
                                                granularity=a.granularity, limit=a.limit, **_pairs(a.filter))))
    for q in (p, e := command(g, "export", "the same rows as CSV or Parquet", lambda sy, a: _write(
            sy.export_analytics(format=a.format, from_=a.from_, to=a.to, group_by=a.group_by,
                                granularity=a.granularity, **_pairs(a.filter)), a.output))):
        q.add_argument("--from", dest="from_", metavar="TIME")
        q.add_argument("--to", metavar="TIME")
        q.add_argument("--group-by", help="comma-separated: model, lab, provider, app, key...")
        q.add_argument("--granularity", help="hour, day...")
        q.add_argument("--filter", action="append", default=[], metavar="NAME=VALUE", help="e.g. model=sim/fast")
    p.add_argument("--limit", type=int)
    e.add_argument("--format", choices=["csv", "parquet"], default="csv")
    e.add_argument("-o", "--output", help="file to write (default stdout)")
    p = command(g, "activity", "the last 30 UTC days by model and provider",
                show(lambda sy, a: sy.activity(date=a.date, api_key_hash=a.key_hash)))
    p.add_argument("--date")
    p.add_argument("--key-hash")
    command(g, "credits", "credits and what was spent", show(lambda sy, a: sy.credits()))

    # rankings
    g = group("rankings", "the daily rankings")
    p = command(g, "show", "rankings by model, lab or app", show(lambda sy, a: sy.rankings(by=a.by, date=a.date)))
    p.add_argument("--by", choices=["model", "lab", "app"])
    p.add_argument("--date")
    p = command(g, "daily", "daily token totals of the top models",
                show(lambda sy, a: sy.rankings_daily(start_date=a.start_date, end_date=a.end_date)))
    p.add_argument("--start-date")
    p.add_argument("--end-date")
    p = command(g, "run", "run the rankings for a day (default yesterday)", rankings_run)
    p.add_argument("date", nargs="?")
    p.add_argument("--wait", action="store_true", help="on AWS, wait for the queued run")
    command(g, "status", "a run started through the API",
            show(lambda sy, a: sy.get_rankings_run(a.run_id))).add_argument("run_id")

    # synthetic
    g = group("synthetic", "synthetic data jobs")
    command(g, "templates", "the built-in job templates", show(lambda sy, a: sy.list_templates()))
    command(g, "template", "a template's spec", show(lambda sy, a: sy.get_template(a.name))).add_argument("name")
    command(g, "jobs", "jobs, newest first", show(lambda sy, a: sy.list_jobs()))
    for name, help, run in (("submit", "start a job", synthetic_submit),
                            ("preview", "a few rows of a spec, in memory",
                             show(lambda sy, a: sy.preview_job(_submission(a))))):
        p = command(g, name, help, run)
        p.add_argument("file", nargs="?", help="a job spec or submission (YAML/JSON; - for stdin)")
        p.add_argument("--template")
        p.add_argument("--num-records", type=int)
        if name == "submit":
            p.add_argument("--wait", action="store_true", help="wait for the job to end, with a progress bar")
            p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    command(g, "status", "a job's progress and outputs", show(lambda sy, a: sy.get_job(a.job_id))).add_argument(
        "job_id")
    p = command(g, "wait", "wait for a job to end, with a progress bar", synthetic_wait)
    p.add_argument("job_id")
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p = command(g, "rows", "a page of a job's rows", show(lambda sy, a: sy.job_rows(
        a.job_id, offset=a.offset, limit=a.limit, failures=a.failures or None)))
    p.add_argument("job_id")
    p.add_argument("--offset", type=int)
    p.add_argument("--limit", type=int)
    p.add_argument("--failures", action="store_true")
    command(g, "card", "a job's dataset card (Markdown)",
            lambda sy, a: _write(sy.job_card(a.job_id), None)).add_argument("job_id")
    p = command(g, "review", "set a job's human-review block", show(lambda sy, a: sy.review_job(
        a.job_id, reviewer=a.reviewer, notes=a.notes)))
    p.add_argument("job_id")
    p.add_argument("--reviewer", required=True)
    p.add_argument("--notes")
    command(g, "cancel", "stop a running job", show(lambda sy, a: sy.cancel_job(a.job_id))).add_argument("job_id")

    # audit
    g = group("audit", "the audit log")
    p = command(g, "list", "management actions, newest first", show(lambda sy, a: sy.audit(
        from_=a.from_, to=a.to, action=a.action, actor=a.actor, target=a.target, limit=a.limit, cursor=a.cursor)))
    e = command(g, "export", "every matching entry, as JSON lines or CSV", lambda sy, a: _write(sy.export_audit(
        format=a.format, from_=a.from_, to=a.to, action=a.action, actor=a.actor, target=a.target), a.output))
    for q in (p, e):
        q.add_argument("--from", dest="from_", metavar="TIME")
        q.add_argument("--to", metavar="TIME")
        q.add_argument("--action")
        q.add_argument("--actor")
        q.add_argument("--target")
    p.add_argument("--limit", type=int)
    p.add_argument("--cursor")
    e.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    e.add_argument("-o", "--output")
    command(g, "verify", "check the hash chain",
            show(lambda sy, a: sy.verify_audit(anchor=a.anchor))).add_argument("--anchor")
    p = command(g, "calls", "a key's calls: source IP, user agent, model, tokens, cost",
                show(lambda sy, a: sy.audit_calls(a.key_hash, from_=a.from_, to=a.to, limit=a.limit)))
    p.add_argument("key_hash")
    p.add_argument("--from", dest="from_", metavar="TIME")
    p.add_argument("--to", metavar="TIME")
    p.add_argument("--limit", type=int)

    # governance
    g = group("governance", "model approval and data residency")
    command(g, "show", "the organisation's settings", show(lambda sy, a: sy.governance()))
    p = command(g, "set", "change them", show(lambda sy, a: sy.put_governance(
        model_approval=a.model_approval, residency=a.residency, lift_residency=a.lift_residency)))
    p.add_argument("--model-approval", choices=["on", "off"])
    p.add_argument("--residency", action="append", metavar="REGION")
    p.add_argument("--lift-residency", action="store_true")
    command(g, "approvals", "models asked for and decided",
            show(lambda sy, a: sy.list_approvals(status=a.status))).add_argument("--status")
    for verb in ("approve", "reject"):
        p = command(g, verb, f"{verb} a model", show(lambda sy, a, verb=verb: sy.decide_approval(
            a.model_id, verb, note=a.note)))
        p.add_argument("model_id")
        p.add_argument("--note")
    p = command(g, "revoke", "withdraw a model's approval",
                show(lambda sy, a: sy.revoke_approval(a.model_id, note=a.note)))
    p.add_argument("model_id")
    p.add_argument("--note")

    # calls
    p = groups.add_parser("generation", help="a call's stats by its id")
    p.add_argument("generation_id")
    p.set_defaults(run=show(lambda sy, a: sy.get_generation(a.generation_id)))
    p = groups.add_parser("chat", help="one chat completion (no streaming), to try a model")
    p.add_argument("model")
    p.add_argument("prompt")
    p.add_argument("--max-tokens", type=int)
    p.set_defaults(run=lambda sy, a: print(sy.chat(a.model, [{"role": "user", "content": a.prompt}],
                                                   **({"max_tokens": a.max_tokens} if a.max_tokens else {}))
                                           ["choices"][0]["message"]["content"]))
    return top


def main(argv: list[str] | None = None) -> int:
    import yaml

    args = parser().parse_args(argv)
    try:
        with Client(args.base_url, args.key, timeout=args.timeout) as sy:
            args.run(sy, args)
    except BrokenPipeError:  # `switchyard ... | head`: the reader has gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except APIError as e:
        print(f"switchyard: error: {e.status}: {e.message}" if e.status else f"switchyard: error: {e.message}",
              file=sys.stderr)
        return 1
    except (OSError, ValueError, yaml.YAMLError) as e:  # a file not read or parsed, a malformed model id
        print(f"switchyard: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
