"""template.yaml lints clean, and what is derived from it or from the lock stays in step."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.template import bucket_names, gateway_environment, load, table_specs

ROOT = Path(__file__).resolve().parent.parent


def test_cfn_lint_reports_no_error():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), "--format", "parseable", str(ROOT / "template.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tables_have_on_demand_billing_pitr_and_ttl_where_records_expire():
    resources = load()["Resources"]
    tables = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {"KeysTable", "UsageTable", "CountersTable", "CatalogTable", "AuditTable"}
    for props in tables.values():
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert tables["UsageTable"]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    assert tables["CountersTable"]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    assert "TimeToLiveSpecification" not in tables["AuditTable"]  # audit entries are kept
    assert resources["AuditTable"]["DeletionPolicy"] == "Retain"
    bucket = resources["DataBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]


def test_functions_are_wired_to_the_api_the_policy_and_the_makefile_build():
    resources = load()["Resources"]
    gateway, stream = resources["GatewayFunction"], resources["StreamFunction"]
    assert gateway["Properties"]["Handler"] == "functions.gateway.handler.handler"
    assert gateway["Properties"]["Events"]["Api"]["Type"] == "HttpApi"
    assert gateway["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert stream["Properties"]["FunctionUrlConfig"]["InvokeMode"] == "RESPONSE_STREAM"
    for function in (gateway, stream):
        assert function["Properties"]["Policies"] == [{"Ref": "GatewayPolicy"}]
        assert function["Metadata"] == {"BuildMethod": "makefile"}  # nothing else hides in Metadata


def test_the_gateway_environment_names_every_resource():
    names = {**{k: k for k in table_specs()}, **bucket_names()}
    env = gateway_environment(names)
    assert {"KEYS_TABLE", "USAGE_TABLE", "COUNTERS_TABLE", "CATALOG_TABLE", "AUDIT_TABLE", "DATA_BUCKET"} <= set(env)


def test_the_gateway_may_append_to_the_audit_log_but_not_rewrite_it():
    statements = load()["Resources"]["GatewayPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    audit = [s for s in statements if s["Resource"] == {"Fn::GetAtt": ["AuditTable", "Arn"]}]
    assert len(audit) == 1
    actions = set(audit[0]["Action"])
    assert {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"} <= actions
    assert not actions & {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:Scan", "dynamodb:*"}


@pytest.mark.parametrize(("requirements", "extras"), [("requirements.txt", []), ("requirements-lake.txt", ["lake"]),
                                                     ("requirements-synthetic.txt", ["synthetic"])])
def test_lambda_requirements_are_derived_from_the_lock(requirements, extras):
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed (make test provides it)"
    exported = subprocess.run([uv, "export", "--frozen", "--no-dev", *(f"--extra={e}" for e in extras),
                               "--no-emit-project", "--no-hashes", "--format", "requirements-txt"],
                              capture_output=True, text=True, cwd=ROOT, check=True)
    body = lambda text: [l for l in text.splitlines() if l and not l.startswith("#")]  # noqa: E731
    assert body(exported.stdout) == body((ROOT / requirements).read_text()), "run `make requirements`"


def test_the_gateway_package_stays_lean_and_the_synthetic_one_has_no_duckdb():
    names = lambda f: {l.split("==")[0] for l in (ROOT / f).read_text().splitlines() if "==" in l}  # noqa: E731
    assert not {"pyarrow", "duckdb", "faker", "jinja2"} & names("requirements.txt")
    assert {"pyarrow", "faker", "jinja2"} <= names("requirements-synthetic.txt")
    assert "duckdb" not in names("requirements-synthetic.txt")  # 66 MB: past Lambda's 250 MB with pyarrow


def test_every_function_has_a_makefile_build_and_the_lake_functions_take_the_lake_requirements():
    resources = load()["Resources"]
    makefile = (ROOT / "Makefile").read_text()
    functions = [k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"]
    assert {"AnalyticsFunction", "UsageExportFunction", "LakeMaintenanceFunction", "RankingsFunction"} <= set(functions)
    for name in functions:
        assert resources[name]["Metadata"] == {"BuildMethod": "makefile"}
        assert f"build-{name}" in makefile, name
    lake_line = next(line for line in makefile.splitlines() if "REQUIREMENTS = requirements-lake.txt" in line)
    for name in ("AnalyticsFunction", "UsageExportFunction", "LakeMaintenanceFunction", "RankingsFunction"):
        assert f"build-{name}" in lake_line
    synthetic_line = next(line for line in makefile.splitlines() if "REQUIREMENTS = requirements-synthetic.txt" in line)
    for name in ("SyntheticFunction", "SyntheticWorkerFunction"):
        assert f"build-{name}" in synthetic_line
    stream = resources["UsageTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_IMAGE"}
    source = resources["UsageExportFunction"]["Properties"]["Events"]["UsageStream"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_synthetic_jobs_are_routed_to_their_function_and_fanned_out_through_a_queue():
    from shared.config import Settings

    resources, parameters = load()["Resources"], load()["Parameters"]
    routes = resources["SyntheticFunction"]["Properties"]
    assert routes["Handler"] == "functions.gateway.handler.handler"  # the same app, with the synthetic extra
    assert {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in routes["Events"].values()} == {
        ("/api/v1/synthetic", "ANY"), ("/api/v1/synthetic/{proxy+}", "ANY")}
    assert routes["Environment"]["Variables"]["SWITCHYARD_SYNTHETIC_QUEUE_URL"] == {"Ref": "SyntheticGroupQueue"}
    assert {"Ref": "GatewayPolicy"} in routes["Policies"] and {"Ref": "SyntheticDataPolicy"} in routes["Policies"]
    assert {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["SyntheticGroupQueue", "QueueName"]}}} \
        in routes["Policies"]

    worker = resources["SyntheticWorkerFunction"]["Properties"]
    assert worker["Handler"] == "functions.synthetic.handler.handler" and worker["Timeout"] == 900
    assert "SWITCHYARD_GATEWAY_URL" in worker["Environment"]["Variables"]
    source = worker["Events"]["RowGroups"]
    assert source["Type"] == "SQS" and source["Properties"]["Queue"] == {"Fn::GetAtt": ["SyntheticGroupQueue", "Arn"]}
    assert source["Properties"]["BatchSize"] == 1
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SyntheticWorkerConcurrency"}}
    cap = parameters["SyntheticWorkerConcurrency"]
    assert cap["Type"] == "Number" and cap["MinValue"] >= 2 and cap["MaxValue"] <= 1000  # what SQS sources accept

    queue = resources["SyntheticGroupQueue"]["Properties"]
    assert queue["VisibilityTimeout"] > worker["Timeout"]  # never handed to a second worker while one runs it
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SyntheticGroupFailures", "Arn"]}
    # the worker knows which receive is the last (it fails the job then), and agrees with its default
    assert int(worker["Environment"]["Variables"]["SWITCHYARD_SYNTHETIC_MAX_RECEIVES"]) == redrive["maxReceiveCount"] \
        == Settings.model_fields["synthetic_max_receives"].default
    for name in ("SyntheticGroupQueue", "SyntheticGroupFailures"):
        assert resources[name]["Properties"]["SqsManagedSseEnabled"] is True
    outputs = load()["Outputs"]
    assert outputs["SyntheticQueueUrl"]["Value"] == {"Ref": "SyntheticGroupQueue"}

    data = resources["SyntheticDataPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    written = next(s for s in data if "s3:PutObject" in s["Action"])
    assert written["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/synthetic/*"}  # outputs only, never the lake


def test_no_function_behind_the_http_api_names_it():
    """SAM writes each route's function into HttpApi's definition: a function behind it that named HttpApi too
    would be a circular dependency, which cfn-lint (without the SAM transform) does not see."""
    resources = load()["Resources"]

    def names(value, name: str) -> bool:
        if isinstance(value, dict):
            if value.get("Ref") == name or (value.get("Fn::GetAtt") or [None])[0] == name:
                return True
            sub = value.get("Fn::Sub")
            if isinstance(sub, str) and "${" + name in sub:
                return True
            return any(names(v, name) for v in value.values())
        return isinstance(value, list) and any(names(v, name) for v in value)

    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        behind = any(e.get("Type") == "HttpApi" for e in props.get("Events", {}).values())
        if behind:
            assert not names({k: v for k, v in props.items() if k != "Events"}, "HttpApi"), logical
