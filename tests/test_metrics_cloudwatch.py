"""On Lambda the metrics go to CloudWatch as EMF, once an invocation (functions/gateway/cloudwatch.py), and the
dashboard in template.yaml graphs only metrics the handler emits, with the dimensions it emits them with."""

from __future__ import annotations

import copy
import json
import re

import pytest

from functions.gateway import cloudwatch
from infra.template import load
from tests.test_handler import LambdaContext
from tests.test_handler import load as load_event


def chat_event(key: str, body: dict) -> dict:
    event = copy.deepcopy(load_event("http_api_v2.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/v1/chat/completions"
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"].update({"authorization": f"Bearer {key}", "content-type": "application/json"})
    event["body"] = json.dumps(body)
    return event


def documents(out: str) -> list[dict]:
    """The EMF documents printed: {"dimensions": [...], "values": {name: value or [values]}}."""
    found = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Switchyard"
        names = [m["Name"] for m in directive["Metrics"]]
        values = {n: doc[n][0] if isinstance(doc[n], list) and len(doc[n]) == 1 else doc[n] for n in names}
        found.append({"dimensions": sorted(directive["Dimensions"][0]), "values": values,
                      "labels": {d: doc[d] for d in directive["Dimensions"][0]}})
    return found


def per_call(docs: list[dict], model: str) -> dict:
    (doc,) = [d for d in docs if d["labels"].get("model") == model]
    return doc["values"]


@pytest.fixture
def handler(gateway):
    """The Lambda handler, with the main thread's event loop Mangum asks for (an earlier test's asyncio.run may
    have left none: a Lambda process starts with one)."""
    import asyncio

    from functions.gateway.handler import handler

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield handler
    asyncio.set_event_loop(None)
    loop.close()


def test_each_invocation_emits_its_call_and_what_changed(handler, keys, capsys):
    hi = [{"role": "user", "content": "hi"}]
    response = handler(chat_event(keys["dev"], {"model": "sim/fast", "messages": hi}), LambdaContext())
    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    docs = documents(capsys.readouterr().out)
    fast = per_call(docs, "sim/fast")
    assert fast["switchyard_requests"] == 1 and fast["switchyard_request_errors"] == 0
    assert fast["gen_ai_client_token_usage_input"] == answer["usage"]["prompt_tokens"]
    assert fast["gen_ai_client_token_usage_output"] == answer["usage"]["completion_tokens"]
    assert fast["switchyard_cost_usd"] == pytest.approx(answer["usage"]["cost"])
    assert 0 < fast["gen_ai_client_operation_duration"] < 30
    assert "gen_ai_server_time_to_first_token" not in fast  # not streamed
    process = [d for d in docs if d["dimensions"] == ["service"] and "switchyard_metering_backlog" in d["values"]]
    assert process and process[0]["values"]["switchyard_metering_backlog"] == 0  # written before the emit

    streamed = handler(chat_event(keys["dev"], {"model": "sim/fast", "messages": hi, "stream": True}), LambdaContext())
    assert streamed["statusCode"] == 200
    fast = per_call(documents(capsys.readouterr().out), "sim/fast")
    assert fast["switchyard_requests"] == 1 and fast["gen_ai_server_time_to_first_token"] >= 0
    assert "gen_ai_server_time_per_output_token" in fast

    down = handler(chat_event(keys["dev"], {"model": "sim/down", "messages": hi}), LambdaContext())
    assert down["statusCode"] == 502
    docs = documents(capsys.readouterr().out)
    assert per_call(docs, "sim/down")["switchyard_request_errors"] == 1
    (upstream,) = [d for d in docs if cloudwatch.UPSTREAM_ERRORS in d["values"]]
    assert upstream["labels"]["provider"] == "sim" and upstream["labels"]["error_type"] == "provider_overloaded"
    assert upstream["values"][cloudwatch.UPSTREAM_ERRORS] == 2  # the attempt and its retry, this invocation only


def test_a_refused_call_names_no_model_it_made_up(handler, keys, capsys):
    response = handler(chat_event(keys["dev"], {"model": "made-up/" + "x" * 40, "messages": [{"role": "user", "content": "hi"}]}), LambdaContext())
    assert response["statusCode"] == 404
    docs = documents(capsys.readouterr().out)
    (call,) = [d for d in docs if "switchyard_requests" in d["values"]]
    assert call["labels"]["model"] == "other" and call["labels"]["provider"] == "none"


def _dashboard_metrics() -> tuple[set[str], set[tuple[str, ...]]]:
    body = load()["Resources"]["GatewayDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    board = json.loads(body.replace("${AWS::Region}", "us-east-1"))
    names, schemas = set(), set()
    for widget in board["widgets"]:
        for metric in widget["properties"]["metrics"]:
            if isinstance(metric[0], dict):  # an expression
                for schema, name in re.findall(r"\{Switchyard,([^}]*)\} MetricName=\\?\"(\w+)", metric[0]["expression"]):
                    names.add(name)
                    schemas.add(tuple(sorted(schema.split(","))))
            else:
                assert metric[0] == "Switchyard"
                names.add(metric[1])
                schemas.add(tuple(sorted(metric[2:-1:2])))
    return names, schemas


def test_the_dashboard_graphs_only_metrics_the_handler_emits(handler, keys, capsys):
    names, schemas = _dashboard_metrics()
    assert names <= {*cloudwatch.METRICS, "UsageRecordsWritten"}, names - set(cloudwatch.METRICS)
    for wanted in ("switchyard_requests", "gen_ai_client_operation_duration", "gen_ai_server_time_to_first_token",
                   "switchyard_cost_usd", cloudwatch.UPSTREAM_ERRORS, cloudwatch.RATE_LIMIT_REFUSALS,
                   "switchyard_metering_backlog", "switchyard_metering_dead_letters"):
        assert wanted in names
    hi = [{"role": "user", "content": "hi"}]
    for body in ({"model": "sim/fast", "messages": hi}, {"model": "sim/down", "messages": hi}):
        handler(chat_event(keys["dev"], body), LambdaContext())
    emitted = {(name, tuple(d["dimensions"])) for d in documents(capsys.readouterr().out) for name in d["values"]}
    emitted_schemas = {dims for _, dims in emitted}
    assert schemas <= emitted_schemas | {("limit", "service")}  # (refusals: tests/test_metrics.py covers the limiter)
    for name in ("switchyard_requests", "switchyard_request_errors", "gen_ai_client_operation_duration",
                 "switchyard_cost_usd", cloudwatch.UPSTREAM_ERRORS, "switchyard_metering_backlog", "UsageRecordsWritten"):
        assert any(n == name for n, _ in emitted), name
