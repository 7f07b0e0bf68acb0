"""The CLI's commands that do more than one call or print more than one answer (the others are one SDK call
each, in cli.py): bulk key creation, loading a catalog file, registering a local server, waiting for a job."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from switchyard_client.client import APIError, Client
from switchyard_client.progress import bar


def show_json(value: Any) -> None:
    if isinstance(value, bytes):
        sys.stdout.buffer.write(value)
    else:
        print(json.dumps(value, indent=2, ensure_ascii=False))


def read_document(path: str) -> Any:
    """A JSON or YAML document from a file, or from stdin for `-`."""
    import yaml

    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return yaml.safe_load(text)


def pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"switchyard: error: expected NAME=VALUE, not {item!r}")
        pairs[name] = value
    return pairs


def write_bytes(data: bytes, output: str | None) -> None:
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
        print(created["key"]) if a.secret_only else show_json(created)
        return
    with bar(a.count, "keys", a.progress) as progress:  # one JSON line a key, so that the secrets can be kept
        for n in range(1, a.count + 1):
            created = sy.create_key(f"{a.name}-{n}", **settings)
            print(created["key"] if a.secret_only else json.dumps(created, ensure_ascii=False), flush=True)
            progress.update(1)


def keys_update(sy: Client, a: argparse.Namespace) -> None:
    changes: dict[str, Any] = {k: json.loads(v) for k, v in pairs(a.set).items()}
    for field in ("name", "limit"):
        if getattr(a, field) is not None:
            changes[field] = getattr(a, field)
    if a.disabled is not None:
        changes["disabled"] = a.disabled
    if not changes:
        raise SystemExit("switchyard: error: nothing to change (--name, --limit, --disable, --enable, --set F=JSON)")
    show_json(sy.update_key(a.key_hash, **changes))


# -- catalog ----------------------------------------------------------------------------------------------
def catalog_load(sy: Client, a: argparse.Namespace) -> None:
    """Each entry of a catalog file through the API: providers first, then models, then routing policies."""
    file = (read_document(a.file) or {}) if a.file else {}
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
    show_json({"written": {w: done.get(w, 0) for w in ("provider", "model", "route", "hidden", "shown")}})


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
    show_json({"provider": provider, "models": added})


# -- synthetic ---------------------------------------------------------------------------------------------------
def submission(a: argparse.Namespace) -> dict[str, Any]:
    if a.file:
        body = read_document(a.file)
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
    job = sy.create_job(submission(a))
    if a.wait:
        job = _wait(sy, job["job_id"], a)
    show_json(job)
    if a.wait and job.get("status") != "completed":
        raise APIError(0, f"job {job.get('job_id')} ended {job.get('status')}: {job.get('stopped_reason') or ''}")


def synthetic_wait(sy: Client, a: argparse.Namespace) -> None:
    job = _wait(sy, a.job_id, a)
    show_json(job)
    if job.get("status") != "completed":
        raise APIError(0, f"job {a.job_id} ended {job.get('status')}")


def rankings_run(sy: Client, a: argparse.Namespace) -> None:
    run = sy.run_rankings(a.date)
    if a.wait and run["data"].get("status") in ("queued", "running"):
        with bar(None, f"run {run['data']['id']}", a.progress):
            run = sy.wait_for_rankings_run(run["data"]["id"])
    show_json(run)
