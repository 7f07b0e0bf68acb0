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


def import_everything() -> int:
    count = 0
    for package in ("functions", "shared"):
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            importlib.import_module(module.name)
            count += 1
    return count


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
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "smoke",  # and no AWS reached
                       "AWS_SECRET_ACCESS_KEY": "smoke", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                       "POWERTOOLS_METRICS_NAMESPACE": "Switchyard"})  # as template.yaml sets it
    modules = import_everything()
    check_schemas()
    check_handler()
    print(f"runtime smoke: {modules} modules import, json_schema requests are checked and healed, "
          "the handler answers")


if __name__ == "__main__":
    main()
