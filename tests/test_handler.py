"""The Lambda handler with real API Gateway events (HTTP API v2 and REST v1) under moto."""

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

EVENTS = Path(__file__).parent / "events"


@dataclass
class LambdaContext:
    function_name: str = "switchyard-gateway"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:switchyard-gateway"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load(name):
    return json.loads((EVENTS / name).read_text())


def body_of(response):
    raw = response["body"]
    return json.loads(base64.b64decode(raw) if response.get("isBase64Encoded") else raw)


@pytest.fixture
def handler(gateway):
    from functions.gateway.handler import handler
    return handler


@pytest.mark.parametrize("event", ["http_api_v2.json", "rest_api_v1.json"])
def test_models_through_api_gateway_events(handler, event):
    response = handler(load(event), LambdaContext())
    assert response["statusCode"] == 200
    assert any(m["id"] == "sim/fast" for m in body_of(response)["data"])


def test_chat_through_http_api_meters_before_returning(handler, gateway, keys):
    event = copy.deepcopy(load("http_api_v2.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/v1/chat/completions"
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"].update({"authorization": f"Bearer {keys['dev']}", "content-type": "application/json",
                             "x-title": "lambda-test"})
    event["body"] = json.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]})
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 200
    gen_id = body_of(response)["id"]
    assert gateway.meter.backlog == 0  # written before the function returned
    record = gateway.usage.get(gen_id)
    assert record["app"] == "lambda-test" and record["client_ip"] == "203.0.113.7"


def test_a_call_ends_by_the_invocation_deadline_and_is_metered_in_time(handler, gateway, keys, monkeypatch):
    """The invocation has the metering margin plus 0.2 s left; sim/long-context takes 0.4 s to answer."""
    event = copy.deepcopy(load("http_api_v2.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/v1/chat/completions"
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"].update({"authorization": f"Bearer {keys['dev']}", "content-type": "application/json"})
    event["body"] = json.dumps({"model": "sim/long-context", "messages": [{"role": "user", "content": "hi"}]})
    recorded = []
    record_of = gateway.meter.record
    monkeypatch.setattr(gateway.meter, "record", lambda e: (recorded.append(e.id), record_of(e)))
    margin_ms = int(gateway.settings.lambda_deadline_margin_seconds * 1000)
    response = handler(event, LambdaContext(remaining_ms=margin_ms + 200))
    assert response["statusCode"] == 504 and body_of(response)["error"]["code"] == 504
    assert gateway.meter.backlog == 0
    record = gateway.usage.get(recorded[-1])
    assert record["status"] == "failed" and int(record["error_code"]) == 504


def test_errors_keep_their_shape_through_the_handler(handler):
    event = copy.deepcopy(load("http_api_v2.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/api/v1/chat/completions"
    event["requestContext"]["http"]["method"] = "POST"
    event["body"] = "{}"
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 401 and body_of(response)["error"]["code"] == 401


@pytest.mark.parametrize("event_file", ["http_api_v2.json", "rest_api_v1.json"])
def test_allowed_ips_read_api_gateways_source_ip_not_forwarded_headers(handler, gateway, event_file):
    token, _ = gateway.keys.create("office", allowed_ips=("203.0.113.0/24",))
    outsider, _ = gateway.keys.create("vpn", allowed_ips=("10.0.0.0/8",))

    def call(key, **headers):
        event = copy.deepcopy(load(event_file))
        path = "/api/v1/chat/completions"
        if "rawPath" in event:
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
            event["requestContext"]["http"]["method"] = "POST"
        else:
            event["path"] = event["requestContext"]["path"] = path
            event["httpMethod"] = event["requestContext"]["httpMethod"] = "POST"
            event.pop("multiValueHeaders", None)
        event["headers"].update({"authorization": f"Bearer {key}", "content-type": "application/json", **headers})
        event["body"] = json.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]})
        event["isBase64Encoded"] = False
        return handler(event, LambdaContext())

    assert call(token)["statusCode"] == 200
    refused = call(outsider, **{"x-forwarded-for": "10.0.0.1"})  # a header names an allowed address: not believed
    assert refused["statusCode"] == 403
    assert body_of(refused)["error"]["metadata"]["client_ip"] == "203.0.113.7"
