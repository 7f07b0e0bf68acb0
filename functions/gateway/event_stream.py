"""A streamed answer as a bare ASGI response: its frames go straight to the server's send.

Starlette's StreamingResponse hands each frame through every layer's send wrapper (five on the chat route:
the route's and ExceptionMiddleware's exception handlers, RequestBoundary, BodyLimit's, ServerErrorMiddleware),
and under ASGI 2.3 runs the body in an anyio task group to notice a client that leaves. Those layers only watch
for the response's start, so here the start and the end pass through them and the frames in between go to the
server's own send (`scope["state"][SERVER_SEND]`, put there by functions/gateway/app.py's ServerSend), from a
task of their own (the pump); a client that leaves is noticed by a watcher task, as for non-streamed calls.

Under uvicorn's httptools protocol (`make run`, the StreamFunction's run.sh) a frame is written to the
connection's transport as the HTTP chunk that uvicorn's send would make of it, whenever that send would write
it at once (the client reads fast enough: no write pause; still connected); otherwise, and under any other
server, it goes through the send. uvicorn's send costs ~75 bytecodes a frame for checks a stream's body
messages all pass (tests/test_event_stream.py checks that the internals this relies on are still there).
Measured on the one-by-one streaming benchmark: see benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

SERVER_SEND = "server_send"  # scope["state"] key: the server's own send, before any middleware wraps it


class EventStream(Response):
    """`text/event-stream` from an async iterator of frames. A client that goes away cancels the iteration (the
    relay meters the call as cancelled) and ends the response quietly."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        # The frames are pumped by a task of their own: each chunk wakes the task that awaits it, and every
        # frame of that task's await chain is resumed (here some twenty, down from the server through every
        # middleware; in the pump's, four: the pump, the relay, the adapter's stream, the connection's read).
        pump = asyncio.ensure_future(self._pump(scope["state"].get(SERVER_SEND, send)))
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            pump.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await pump
        except asyncio.CancelledError:
            if left and pump.cancelled() and not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                return  # the client went away; the relay has metered the call as cancelled
            raise
        finally:
            watcher.cancel()
            pump.cancel()  # a no-op unless this task was cancelled
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        try:
            cycle = uvicorn_cycle(send)
            if cycle is None:
                async for frame in self.frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                return
            flow, transport = cycle.flow, cycle.transport
            async for frame in self.frames:
                if flow.write_paused or cycle.disconnected:  # uvicorn's send waits for the client, or drops
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                else:
                    transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))  # what that send would write
        finally:
            await self.frames.aclose()  # type: ignore[attr-defined]  # a no-op unless a send failed mid-stream


def uvicorn_cycle(send: Send) -> Any:
    """uvicorn's httptools request cycle behind `send`, when it is that server's own send, the response
    started with chunked encoding (not to a HEAD) and the attributes its send reads are there; else None."""
    cycle = getattr(send, "__self__", None)
    kind = type(cycle)
    if kind.__name__ != "RequestResponseCycle" or kind.__module__ != "uvicorn.protocols.http.httptools_impl":
        return None
    try:
        usable = cycle.chunked_encoding is True and cycle.response_started and not cycle.response_complete \
            and cycle.scope["method"] != "HEAD" and isinstance(cycle.flow.write_paused, bool) \
            and isinstance(cycle.disconnected, bool) and callable(cycle.transport.write)
    except (AttributeError, KeyError, TypeError):
        return None
    return cycle if usable else None
