"""Read template.yaml: the tables and buckets it declares and the environment it gives the gateway.

The local stack and the tests create their resources from here, so they cannot drift from what deploys.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation short-form tags (!Ref, !GetAtt…) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@lru_cache(maxsize=4)
def load(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def _resources(kind: str, path: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in load(path)["Resources"].items() if r["Type"] == kind}


def table_specs(prefix: str = "", path: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """{logical id: create_table kwargs} for every DynamoDB table, named `prefix + logical id`."""
    specs = {}
    for name, p in _resources("AWS::DynamoDB::Table", path).items():
        spec: dict[str, Any] = {
            "TableName": prefix + name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if p.get("GlobalSecondaryIndexes"):
            spec["GlobalSecondaryIndexes"] = [
                {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                for gsi in p["GlobalSecondaryIndexes"]]
        if p.get("StreamSpecification"):
            spec["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
        spec["_ttl"] = p.get("TimeToLiveSpecification")
        specs[name] = spec
    return specs


def bucket_names(prefix: str = "", path: Path = TEMPLATE) -> dict[str, str]:
    """{logical id: local bucket name} (bucket names must be lower case)."""
    return {name: (prefix + name).lower() for name in _resources("AWS::S3::Bucket", path)}


def gateway_environment(names: dict[str, str], path: Path = TEMPLATE) -> dict[str, str]:
    """The Globals environment, with `!Ref` to a table or bucket replaced by its local name.

    Values that refer to anything else (the pepper secret, parameters, conditions) are left out: the local
    stack sets those itself.
    """
    env = load(path)["Globals"]["Function"]["Environment"]["Variables"]
    out = {}
    for var, value in env.items():
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in names:
            out[var] = names[value["Ref"]]
        elif isinstance(value, str):
            out[var] = value
    return out


def create_resources(prefix: str = "", path: Path = TEMPLATE) -> dict[str, str]:
    """Create every table and bucket of the template (in moto or wherever boto3 points); {logical id: name}."""
    import boto3

    ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    names: dict[str, str] = {}
    existing = set(ddb.list_tables()["TableNames"])
    for logical, spec in table_specs(prefix, path).items():
        spec = dict(spec)
        ttl = spec.pop("_ttl")
        names[logical] = spec["TableName"]
        if spec["TableName"] in existing:
            continue
        ddb.create_table(**spec)
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(TableName=spec["TableName"], TimeToLiveSpecification=ttl)
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for logical, bucket in bucket_names(prefix, path).items():
        names[logical] = bucket
        if bucket not in buckets:
            s3.create_bucket(Bucket=bucket)
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    return names
