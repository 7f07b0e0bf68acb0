"""The engine's calls to the gateway: the AIMD window, retries of transient failures only, Retry-After."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from shared.synthetic.client import BudgetExhausted, CallFailed, GatewayClient, Window

OK = {"id": "gen-1", "model": "sim/fast", "provider": "sim", "choices": [{"message": {"content": "hi"},
                                                                         "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.5}}


def test_the_window_never_holds_more_than_its_limit_and_serves_waiters_in_order():
    async def main() -> tuple[int, list[int]]:
        window, peak, order = Window(3), 0, []

        async def one(i: int) -> None:
            nonlocal peak
            async with window:
                peak = max(peak, window.active)
                order.append(i)
                await asyncio.sleep(0.001)

        await asyncio.gather(*(one(i) for i in range(20)))
        return peak, order

    peak, order = asyncio.run(main())
    assert peak == 3 and order == list(range(20))


def test_a_throttle_halves_the_window_and_successes_grow_it_back_to_its_ceiling():
    async def main() -> list[float]:
        window = Window(16)
        window.throttled(None)
        seen = [window.limit]
        window.throttled(None)
        seen.append(window.limit)
        for _ in range(200):
            window.succeeded()
        seen.append(window.limit)
        return seen

    assert asyncio.run(main()) == [8.0, 4.0, 16.0]


def test_a_smaller_window_holds_back_new_calls_until_enough_have_ended():
    async def main() -> int:
        window, peak = Window(8), 0
        for _ in range(2):
            window.throttled(None)  # 2 slots now

        async def one() -> None:
            nonlocal peak
            async with window:
                peak = max(peak, window.active)
                await asyncio.sleep(0.002)

        await asyncio.gather(*(one() for _ in range(12)))
        return peak

    assert asyncio.run(main()) == 2


class Upstream:
    """A stand-in gateway answering from a script of (status, headers, body) and recording arrivals."""

    def __init__(self, script: list[tuple[int, dict[str, str], dict]]) -> None:
        self.script, self.times, self.headers = list(script), [], []

    async def handle(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        self.headers.append(dict(request.headers))
        status, headers, body = self.script.pop(0) if self.script else (200, {}, OK)
        return web.Response(status=status, headers=headers, text=json.dumps(body), content_type="application/json")


async def serve(upstream: Upstream):
    app = web.Application()
    app.router.add_post("/api/v1/chat/completions", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/api/v1"


def run_calls(script, *, retries: int = 4, window: Window | None = None):
    async def main():
        upstream = Upstream(script)
        runner, url = await serve(upstream)
        client = GatewayClient(url, "sk-test", "job-1", retries=retries)
        w = window or Window(4)
        try:
            result = await client.complete({"model": "sim/fast", "messages": []}, w)
        except CallFailed as e:
            result = e
        finally:
            client.close()
            await runner.cleanup()
        return result, upstream, client, w

    return asyncio.run(main())


def err(status: int, message: str = "nope") -> dict:
    return {"error": {"code": status, "message": message, "metadata": {}}}


def test_a_429_is_waited_out_by_its_retry_after_and_halves_the_window():
    answer, upstream, client, window = run_calls([(429, {"Retry-After": "0.3", "X-Generation-Id": "gen-x"}, err(429))])
    assert answer.content == "hi" and answer.cost == 0.5 and answer.request_id == "gen-1"
    assert len(upstream.times) == 2 and upstream.times[1] - upstream.times[0] >= 0.29
    assert client.retried == 1 and window.limit == 2.5  # halved to 2, then one success: + 1/2


def test_a_5xx_is_retried_and_an_answer_after_it_counts():
    answer, upstream, client, _ = run_calls([(502, {}, err(502)), (503, {}, err(503))])
    assert answer.content == "hi" and len(upstream.times) == 3 and client.retried == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_a_client_error_is_not_retried_and_fails_the_row_with_the_gateways_message(status):
    failed, upstream, client, _ = run_calls([(status, {"X-Generation-Id": "gen-bad"}, err(status, "bad schema"))])
    assert isinstance(failed, CallFailed) and not isinstance(failed, BudgetExhausted)
    assert len(upstream.times) == 1 and client.retried == 0
    assert failed.status == status and failed.reason == f"{status}: bad schema" and failed.request_id == "gen-bad"


def test_a_402_stops_the_job_rather_than_the_row():
    failed, upstream, _, _ = run_calls([(402, {}, err(402, "limit reached"))])
    assert isinstance(failed, BudgetExhausted) and len(upstream.times) == 1


def test_retries_run_out_with_the_last_reason():
    failed, upstream, _, _ = run_calls([(500, {}, err(500, "boom"))] * 3, retries=2)
    assert isinstance(failed, CallFailed) and failed.reason == "500: boom (after 3 tries)" and len(upstream.times) == 3


def test_an_answer_that_is_not_a_chat_completion_fails_the_row():
    failed, _, _, _ = run_calls([(200, {}, {"choices": []})])
    assert isinstance(failed, CallFailed) and "not a chat completion" in failed.reason


def test_calls_are_attributed_to_the_app_and_the_job():
    _, upstream, _, _ = run_calls([])
    headers = upstream.headers[0]
    assert headers["X-Title"] == "switchyard-synthetic" and headers["X-Switchyard-Synthetic-Job"] == "job-1"
    assert headers["Authorization"] == "Bearer sk-test"
