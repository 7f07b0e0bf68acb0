"""The acceptance run of the usage lake through `make run`'s stack: mixed traffic from two apps through the
official SDK (some calls failing), then the analytics API shows each app and model with exact counts, the
failing model's error types, and an export pandas and `datasets` read with the same row count."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import openai
import pytest

pytestmark = pytest.mark.e2e


def _get(stack, path: str, key: str) -> urllib.request.addinfourl:
    req = urllib.request.Request(f"{stack.url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
    return urllib.request.urlopen(req, timeout=30)


def test_mixed_traffic_from_two_apps_reaches_the_analytics_within_seconds(local_stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    bot, pipeline = f"support-bot-{run}", f"data-pipeline-{run}"
    key, admin = local_stack.key("dev-key"), local_stack.key("admin-key")
    clients = {app: openai.OpenAI(base_url=f"{local_stack.url}/api/v1", api_key=key, max_retries=0,
                                  default_headers={"X-Title": app, "X-OpenRouter-Categories": "support,chat-bot"})
               for app in (bot, pipeline)}
    usage: dict[tuple[str, str], list[int]] = {}
    for app, model, n in ((bot, "sim/fast", 4), (pipeline, "sim/chat", 3), (pipeline, "sim/fast", 2)):
        for _ in range(n):
            r = clients[app].chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            totals = usage.setdefault((app, model), [0, 0, 0])
            totals[0] += 1
            totals[1] += r.usage.prompt_tokens
            totals[2] += r.usage.completion_tokens
    failed_types: dict[str, int] = {}
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as failure:
            clients[pipeline].chat.completions.create(model="sim/down", messages=[{"role": "user", "content": "x"}])
        kind = failure.value.body["metadata"]["error_type"]  # the SDK's body is the error object
        failed_types[kind] = failed_types.get(kind, 0) + 1
    answered = time.monotonic()

    deadline = answered + 30
    while True:  # the stated freshness: a few seconds
        data = json.load(_get(local_stack, f"/analytics?group_by=app,model&app={pipeline}", admin))["data"]
        data += json.load(_get(local_stack, f"/analytics?group_by=app,model&app={bot}", admin))["data"]
        if sum(r["calls"] for r in data) >= 11 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lag = time.monotonic() - answered
    assert lag < 15, f"the lake was {lag:.1f} s behind"
    rows = {(r["app"], r["model"]): r for r in data}
    for pair, (calls, prompt, completion) in usage.items():
        assert (rows[pair]["calls"], rows[pair]["prompt_tokens"], rows[pair]["completion_tokens"]) == (
            calls, prompt, completion), pair
    down = rows[(pipeline, "sim/down")]
    assert (down["calls"], down["failed"], down["success_rate"]) == (2, 2, 0.0)
    assert {e["error_type"]: e["count"] for e in down["top_errors"]} == failed_types  # "View Errors"
    by_category = json.load(_get(local_stack, f"/analytics?group_by=category&app={bot}", key))["data"]
    assert {r["category"]: r["calls"] for r in by_category} == {"support": 4, "chat-bot": 4}

    import datasets
    import pandas as pd

    export = _get(local_stack, f"/analytics/export?format=parquet&group_by=app,model&app={pipeline}", admin).read()
    path = tmp_path / "export.parquet"
    path.write_bytes(export)
    frame = pd.read_parquet(path)
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(frame) == ds.num_rows == 3 and int(frame["calls"].sum()) == 7
