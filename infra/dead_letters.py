"""List or replay the usage records metering set aside (dead letters), e.g. after fixing what refused them.

    python -m infra.dead_letters --stack switchyard            # list
    python -m infra.dead_letters --stack switchyard --replay   # write them again; those that land are deleted
    python -m infra.dead_letters --usage-table T --counters-table C [--replay]

A replayed record is written exactly as metering writes it (with its spend and hold), and never twice.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from shared.errors import StorageError
from shared.metering import DeadLetters, DynamoUsageStore


def _tables(args: argparse.Namespace) -> tuple[str, str]:
    if args.usage_table and args.counters_table:
        return args.usage_table, args.counters_table
    from botocore.session import get_session

    cfn = get_session().create_client("cloudformation")
    found = {r["LogicalResourceId"]: r["PhysicalResourceId"]
             for r in cfn.describe_stack_resources(StackName=args.stack)["StackResources"]}
    return found["UsageTable"], found["CountersTable"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="the CloudFormation stack deployed from template.yaml")
    parser.add_argument("--usage-table")
    parser.add_argument("--counters-table")
    parser.add_argument("--replay", action="store_true", help="write them again; delete those that land")
    args = parser.parse_args(argv)
    if not args.stack and not (args.usage_table and args.counters_table):
        parser.error("name a --stack, or both --usage-table and --counters-table")
    usage, counters = _tables(args)
    letters = DeadLetters(counters, retention_days=400)
    try:
        if not args.replay:
            for letter in letters.list():
                print(orjson.dumps(letter).decode())
            return 0
        landed, failed = letters.replay(DynamoUsageStore(usage, counters, retention_days=400))
    except StorageError as e:
        print(f"storage unavailable: {e.message}", file=sys.stderr)
        return 1
    print(f"{landed} replayed, {len(failed)} still refused")
    for record_id, error in failed:
        print(f"  {record_id}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
