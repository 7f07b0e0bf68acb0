"""`switchyard`: the management API from a shell. Answers are printed as JSON; an error answer as one line
(`switchyard: error: <status>: <message>`) with exit status 1.

Config: SWITCHYARD_BASE_URL (default http://127.0.0.1:8080) and SWITCHYARD_API_KEY, or --base-url and --key.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from switchyard_client.client import DEFAULT_BASE_URL, APIError, Client
from switchyard_client.commands import (
    catalog_load,
    keys_create,
    keys_update,
    pairs,
    providers_add_local,
    rankings_run,
    read_document,
    show_json,
    submission,
    synthetic_submit,
    synthetic_wait,
    write_bytes,
)

EPILOG = """examples:
  switchyard keys create ci-bot --limit 5 --allowed-model 'sim/*'
  switchyard catalog load my-catalog.yaml
  switchyard providers add-local vllm --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct
  switchyard analytics usage --group-by model --from 2026-01-01
  switchyard synthetic submit --template legal-clauses --num-records 20 --wait

Run `switchyard COMMAND --help` for a command's options."""


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
        return lambda sy, a: show_json(call(sy, a))

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
            show(lambda sy, a: sy.put_provider(read_document(a.file)))).add_argument("file")
    command(g, "delete-provider", "remove a provider added through the API",
            show(lambda sy, a: sy.delete_provider(a.provider_id))).add_argument("provider_id")
    command(g, "put-model", "add or replace a model endpoint from a YAML/JSON file",
            show(lambda sy, a: sy.put_model(read_document(a.file)))).add_argument("file")
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
            show(lambda sy, a: sy.put_route(read_document(a.file)))).add_argument("file")
    command(g, "delete", "remove a policy", show(lambda sy, a: sy.delete_route(a.model_id))).add_argument("model_id")

    # analytics
    g = group("analytics", "usage analytics, exports, activity and credits")
    p = command(g, "usage", "calls, tokens, cost, success rate and latency, grouped and bucketed",
                show(lambda sy, a: sy.analytics(from_=a.from_, to=a.to, group_by=a.group_by,
                                                granularity=a.granularity, limit=a.limit, **pairs(a.filter))))
    for q in (p, e := command(g, "export", "the same rows as CSV or Parquet", lambda sy, a: write_bytes(
            sy.export_analytics(format=a.format, from_=a.from_, to=a.to, group_by=a.group_by,
                                granularity=a.granularity, **pairs(a.filter)), a.output))):
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
                             show(lambda sy, a: sy.preview_job(submission(a))))):
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
            lambda sy, a: write_bytes(sy.job_card(a.job_id), None)).add_argument("job_id")
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
    e = command(g, "export", "every matching entry, as JSON lines or CSV", lambda sy, a: write_bytes(sy.export_audit(
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
