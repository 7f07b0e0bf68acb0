"""What the Lambda package runs, from an environment holding only the runtime dependencies: `make test` builds
it from the lock (`uv sync --frozen --no-dev`, no extras: the `local` extra's moto pulls in jsonschema and would
hide its absence) and runs `python -m tests.runtime_smoke` in it.

Every module of functions/ and shared/ imports; a json_schema request is checked at the boundary and its
answer checked by healing (the paths that import jsonschema on first use); the Lambda handler answers an API
Gateway event. A package used at run time but declared only for development fails here, as on Lambda. No
pytest and no AWS: the dev group is not installed (tests/test_handler.py runs the handler against moto).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import pkgutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
          "required": ["answer", "score"]}


class LambdaContext:
    function_name, memory_limit_in_mb, aws_request_id = "gateway", 1024, "smoke"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:gateway"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


# The lake's modules need the `lake` extra (duckdb, pyarrow): the functions packaged with it import them.
LAKE_ONLY = ("shared.lake.", "shared.rankings.", "functions.usage_export.")


def import_everything(*, lake: bool) -> int:
    count = 0
    for package in ("functions", "shared"):
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not lake and module.name.startswith(LAKE_ONLY):
                continue
            importlib.import_module(module.name)
            count += 1
    return count


def check_lake(root: Path) -> None:
    """The stream consumer writes a batch, compaction merges it, the analytics query reads it back."""
    from functions.usage_export.handler import handler
    from shared.lake import analytics
    from shared.lake.compact import compact_day
    from shared.lake.query import LakeQuery
    from shared.lake.store import LocalStore
    from tests.lake_fixtures import fixture_records, stream_batch

    records = fixture_records()
    for start in (0, 5):
        answer = handler({"Records": stream_batch(records[start:start + 5], 100 + start)}, LambdaContext())
        assert answer == {"batchItemFailures": []}, answer
    store = LocalStore(root)
    assert compact_day(store, "2025-12-02").rows == 8
    query = analytics.parse({"from": "2025-12-01", "to": "2025-12-03", "group_by": "model"})
    rows, _ = analytics.usage_rows(LakeQuery(store), query)
    assert sum(r["calls"] for r in rows) == 10, rows  # both days
    from functions.rankings.handler import handler as rankings

    from shared.config import get_settings

    os.environ["SWITCHYARD_RANKINGS_URI"] = str(root / "published")
    get_settings.cache_clear()
    assert rankings({"date": "2025-12-02"}, LambdaContext())["models"] == 2


def check_schemas() -> None:
    from shared.chat.schema import parse_chat_request
    from shared.errors import BadRequestError
    from shared.healing.completion import heal_completion

    def request(schema: dict) -> bytes:
        return json.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}],
                           "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
                           }).encode()

    assert parse_chat_request(request(SCHEMA)).json_schema == SCHEMA
    try:
        parse_chat_request(request({"type": 5}))
    except BadRequestError as e:
        assert e.metadata["field"] == "response_format.json_schema.schema", e.metadata
    else:
        raise AssertionError("an invalid schema was accepted")
    for content, valid in (('{"answer": "yes", "score": 3,}', True), ('{"answer": "yes"}', False)):
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
        report = heal_completion(body, content=True, tool_arguments=False, schema=SCHEMA)
        assert report.schema_valid is valid, report


def check_handler() -> None:
    from functions.gateway.handler import handler

    event = copy.deepcopy(json.loads((ROOT / "tests/events/http_api_v2.json").read_text()))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/health"
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 200, response


def main() -> None:
    import sys
    import tempfile

    lake = "--lake" in sys.argv[1:]
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "smoke",  # and no AWS reached
                       "AWS_SECRET_ACCESS_KEY": "smoke", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                       "POWERTOOLS_METRICS_NAMESPACE": "Switchyard"})  # as template.yaml sets it
    if lake:
        root = Path(tempfile.mkdtemp(prefix="switchyard-lake-smoke-"))
        os.environ.update({"SWITCHYARD_LAKE_URI": str(root), "SWITCHYARD_PEPPER": "smoke-pepper"})
    modules = import_everything(lake=lake)
    check_schemas()
    check_handler()
    if lake:
        check_lake(root)
    print(f"runtime smoke{' (lake)' if lake else ''}: {modules} modules import, json_schema requests are checked "
          f"and healed, the handler answers{'; a stream batch reaches the lake and the analytics' if lake else ''}")


if __name__ == "__main__":
    main()
