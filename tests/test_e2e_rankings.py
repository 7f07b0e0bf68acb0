"""The acceptance run of the rankings through `make run`'s stack: traffic from two apps through sim models of
different speed (and one source flooding a model from another loopback address), then `POST /rankings/runs`
for today: the faster model ranks first, its published terms recompute to its score, the flood is capped and
counted, token totals match what was sent, and the Parquet outputs load with `datasets`."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timezone

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e


def _client(stack, key: str, app: str, source: str = "127.0.0.1") -> openai.OpenAI:
    transport = httpx.HTTPTransport(local_address=source)
    return openai.OpenAI(base_url=f"{stack.url}/api/v1", api_key=key, max_retries=0,
                         default_headers={"X-Title": app}, http_client=httpx.Client(transport=transport))


@pytest.fixture
def stack(tmp_path):
    """A stack of its own: the counts below are exact."""
    from tests.conftest import LocalProcess

    process = LocalProcess(tmp_path / "state", {}).start()
    yield process
    process.stop()


def test_traffic_then_a_run_for_today_ranks_the_faster_model_first(stack, tmp_path):
    local_stack = stack
    key, admin = local_stack.key("dev-key"), local_stack.key("admin-key")
    sent: dict[str, int] = {}
    bot, pipeline = _client(local_stack, key, "rank-bot"), _client(local_stack, key, "rank-pipeline")
    for model, n in (("sim/fast", 12), ("sim/chat", 12)):
        for i in range(n):
            client = bot if i % 2 else pipeline
            r = client.chat.completions.create(model=model, max_tokens=8,
                                               messages=[{"role": "user", "content": f"q{i} {model}"}])
            sent[model] = sent.get(model, 0) + r.usage.total_tokens
    flood = _client(local_stack, key, "rank-flood", source="127.0.0.2")
    for i in range(80):
        r = flood.chat.completions.create(model="sim/fast", max_tokens=8,
                                          messages=[{"role": "user", "content": "same"}])
        sent["sim/fast"] += r.usage.total_tokens

    today = datetime.now(timezone.utc).date().isoformat()
    req = urllib.request.Request(f"{local_stack.url}/api/v1/rankings/runs", method="POST",
                                 data=json.dumps({"date": today}).encode(),
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    run = json.load(urllib.request.urlopen(req, timeout=120))["data"]
    assert run["status"] == "completed" and run["lake_caught_up"] is True
    body = json.load(urllib.request.urlopen(f"{local_stack.url}/api/v1/rankings?date={today}", timeout=30))
    models = {m["model"]: m for m in body["data"]}
    fast, chat = models["sim/fast"], models["sim/chat"]
    assert fast["rank"] < chat["rank"]  # as reliable, faster and cheaper
    for m in (fast, chat):
        assert m["score"] == pytest.approx(0.4 * m["term_success"] + 0.3 * m["term_speed"] + 0.3 * m["term_price"],
                                           abs=1e-6)
    # the flood (127.0.0.2) keeps max(0.5 · 12 / 0.5, 20) = 20 of its 80 calls: 60 are capped, and counted
    assert (fast["calls"], fast["removed_source_cap"], fast["calls_after_filters"]) == (92, 60, 32)
    assert body["meta"]["filters"]["removed_source_cap"] == 60 and chat["removed_source_cap"] == 0
    assert (fast["total_tokens"], chat["total_tokens"]) == (sent["sim/fast"], sent["sim/chat"])  # as sent

    import datasets

    for name in ("models", "labs", "apps"):
        r = urllib.request.urlopen(f"{local_stack.url}/api/v1/rankings?date={today}&by={name[:-1]}", timeout=30)
        assert json.load(r)["data"]
    # the published files themselves, from the stack's bucket as saved to disk
    published = local_stack.state_dir / "s3" / "DataBucket" / "rankings" / f"dt={today}"
    import time

    deadline = time.monotonic() + 15
    while not (published / "models.parquet").exists() and time.monotonic() < deadline:
        time.sleep(0.5)  # moto saves its state every 5 s
    ds = datasets.load_dataset("parquet", data_files=str(published / "models.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == len(body["data"])
