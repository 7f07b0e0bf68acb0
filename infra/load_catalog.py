"""Load a catalog file (providers, models, routing policies; hidden model ids) into a stack's catalog table.

    python -m infra.load_catalog my-catalog.yaml --stack switchyard     # a deployed stack
    python -m infra.load_catalog my-catalog.yaml --stack switchyard --region eu-west-1
    python -m infra.load_catalog my-catalog.yaml --table switchyard-catalog
    python -m infra.load_catalog --hide openai/gpt-4 --show openai/gpt-4o --stack switchyard
    ... [--quiet | --progress]      (a progress bar of the entries written when stdout is a terminal)

The region is --region, else the one the AWS configuration names (AWS_REGION, AWS_DEFAULT_REGION, the
profile), else us-east-1 (the template's default deploy region), said on stderr.

The file has SWITCHYARD_CONFIG's shape. Everything is validated before anything is written; each entry then
adds or replaces the one of the same id (the same as `PUT /api/v1/catalog/...` and `PUT /api/v1/routes`), and
every gateway process picks the change up within its catalog refresh interval (30 s): no deploy. Models must
name a provider that exists (built in, in the file, or already in the table).

This writes the table directly (AWS credentials, none of the catalog API's limits). Against a running stack with
a management key, `switchyard catalog load my-catalog.yaml` (sdk/) does the same through the API.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import yaml
from pydantic import ValidationError

from pipelines.progress import Progress, add_arguments, wanted
from shared.catalog import BUILTIN, CatalogError, load_catalog
from shared.catalog.schema import CatalogFile
from shared.catalog.store import CatalogStore, DynamoCatalogStore
from shared.errors import StorageError


def entries(file: CatalogFile, *, hide: list[str] = (), show: list[str] = ()) -> int:
    """How many writes `load` makes (a progress bar's total)."""
    return len(file.providers) + len(file.models) + len(file.routes) + len(hide) + len(show)


def load(store: CatalogStore, file: CatalogFile, *, hide: list[str] = (), show: list[str] = (),
         on_written: Callable[[str], None] | None = None) -> dict[str, int]:
    """Validate against what the table already holds, then write (`on_written` is told each id written).
    Returns how many of each were written."""
    existing, hidden = store.load()
    known = {p.id for p in CatalogFile.model_validate(yaml.safe_load(BUILTIN.read_text())).providers}
    known |= {p.id for p in existing.providers} | {p.id for p in file.providers}
    unknown = sorted({f"{m.id} → {m.provider}" for m in file.models if m.provider not in known})
    if unknown:
        raise CatalogError(f"models name unknown providers: {', '.join(unknown)}")
    merged = CatalogFile(providers=existing.providers + file.providers, models=existing.models + file.models,
                         routes=existing.routes + file.routes)
    catalog = load_catalog(overrides=merged, hidden=hidden | set(hide))
    missing = catalog.unknown({m for r in file.routes for m in r.models()})
    if missing:
        raise CatalogError(f"routing policies name unknown models: {', '.join(missing)}")
    written = on_written or (lambda entry: None)
    for p in file.providers:
        store.put_provider(p)
        written(p.id)
    for m in file.models:
        store.put_model(m)
        written(m.id)
    for r in file.routes:
        store.put_route(r)
        written(r.id)
    for model_id in hide:
        store.set_hidden(model_id, True)
        written(model_id)
    for model_id in show:
        store.set_hidden(model_id, False)
        written(model_id)
    return {"providers": len(file.providers), "models": len(file.models), "routes": len(file.routes),
            "hidden": len(hide), "shown": len(show)}


DEFAULT_REGION = "us-east-1"


def _region(chosen: str | None) -> str:
    """The region to work in, made the process's default (the catalog table's client reads it from there)."""
    from botocore.session import get_session

    region = chosen or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") \
        or get_session().get_config_variable("region")
    if not region:
        region = DEFAULT_REGION
        print(f"no AWS region configured: using {region} (--region picks another)", file=sys.stderr)
    os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = region
    return region


def _table(args: argparse.Namespace, region: str) -> str:
    if args.table:
        return args.table
    from botocore.session import get_session

    resources = get_session().create_client("cloudformation", region_name=region).describe_stack_resources(
        StackName=args.stack, LogicalResourceId="CatalogTable")
    return resources["StackResources"][0]["PhysicalResourceId"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, help="a catalog YAML (SWITCHYARD_CONFIG's shape)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="the CloudFormation stack deployed from template.yaml")
    where.add_argument("--table", help="the catalog table's name")
    parser.add_argument("--region", help="the stack's AWS region (default: the AWS configuration's, else "
                                              f"{DEFAULT_REGION})")
    parser.add_argument("--hide", action="append", default=[], metavar="MODEL_ID")
    parser.add_argument("--show", action="append", default=[], metavar="MODEL_ID")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        file = CatalogFile.model_validate(yaml.safe_load(args.file.read_text()) or {}) if args.file else CatalogFile()
        store = DynamoCatalogStore(_table(args, _region(args.region)))
        with Progress(entries(file, hide=args.hide, show=args.show), desc="catalog", unit="entry",
                      show=wanted(args)) as bar:
            written = load(store, file, hide=args.hide, show=args.show, on_written=lambda e: bar.advance(entry=e))
    except (OSError, yaml.YAMLError, ValidationError, CatalogError, StorageError, BotoCoreError, ClientError) as e:
        print(f"nothing written: {e}", file=sys.stderr)
        return 1
    print(", ".join(f"{n} {what}" for what, n in written.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
