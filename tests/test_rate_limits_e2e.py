"""Rate limits across processes: TWO real gateway processes (`python -m infra.local`, what `make run` starts) on
ONE moto stack (`python -m infra.moto_process`; both gateways attach to it with SWITCHYARD_MOTO_ENDPOINT), a
burst split between them, and exactly the limit answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from typing import Iterator

import pytest

from tests.conftest import ROOT, LocalProcess
from tests.support import api

CHAT = "/api/v1/chat/completions"
BODY = json.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory) -> Iterator[tuple[LocalProcess, LocalProcess, str]]:
    from infra.local import free_port

    state = tmp_path_factory.mktemp("one-stack")
    port = free_port()
    env = {**os.environ, "SWITCHYARD_LAKE_EXPORT": "0"}
    moto = subprocess.Popen([sys.executable, "-m", "infra.moto_process", str(port), str(state)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert moto.stdout is not None and moto.stdout.readline().strip() == "ready"
    attach = {"SWITCHYARD_MOTO_ENDPOINT": f"http://127.0.0.1:{port}", "SWITCHYARD_LAKE_EXPORT": "0"}
    gateways: list[LocalProcess] = []
    try:
        for _ in range(2):  # one after the other: the first writes the keys the second reuses
            gateways.append(LocalProcess(state, attach).start())
        yield gateways[0], gateways[1], f"http://127.0.0.1:{port}"
    finally:
        for g in gateways:
            g.stop()
        assert moto.stdin is not None
        moto.stdin.close()
        moto.wait(30)


def post(url: str, token: str) -> tuple[int, Message]:
    request = urllib.request.Request(url + CHAT, data=BODY, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            r.read()
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers


def test_rpm_30_holds_across_two_gateway_processes_under_a_burst_of_200(two_gateways):
    a, b, moto = two_gateways
    assert a.key("dev-key") == b.key("dev-key")  # one stack: the second process reuses the first's keys
    status, created = api(a.url, "POST", "/api/v1/keys", a.key("admin-key"), {"name": "burst", "rpm": 30})
    assert status == 201, created
    token = created["key"]
    # The claim is about one minute window: a burst that would straddle a minute's end starts in the next one.
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)
    urls = [a.url, b.url] * 100
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda i: (i % 2, *post(urls[i], token)), range(200)))
    served = [(who, h) for who, status, h in answers if status == 200]
    refused = [(who, h) for who, status, h in answers if status == 429]
    assert len(served) == 30 and len(refused) == 170
    assert {who for who, _ in served} == {0, 1}  # both processes served from the one window
    resets = {h["X-RateLimit-Reset"] for _, h in served + refused}
    assert len(resets) == 1  # one window: the burst fit in one UTC minute
    reset = int(resets.pop())
    assert reset % 60_000 == 0 and 0 < reset / 1000 - time.time() <= 60
    for _, h in refused:
        assert h["X-RateLimit-Limit"] == "30" and h["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(h["Retry-After"]) <= 60 and h["X-Generation-Id"].startswith("gen-")
    # the window's row: granted to both processes together, never past the limit
    window = time.strftime("rpm#%Y-%m-%dT%H:%M", time.gmtime(reset / 1000 - 60))
    row = _counters(moto, f"rate#{created['data']['hash']}", window)
    assert int(row["granted"]["N"]) == 30


def _counters(moto: str, pk: str, period: str) -> dict:
    import botocore.session

    client = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local")
    return client.get_item(TableName="switchyard-CountersTable", Key={"pk": {"S": pk}, "period": {"S": period}},
                           ConsistentRead=True)["Item"]
