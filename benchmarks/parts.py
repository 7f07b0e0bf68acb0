"""Micro-benchmarks behind two decisions to write our own code (numbers quoted in the docstrings):

    python -m benchmarks.parts

1. the upstream HTTP client (shared/providers/http.py) against aiohttp's, 32 concurrent requests to the
   shared fake upstream, CPU time per request in this process;
2. the metering write path (shared/aws/dynamodb_json.py) against boto3's serialisers, per usage record.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT.parent / "shared" / "bench" / "fake_upstream.py"
BODY = orjson.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer x"}


async def _load(send, workers: int = 32, each: int = 300) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await send()
    await worker(100)
    cpu = time.process_time()
    await asyncio.gather(*[worker(each) for _ in range(workers)])
    return (time.process_time() - cpu) / (workers * each) * 1e6


async def http_clients(port: int) -> dict[str, float]:
    import aiohttp

    from shared.providers.http import HTTPClient

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    ours = HTTPClient()

    async def ours_send() -> None:
        resp = await ours.request("POST", url, headers=HEADERS, body=BODY, connect_timeout=5,
                                  first_byte_timeout=30, idle_timeout=30)
        await resp.read()

    async with aiohttp.ClientSession() as session:
        timeout = aiohttp.ClientTimeout(total=60, sock_connect=5, sock_read=30)

        async def aiohttp_send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS, timeout=timeout) as r:
                await r.read()

        result = {"aiohttp_us_per_request": await _load(aiohttp_send),
                  "ours_us_per_request": await _load(ours_send)}
    ours.close()
    return result


def metering() -> dict[str, float]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.session import get_session

    from boto3.dynamodb.types import TypeSerializer  # boto3's serialiser, as the first version used
    from shared.aws.dynamodb_json import json_client
    from shared.metering import UsageEvent, UsageWriter

    events = [UsageEvent(id=f"gen-{i}", key_id="k", created_at=time.time(), model="bench/model", lab="bench",
                         provider="bench", upstream_model="bench-model", app="Acme", prompt_tokens=12,
                         completion_tokens=9, cost=0.00003, latency_ms=0.5, ttft_ms=0.4, finish_reason="stop",
                         client_ip="127.0.0.1", user_agent="wrk") for i in range(97)]
    writer, rounds = UsageWriter("usage", "counters", 400), 100
    client = json_client()
    start = time.process_time()
    for _ in range(rounds):
        body = orjson.dumps({"TransactItems": writer.actions(events)[0]})
        request = AWSRequest(method="POST", url=client.url, data=body, headers={})
        SigV4Auth(client.credentials.get_frozen_credentials(), "dynamodb", client.region).add_auth(request)
    ours = (time.process_time() - start) / rounds / len(events) * 1e6

    serializer = TypeSerializer()
    to_item = lambda record: {k: serializer.serialize(Decimal(repr(v)) if isinstance(v, float) else v)  # noqa: E731
                              for k, v in record.items() if v is not None}
    botocore_client = get_session().create_client("dynamodb")
    operation = botocore_client.meta.service_model.operation_model("TransactWriteItems")
    start = time.process_time()
    for _ in range(rounds):
        actions = [{"Put": {"TableName": "usage", "Item": to_item(e.to_record(400)),
                            "ConditionExpression": "attribute_not_exists(id)"}} for e in events]
        botocore_client._serializer.serialize_to_request({"TransactItems": actions}, operation)
    boto = (time.process_time() - start) / rounds / len(events) * 1e6
    return {"ours_us_per_record": round(ours, 1), "boto3_serialisers_us_per_record": round(boto, 1)}


def main() -> None:
    from infra.local import free_port

    port = free_port()
    upstream = subprocess.Popen([sys.executable, str(FAKE), str(port), "0"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        import uvloop
        clients = uvloop.run(http_clients(port))
    finally:
        upstream.terminate()
    print(orjson.dumps({"http_client": {k: round(v, 1) for k, v in clients.items()}, "metering": metering()},
                       option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
