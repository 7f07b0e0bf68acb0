"""Create a management key in a deployed stack (the first one cannot come through the API).

    python -m infra.admin_key --stack switchyard [--name "ops"]

Reads the table names and the pepper secret from the stack's resources, creates the key and prints it once.
Needs AWS credentials that may read the stack, the pepper secret, and write the keys table.
With that first key, further ones come through the API: `switchyard keys create NAME --management` (sdk/).
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the CloudFormation stack deployed from template.yaml")
    parser.add_argument("--name", default="admin")
    args = parser.parse_args()

    from botocore.session import get_session

    resources = get_session().create_client("cloudformation").describe_stack_resources(StackName=args.stack)
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources["StackResources"]}
    os.environ.update({"KEYS_TABLE": physical["KeysTable"], "COUNTERS_TABLE": physical["CountersTable"],
                       "PEPPER_SECRET_ID": physical["PepperSecret"]})
    os.environ.pop("SWITCHYARD_PEPPER", None)

    from shared.aws.secrets import pepper
    from shared.config import get_settings
    from shared.keys import DynamoKeyStore

    settings = get_settings()
    token, key = DynamoKeyStore(settings.keys_table, settings.counters_table, pepper).create(args.name, kind="management")
    print(f"management key {key.key_id} ({key.label}), shown once:\n{token}")


if __name__ == "__main__":
    main()
