"""End to end: `python -m infra.local` (what `make run` starts) in its own process, calls through the openai SDK
— answered, streamed, failed upstream, healed, refused by a rate limit — then `GET /metrics` parsed with
prometheus-client's own parser: every count and sum is the calls' own. And the Grafana board asks only for
what the scrape has."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, LocalProcess
from tests.support import api

pytestmark = pytest.mark.e2e
HI = [{"role": "user", "content": "Say hello"}]
BOARD = ROOT / "infra" / "grafana" / "switchyard.json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalProcess]:
    process = LocalProcess(tmp_path_factory.mktemp("metrics-state"), {"SWITCHYARD_LAKE_EXPORT": "0"}).start()
    yield process
    process.stop()


def scrape(stack: LocalProcess, key: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(stack.url + "/metrics", headers=headers), timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def total(found, name: str, **labels: str) -> float:
    return sum(v for sample_labels, v in found.get(name, []) if all(sample_labels.get(k) == x for k, x in labels.items()))


@pytest.fixture(scope="module")
def traffic(stack) -> dict:
    """The calls, once for the module; what their answers said."""
    client = openai.OpenAI(base_url=stack.url + "/api/v1", api_key=stack.key("dev-key"), max_retries=0,
                           default_headers={"X-Title": "metrics-e2e"})
    answers = [client.chat.completions.create(model="sim/fast", messages=HI) for _ in range(3)]
    streamed = client.chat.completions.create(model="sim/fast", messages=HI, stream=True,
                                              stream_options={"include_usage": True})
    chunks = list(streamed)
    stream_usage = chunks[-1].usage
    with pytest.raises(openai.APIStatusError) as down:
        client.chat.completions.create(model="sim/down", messages=HI)
    healed = client.chat.completions.create(model="sim/broken-json", messages=HI,
                                            response_format={"type": "json_object"})
    status, made = api(stack.url, "POST", "/api/v1/keys", stack.key("admin-key"), {"name": "one-a-minute", "rpm": 1})
    assert status == 201, made
    limited = openai.OpenAI(base_url=stack.url + "/api/v1", api_key=made["key"], max_retries=0)
    first = limited.chat.completions.create(model="sim/fast", messages=HI)
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="sim/fast", messages=HI)
    return {"answers": answers, "stream_usage": stream_usage, "down": down.value, "healed": healed,
            "first": first}


def test_metrics_count_exactly_the_calls_made(stack, traffic):
    status, text = scrape(stack, stack.key("admin-key"))
    assert status == 200, text
    found = samples(text)
    answers, stream_usage, healed, first = (traffic[k] for k in ("answers", "stream_usage", "healed", "first"))
    assert traffic["down"].status_code == 502
    requests = "switchyard_requests_total"
    assert total(found, requests, model="sim/fast", app="metrics-e2e", status="completed", code="200") == 4
    assert total(found, requests, model="sim/fast", app="", status="completed") == 1  # the limited key's first
    assert total(found, requests, model="sim/down", provider="sim", status="failed", code="502",
                 error_type="provider_overloaded") == 1
    assert total(found, requests, code="429", error_type="rate_limit_exceeded", provider="") == 1
    assert total(found, requests) == 8
    assert total(found, "switchyard_rate_limit_refusals_total", limit="rpm") == 1
    # sim/down failed twice: once, then again in the retry round (SWITCHYARD_MAX_RETRIES, 1)
    assert total(found, "switchyard_upstream_errors_total", provider="sim", model="sim/down",
                 error_type="provider_overloaded") == 2
    assert total(found, "switchyard_upstream_errors_total") == 2

    fast = [*answers, first]
    prompt = sum(a.usage.prompt_tokens for a in fast) + stream_usage.prompt_tokens
    completion = sum(a.usage.completion_tokens for a in fast) + stream_usage.completion_tokens
    assert total(found, "switchyard_tokens_total", model="sim/fast", type="input") == prompt
    assert total(found, "switchyard_tokens_total", model="sim/fast", type="output") == completion
    assert total(found, "litellm_total_tokens_metric_total", model="sim/fast") == prompt + completion
    usage = "gen_ai_client_token_usage_sum"
    assert total(found, usage, gen_ai_request_model="sim/fast", gen_ai_token_type="input") == prompt
    assert total(found, usage, gen_ai_request_model="sim/fast", gen_ai_token_type="output") == completion
    cost = sum(a.usage.model_extra["cost"] for a in fast) + stream_usage.model_extra["cost"]
    assert total(found, "switchyard_cost_usd_total", model="sim/fast") == pytest.approx(cost)
    assert total(found, "litellm_spend_metric_total", model="sim/fast") == pytest.approx(cost)
    assert total(found, "switchyard_cost_usd_total", model="sim/broken-json") == \
        pytest.approx(healed.usage.model_extra["cost"])

    duration = "gen_ai_client_operation_duration_seconds_count"
    assert total(found, duration, gen_ai_request_model="sim/fast", error_type="") == 5
    assert total(found, duration, gen_ai_request_model="sim/down", error_type="provider_overloaded") == 1
    assert total(found, "gen_ai_server_time_to_first_token_seconds_count", gen_ai_request_model="sim/fast") == 1
    assert total(found, "gen_ai_server_time_per_output_token_seconds_count") == 1
    buckets = [(float(labels["le"]), v) for labels, v in found["gen_ai_client_operation_duration_seconds_bucket"]
               if labels["gen_ai_request_model"] == "sim/fast"]
    assert max(buckets)[1] == 5 and all(a[1] <= b[1] for a, b in zip(sorted(buckets), sorted(buckets)[1:]))

    assert total(found, "switchyard_heal_total", model="sim/broken-json", outcome=healed.model_extra["heal_status"]) == 1
    assert healed.model_extra["heal_status"] == "healed"
    assert total(found, "switchyard_circuit_breaker_state", provider="sim", upstream_model="down", state="closed") == 1
    assert total(found, "litellm_deployment_state", api_provider="sim") == 0  # every endpoint healthy
    assert total(found, "switchyard_metering_dead_letters") == 0
    assert "switchyard_metering_backlog" in found


def test_metrics_need_a_management_key_with_metrics_read(stack, traffic):
    status, body = scrape(stack)
    assert status == 401 and json.loads(body)["error"]["metadata"]["reason"] == "key_missing"
    status, body = scrape(stack, stack.key("dev-key"))
    assert status == 403 and json.loads(body)["error"]["metadata"]["reason"] == "key_kind"
    status, made = api(stack.url, "POST", "/api/v1/keys", stack.key("admin-key"),
                       {"name": "auditor", "management": True, "scopes": ["audit:read"]})
    status, body = scrape(stack, made["key"])
    assert status == 403 and json.loads(body)["error"]["metadata"]["scope"] == "metrics:read"
    status, made = api(stack.url, "POST", "/api/v1/keys", stack.key("admin-key"),
                       {"name": "prometheus", "management": True, "scopes": ["metrics:read"]})
    assert scrape(stack, made["key"])[0] == 200


def promql_names(board: dict) -> set[str]:
    """The metric names every panel's PromQL (and every templating query) asks for."""
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
              for v in board.get("templating", {}).get("list", []) if v.get("type") == "query"]
    assert exprs
    names = set()
    for expr in exprs:
        expr = re.sub(r'"[^"]*"', '""', expr)  # label values
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # selectors, ranges
        for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
            if word.startswith(("gen_ai_", "switchyard_", "litellm_")):
                names.add(word)
    return names


def test_the_grafana_board_asks_only_for_metrics_the_gateway_exposes(stack, traffic):
    board = json.loads(BOARD.read_text())
    assert any(i.get("name") == "DS_PROMETHEUS" for i in board.get("__inputs", []))
    for panel in board["panels"]:
        if panel.get("type") != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    exposed = set(samples(scrape(stack, stack.key("admin-key"))[1]))
    asked = promql_names(board)
    assert asked and asked <= exposed, f"not exposed: {sorted(asked - exposed)}"
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("requests", "tokens", "cost", "latency", "first token", "error", "breaker", "heal", "backlog",
                  "rate-limit"):
        assert topic in titles, topic
