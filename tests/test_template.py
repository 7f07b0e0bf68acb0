"""template.yaml lints clean, and what is derived from it or from the lock stays in step."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert set(tables) == {"KeysTable", "UsageTable", "CountersTable", "CatalogTable"}
    for props in tables.values():
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert tables["UsageTable"]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    assert tables["CountersTable"]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
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
    assert {"KEYS_TABLE", "USAGE_TABLE", "COUNTERS_TABLE", "CATALOG_TABLE", "DATA_BUCKET"} <= set(env)


def test_lambda_requirements_are_derived_from_the_lock():
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed (make test provides it)"
    exported = subprocess.run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
                               "--format", "requirements-txt"], capture_output=True, text=True, cwd=ROOT, check=True)
    body = lambda text: [l for l in text.splitlines() if l and not l.startswith("#")]  # noqa: E731
    assert body(exported.stdout) == body((ROOT / "requirements.txt").read_text()), "run `make requirements`"


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
    stream = resources["UsageTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_IMAGE"}
    source = resources["UsageExportFunction"]["Properties"]["Events"]["UsageStream"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
