"""Hostile answers any fake vendor can give, scripted by upstream model name (the same names on every fake):

  huge               200 with a 33 MiB body (declared Content-Length); to a stream: one 5 MiB SSE line
  huge-chunked       200 with a 40 MiB chunked body (no Content-Length: only counting while reading sees it)
  json-to-stream     to a stream request: 200 application/json, a whole completion instead of events
  json-error-to-stream   to a stream request: 200 application/json carrying an error body
  garbage-to-stream  to a stream request: 200 text/html, no `data:` line at all
`drip` (a body trickled a byte at a time) needs a vendor-shaped body: see `drip`, used by the OpenAI fake.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

NAMES = ("huge", "huge-chunked", "json-to-stream", "json-error-to-stream", "garbage-to-stream")
MiB = 1024 * 1024


async def answer(request: web.Request, model: str, stream: bool) -> web.StreamResponse | None:
    """The hostile answer scripted for `model`, or None when the model is not a hostile one."""
    if model == "huge":
        if stream:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            line = b'data: {"choices": [{"index": 0, "delta": {"content": "' + b"a" * (5 * MiB) + b'"}}]}\n\n'
            await resp.write(line)
            return resp
        body = b'{"choices": [{"index": 0, "message": {"content": "' + b"a" * (33 * MiB) + b'"}}]}'
        return web.Response(body=body, content_type="application/json")
    if model == "huge-chunked":
        kind = "text/event-stream" if stream else "application/json"
        resp = web.StreamResponse(headers={"Content-Type": kind})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for _ in range(40):
                await resp.write(b"a" * MiB)
        except (ConnectionResetError, RuntimeError):
            pass  # the gateway stopped reading: what it should do
        return resp
    if not stream:
        return None
    if model == "json-to-stream":
        choice = {"index": 0, "message": {"role": "assistant", "content": "not streamed"},
                  "finish_reason": "stop"}
        return web.json_response({"id": "chatcmpl-x", "object": "chat.completion", "choices": [choice]})
    if model == "json-error-to-stream":
        return web.json_response({"error": {"message": "internal failure", "type": "server_error"}})
    if model == "garbage-to-stream":
        return web.Response(text="<html><body>" + "oops " * 2000 + "</body></html>", content_type="text/html")
    return None


async def drip(request: web.Request, payload: bytes, content_type: str, *, slow_bytes: int = 40,
               gap: float = 0.05) -> web.StreamResponse:
    """Headers at once, then the first `slow_bytes` of `payload` one byte every `gap` seconds (every byte
    resets an idle timeout), then the rest: a valid answer that takes `slow_bytes * gap` seconds (2 s)."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    resp.content_length = len(payload)
    await resp.prepare(request)
    try:
        for i in range(min(slow_bytes, len(payload))):
            await resp.write(payload[i:i + 1])
            await asyncio.sleep(gap)
        await resp.write(payload[slow_bytes:])
    except (ConnectionResetError, RuntimeError):
        pass  # the gateway gave up: what it should do
    return resp


def completion_json(model: str, text: str) -> bytes:
    return json.dumps({"id": "chatcmpl-drip", "object": "chat.completion", "created": 1, "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()
