"""A local fake of Anthropic's Messages API (POST /v1/messages), JSON and SSE, scripted by model name:

  claude-ok      "Hello from Claude." with cache read/write usage; streamed as the real event sequence
  claude-tool    a tool_use block (or, once a tool_result came back, a text answer)
  claude-json    answers through the forced tool named by tool_choice (JSON mode with a schema)
  claude-429     rate_limit_error with Retry-After: 13;  claude-529: overloaded_error
  claude-long    400 "prompt is too long"
  claude-midstream-error   one text delta, then an `error` event
  claude-think   with `thinking` asked for: a thinking block ("Weighing it.") before "Hello from Claude."
  and the hostile answers of tests/fakes/hostile.py under their own names (huge, json-to-stream…)
It records every request (headers and body) so tests can assert what the gateway sent.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes import hostile
from tests.fakes.server import FakeServer, catalog_text

USAGE = {"input_tokens": 21, "output_tokens": 9, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status,
                             headers=headers)


class FakeAnthropic(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def catalog_yaml(self) -> str:
        return catalog_text(
            "fakeanthropic", f"kind: anthropic, base_url: '{self.base_url}', api_key_env: FAKE_ANTHROPIC_KEY",
            "anthropic-fake", ("claude-ok", "claude-tool", "claude-json", "claude-429", "claude-529", "claude-long",
                               "claude-midstream-error", *hostile.NAMES),
            "context_length: 200000, max_output: 1024, pricing: {prompt: 3.0, completion: 15.0}",
            "  - {id: anthropic-fake/claude-think, provider: fakeanthropic, upstream_model: claude-think, "
            "context_length: 200000, max_output: 16384, pricing: {prompt: 3.0, completion: 15.0}}\n")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    def _answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        model = body["model"]
        if model == "claude-tool":
            last = body["messages"][-1]["content"]
            if any(block.get("type") == "tool_result" for block in last):
                return [{"type": "text", "text": "It is sunny."}]
            return [{"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": body["tools"][0]["name"], "input": {"city": "Paris"}}]
        if model == "claude-json":
            name = body["tool_choice"]["name"]
            return [{"type": "tool_use", "id": "toolu_02", "name": name, "input": {"name": "Ada", "n": 36}}]
        if model == "claude-think" and body.get("thinking"):
            return [{"type": "thinking", "thinking": "Weighing it.", "signature": "sig-fake"},
                    {"type": "text", "text": "Hello from Claude."}]
        return [{"type": "text", "text": "Hello from Claude."}]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        self.requests.append({"headers": dict(request.headers), "body": body})
        model = body["model"]
        if (answer := await hostile.answer(request, model, bool(body.get("stream")))) is not None:
            return answer
        if model == "claude-429":
            return _error(429, "rate_limit_error", "Number of requests exceeded", {"retry-after": "13"})
        if model == "claude-529":
            return _error(529, "overloaded_error", "Overloaded")
        if model == "claude-long":
            return _error(400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum")
        blocks = self._answer(body)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        message = {"id": "msg_fake01", "type": "message", "role": "assistant", "model": model}
        if not body.get("stream"):
            return web.json_response({**message, "content": blocks, "stop_reason": stop, "stop_sequence": None,
                                      "usage": USAGE})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        start_usage = {**USAGE, "output_tokens": 1}
        await resp.write(_sse("message_start", {"type": "message_start",
                                                "message": {**message, "content": [], "stop_reason": None,
                                                            "usage": start_usage}}))
        await resp.write(_sse("ping", {"type": "ping"}))
        for i, block in enumerate(blocks):
            if block["type"] == "thinking":
                await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                              "content_block": {"type": "thinking", "thinking": ""}}))
                for piece in ("Weighing", " it."):
                    await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                                  "delta": {"type": "thinking_delta",
                                                                            "thinking": piece}}))
                await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                    "type": "signature_delta", "signature": block["signature"]}}))
            elif block["type"] == "text":
                await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                              "content_block": {"type": "text", "text": ""}}))
                words = block["text"].split(" ")
                for n, word in enumerate(words):
                    if model == "claude-midstream-error" and n == 1:
                        await resp.write(_sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                                   "message": "Overloaded"}}))
                        return resp
                    piece = word if n == 0 else " " + word
                    await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                                  "delta": {"type": "text_delta", "text": piece}}))
            else:
                await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                                              "content_block": {**block, "input": {}}}))
                arguments = json.dumps(block["input"])
                for part in (arguments[:8], arguments[8:]):
                    await resp.write(_sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                                  "delta": {"type": "input_json_delta",
                                                                            "partial_json": part}}))
            await resp.write(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
        await resp.write(_sse("message_delta", {"type": "message_delta",
                                                "delta": {"stop_reason": stop, "stop_sequence": None},
                                                "usage": {"output_tokens": USAGE["output_tokens"]}}))
        await resp.write(_sse("message_stop", {"type": "message_stop"}))
        return resp
