"""End to end on the local stack: the call that once stalled metering for everyone is metered like any other."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.test_e2e import generation, sdk

pytestmark = pytest.mark.e2e


def health(stack) -> dict:
    with urllib.request.urlopen(stack.url + "/health", timeout=5) as r:
        return json.loads(r.read())


def test_a_tiny_cost_does_not_stall_metering(local_stack):
    client = sdk(local_stack)
    tiny = client.chat.completions.create(model="sim/fast", max_tokens=1,
                                          messages=[{"role": "user", "content": "a b c d"}])
    assert 0 < tiny.usage.model_extra["cost"] < 1e-5  # ~7e-06: repr() writes it as 7e-06
    later = [client.chat.completions.create(model="sim/fast", messages=[{"role": "user", "content": f"n {i}"}]).id
             for i in range(20)]
    deadline = time.monotonic() + 15
    while health(local_stack)["metering_backlog"] and time.monotonic() < deadline:
        time.sleep(0.1)
    state = health(local_stack)
    assert state["metering_backlog"] == 0 and state["metering_dead_letters"] == 0
    assert generation(local_stack, tiny.id)["total_cost"] == pytest.approx(tiny.usage.model_extra["cost"])
    assert all(generation(local_stack, i)["status"] == "completed" for i in later)
