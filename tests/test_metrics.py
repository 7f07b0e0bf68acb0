"""CallMetrics (shared/metrics/calls.py) and the /metrics route: buckets as Prometheus reads them, labels bounded
by construction, the key label only when asked for, the route off, public or behind `metrics:read`."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.metering import UsageEvent
from shared.metrics import CallMetrics
from shared.metrics.calls import DURATION_BOUNDS, OTHER
from shared.metrics.prometheus import NAMES
from tests.conftest import reset_gateway

CATALOG = {"sim/fast", "sim/chat"}
HI = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}


def event(n: int = 0, **fields) -> UsageEvent:
    base = dict(id=f"gen-{n}", key_id="k1", created_at=0.0, model="sim/fast", lab="sim", provider="sim",
                prompt_tokens=10, completion_tokens=5, cost=0.25, latency_ms=10.0)
    return UsageEvent(**{**base, **fields})


def metrics(**options) -> CallMetrics:
    return CallMetrics(known_model=CATALOG.__contains__, **options)


def test_a_value_on_a_bucket_bound_counts_in_that_bucket_and_the_sum_is_exact():
    m = metrics()
    m.observe(event(1, latency_ms=10.0))  # 0.01 s: a bound
    m.observe(event(2, latency_ms=10.5))
    (h,) = m.snapshot().duration.values()
    at = DURATION_BOUNDS.index(0.01)
    assert h[at] == 1 and h[at + 1] == 1 and sum(h[:-1]) == 2 and h[-1] == pytest.approx(0.0205)


def test_labels_are_bounded_apps_past_the_first_few_and_models_outside_the_catalog_are_other():
    m = metrics(max_apps=2)
    for i, app in enumerate(("a", "b", "c", "d", "a", None)):
        m.observe(event(i, app=app))
    m.observe(event(9, model="x" * 300, provider=None, status="failed", error_code=404,
                    error_type="model_not_found", prompt_tokens=0, completion_tokens=0))
    calls = m.snapshot().calls
    apps = {}
    for (model, provider, app, *_), row in calls.items():
        apps[app] = apps.get(app, 0) + row[0]
    assert apps == {"a": 2, "b": 1, OTHER: 2, "": 2}
    assert len(m._apps) == 2  # the apps past the bound are not remembered either
    assert {k[0] for k in calls} == {"sim/fast", OTHER}
    assert not m.snapshot().duration.get((OTHER, "", "model_not_found"))  # never routed: no timing


def test_streamed_calls_give_time_to_first_token_and_per_output_token():
    m = metrics()
    m.observe(event(1, streamed=True, ttft_ms=100.0, latency_ms=500.0, completion_tokens=5))
    m.observe(event(2, streamed=False, ttft_ms=20.0))
    snap = m.snapshot()
    (ttft,) = snap.ttft.values()
    (tpot,) = snap.tpot.values()
    assert sum(ttft[:-1]) == 1 and ttft[-1] == pytest.approx(0.1)
    assert sum(tpot[:-1]) == 1 and tpot[-1] == pytest.approx(0.4 / 4)


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_the_key_label_only_when_enabled(client, keys, monkeypatch):
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"}, json=HI)
    text = client.get("/metrics", headers=admin).text
    assert "key=" not in text
    assert {f for f in families(text)} <= set(NAMES)
    monkeypatch.setenv("SWITCHYARD_METRICS_KEY_LABELS", "true")
    reset_gateway()
    client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"}, json=HI)
    found = families(client.get("/metrics", headers=admin).text)
    labels = [s.labels for s in found["switchyard_requests"].samples]
    assert labels and all(s["key"] == keys["dev"].split("-")[3] for s in labels)


def test_metrics_off_is_a_404_in_the_error_shape_and_counts_nothing(client, keys, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_METRICS", "false")
    reset_gateway()
    from functions.gateway.state import gateway

    assert gateway().metrics is None
    assert client.post("/api/v1/chat/completions", headers={"Authorization": f"Bearer {keys['dev']}"},
                       json=HI).status_code == 200
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert refused.status_code == 404
    assert refused.json()["error"]["metadata"]["reason"] == "metrics_off"


def test_public_metrics_need_no_key(client, monkeypatch):
    assert client.get("/metrics").status_code == 401
    monkeypatch.setenv("SWITCHYARD_METRICS_PUBLIC", "true")
    reset_gateway()
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "switchyard_metering_backlog" in families(answer.text)


def test_rate_limit_refusals_are_counted_by_limit(client, gateway):
    token, _ = gateway.keys.create("tight", rpm=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/chat/completions", headers=headers, json=HI).status_code == 200
    assert client.post("/api/v1/chat/completions", headers=headers, json=HI).status_code == 429
    assert gateway.chat.rates.refused == {"rpm": 1}
