"""What the Lambda package runs, from an environment holding only the runtime dependencies: `make test` builds
it from the lock (`uv sync --frozen --no-dev`, no extras: the `local` extra's moto pulls in jsonschema and would
hide its absence) and runs `python -m tests.runtime_smoke` in it.

Every module of functions/ and shared/ imports; a json_schema request is checked at the boundary and its
answer checked by healing (the paths that import jsonschema on first use); the Lambda handler answers an API
Gateway event. A package used at run time but declared only for development fails here, as on Lambda. No
pytest and no AWS: the dev group is not installed (tests/test_handler.py runs the handler against moto).

`--lake` (the `lake` extra): the lake's functions write, compact and query. `--synthetic` (the `synthetic` extra
alone, what SyntheticFunction and SyntheticWorkerFunction ship: pyarrow without DuckDB): a template job made
row group by row group as the SQS worker makes it (shared/synthetic/fanout.py), its calls answered by the sim
provider in-process instead of the gateway, into a LocalStore, and its card written.
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
# The synthetic engine needs the `synthetic` extra (faker, jinja2, pyarrow; not the lake's duckdb).
SYNTHETIC_ONLY = ("shared.synthetic.",)


def import_everything(*, lake: bool, synthetic: bool = False) -> int:
    count = 0
    for package in ("functions", "shared"):
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not lake and module.name.startswith(LAKE_ONLY):
                continue
            if not synthetic and module.name.startswith(SYNTHETIC_ONLY):
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


class SimGateway:
    """Stands in for the gateway's HTTP (shared/providers/http.py's HTTPClient): each chat completion is the sim
    provider's answer from the built-in catalog, with the model id, usage and id the gateway gives it."""

    def __init__(self) -> None:
        from shared.catalog import load_catalog

        self.catalog, self.calls = load_catalog(), 0

    async def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes = b"", **_: object):
        from shared.chat.schema import parse_chat_request
        from shared.providers.sim import SimProvider

        request = parse_chat_request(body)
        completion = await SimProvider().complete(request, self.catalog.get(request.model).endpoints[0])
        self.calls += 1
        answer = {**completion.body, "id": f"gen-smoke-{self.calls}", "model": request.model, "provider": "sim",
                  "usage": {"prompt_tokens": completion.usage.prompt_tokens,
                            "completion_tokens": completion.usage.completion_tokens, "cost": 0.0}}

        class Response:
            status, headers = 200, {}

            @staticmethod
            async def read(_limit: int | None = None) -> bytes:
                return json.dumps(answer).encode()

        return Response()

    def close(self) -> None:
        pass


def check_synthetic(root: Path) -> int:
    """A template job of two row groups, made group by group as the SQS worker makes them; returns its calls."""
    import asyncio

    import functions.synthetic.handler  # noqa: F401 (SyntheticWorkerFunction's entry point)
    from functions.gateway.routes import synthetic as routes
    from shared.lake.store import LocalStore
    from shared.synthetic import fanout, jobs, templates
    from shared.synthetic.client import GatewayClient

    routes._modules()  # the routes find their extras (a 501 without them)
    store, http = LocalStore(root), SimGateway()
    spec = {**templates.load("legal-clauses"), "num_records": 4, "buffer_size": 2}
    job = jobs.prepare(spec, reader=jobs.SeedReader(store), known_models={m.id for m in http.catalog})
    outputs = jobs.Outputs(store, job.id)
    outputs.put_json("config.json", jobs.config_document(job))
    outputs.put_json("metadata.json", jobs.new_metadata(job, execution="sqs"))
    ends = [asyncio.run(fanout.work(store, job, group, GatewayClient("http://sim/api/v1", "smoke", job.id,
                                                                     http=http)))  # type: ignore[arg-type]
            for group in range(job.plan.groups)]
    assert ends[0] is None and ends[-1] is not None and ends[-1]["status"] == "completed", ends
    rows = jobs.read_rows(store, job.id)
    assert sorted(rows.column("_row").to_pylist()) == [0, 1, 2, 3], rows
    assert jobs.Outputs(store, job.id).group_stats()[-1]["rows"] == 2
    card = (root / jobs.PREFIX / job.id / "README.md").read_text()
    assert card.startswith("---\nlicense: ") and "License-Safe" in card, card[:400]
    return http.calls


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
    # the dashboard's static files (functions/gateway/dashboard/, packaged with functions/), under their CSP
    for path, kind in (("/dashboard", "text/html"), ("/dashboard/app.js", "text/javascript")):
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        response = handler(event, LambdaContext())
        assert response["statusCode"] == 200 and response["headers"]["content-type"].startswith(kind), response
        assert "script-src 'self'" in response["headers"]["content-security-policy"], response


def main() -> None:
    import sys
    import tempfile

    lake, synthetic = "--lake" in sys.argv[1:], "--synthetic" in sys.argv[1:]
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "smoke",  # and no AWS reached
                       "AWS_SECRET_ACCESS_KEY": "smoke", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                       "POWERTOOLS_METRICS_NAMESPACE": "Switchyard"})  # as template.yaml sets it
    if lake or synthetic:
        root = Path(tempfile.mkdtemp(prefix="switchyard-lake-smoke-"))
        os.environ.update({"SWITCHYARD_LAKE_URI": str(root), "SWITCHYARD_PEPPER": "smoke-pepper"})
    modules = import_everything(lake=lake, synthetic=synthetic)
    check_schemas()
    check_handler()
    if synthetic:
        calls = check_synthetic(root)
        print(f"runtime smoke (synthetic): {modules} modules import, the handler answers; a template job of two "
              f"row groups made as the worker makes them ({calls} sim calls), its parts and card written")
        return
    if lake:
        check_lake(root)
    print(f"runtime smoke{' (lake)' if lake else ''}: {modules} modules import, json_schema requests are checked "
          f"and healed, the handler answers{'; a stream batch reaches the lake and the analytics' if lake else ''}")


if __name__ == "__main__":
    main()
