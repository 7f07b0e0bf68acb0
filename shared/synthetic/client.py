"""Calls to the gateway's own chat API, as any app makes them: metered, routed and healed there.

Each model alias has an AIMD concurrency window: it starts at the alias's `max_parallel_requests`, is halved
on a 429 (or a 503 with Retry-After) and waits out the Retry-After the gateway sends, then grows back by one
request per window's worth of successes. Only transient failures are retried (429, 500, 502, 503, 504, a
timeout or a broken connection), with exponential backoff; anything else is the row's failure, reported with
the gateway's message.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from shared.providers.http import HTTPClient, ResponseTooLarge, TransportError

TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_CAP = 60.0  # seconds: a longer Retry-After is waited this long, then tried again
MAX_ANSWER_BYTES = 1024 * 1024  # one cell's answer; a bigger one fails the row (and is not asked again)
APP_TITLE = "switchyard-synthetic"
JOB_HEADER = "X-Switchyard-Synthetic-Job"


def run_loop(main: Any) -> Any:
    """Run a coroutine on an event loop of its own: uvloop's when it is installed (the `synthetic` extra has it).
    Measured with benchmarks/synthetic.py on this 2-core machine, quiet: 986 LLM cells/s on asyncio's loop,
    1,092 on uvloop's (77 → 85% of the concurrency bound): each call's 50 ms waits less for its turn."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class CallFailed(Exception):
    """A call that will not succeed by retrying (or whose retries ran out): the row fails with this reason."""

    def __init__(self, reason: str, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.request_id = reason, status, request_id


class BudgetExhausted(CallFailed):
    """The job's key cannot pay for more calls (402): the job stops, nothing more can be made."""


@dataclass(slots=True)
class Answer:
    content: str
    model: str
    provider: str
    request_id: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    finish_reason: str | None
    heal_status: str | None


class Window:
    """An AIMD concurrency limit: `async with window:` holds one of at most `limit` slots. Slots are handed
    over first come, first served (a freed slot goes straight to the longest waiter), so no task is woken
    only to find its slot taken."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.active = 0
        self.paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        while (pause := self.paused_until - loop.time()) > 0:
            await asyncio.sleep(pause)
        if self.active < int(self.limit) and not self._waiters:
            self.active += 1
            return
        waiter = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by a release: the slot is ours, already counted in `active`
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()
            else:
                self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters and self.active <= int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: `active` stays
                return
        self.active -= 1

    def _grow(self) -> None:
        while self._waiters and self.active < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    def succeeded(self) -> None:
        if self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + 1 / self.limit)
            self._grow()

    def throttled(self, retry_after: float | None) -> None:
        self.limit = max(1.0, self.limit / 2)
        if retry_after:
            loop = asyncio.get_running_loop()
            self.paused_until = max(self.paused_until, loop.time() + min(retry_after, RETRY_AFTER_CAP))


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class GatewayClient:
    """POST /chat/completions to the gateway with the job's key, as the app `switchyard-synthetic`."""

    def __init__(self, base_url: str, key: str, job_id: str, *, retries: int = 4, timeout: float = 120.0,
                 http: HTTPClient | None = None) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                        "X-Title": APP_TITLE, JOB_HEADER: job_id}
        self.retries, self.timeout = retries, timeout
        self.http = http or HTTPClient()
        self.calls = 0
        self.retried = 0

    async def complete(self, body: dict[str, Any], window: Window, timeout: float | None = None) -> Answer:
        """One chat completion; `timeout` (the alias's) bounds the wait for the answer, else the client's."""
        data = orjson.dumps(body)
        wait = timeout or self.timeout
        for attempt in range(self.retries + 1):
            async with window:
                self.calls += 1
                try:
                    response = await self.http.request(
                        "POST", self.url, headers=self.headers, body=data, connect_timeout=10,
                        first_byte_timeout=wait, idle_timeout=wait)
                    status, headers = response.status, response.headers
                    raw = await response.read(MAX_ANSWER_BYTES)
                except ResponseTooLarge:
                    raise CallFailed(f"the answer is over {MAX_ANSWER_BYTES} bytes") from None
                except (TransportError, OSError) as e:
                    status, headers, raw = None, {}, str(e).encode()
            if status == 200:
                window.succeeded()
                return _answer(raw)
            reason, request_id = _error(status, raw, headers)
            if status == 402:
                raise BudgetExhausted(reason, status, request_id)
            if status is not None and status not in TRANSIENT:
                raise CallFailed(reason, status, request_id)
            if attempt == self.retries:
                raise CallFailed(f"{reason} (after {attempt + 1} tries)", status, request_id)
            retry_after = _retry_after(headers)
            if status == 429 or (status == 503 and retry_after is not None):
                window.throttled(retry_after)
            self.retried += 1
            await asyncio.sleep(min(retry_after if retry_after is not None else 0.25 * 2 ** attempt * (1 + random.random()),
                                    RETRY_AFTER_CAP))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.http.close()


def _answer(raw: bytes) -> Answer:
    try:
        body = orjson.loads(raw)
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return Answer(content=choice["message"].get("content") or "", model=body.get("model", ""),
                      provider=body.get("provider", ""), request_id=body.get("id", ""),
                      prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0),
                      cost=float(usage.get("cost") or 0.0), finish_reason=choice.get("finish_reason"),
                      heal_status=body.get("heal_status"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise CallFailed(f"the gateway's answer is not a chat completion ({type(e).__name__})") from None


def _error(status: int | None, raw: bytes, headers: dict[str, str]) -> tuple[str, str | None]:
    if status is None:
        return f"the gateway could not be reached: {raw.decode(errors='replace')[:200]}", None
    request_id = headers.get("x-generation-id")
    try:
        message = orjson.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace")[:200]
    return f"{status}: {message}", request_id
