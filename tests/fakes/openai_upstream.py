"""A local fake of an OpenAI-compatible vendor, speaking the real wire format (JSON and SSE).

It records every request it receives (path, headers, body) so tests can assert what the gateway sent, and
it is scripted per upstream model name:
  ok            a completion; streams end with a usage chunk when `stream_options.include_usage` is set
  slow-stream   a stream that pauses 0.6 s before its first chunk (keep-alive comments must flow)
  slow-headers  a stream whose response headers come after 0.6 s (keep-alive comments must flow still)
  error-401     401 echoing the key it was sent, as vendors do
  error-429     429 with Retry-After: 11;  error-500: 500;  error-context: 400 context_length_exceeded
  garbage       200 with a body that is not JSON
  mid-error     a stream that sends one chunk then an error event
  long-stream   a stream of 200 chunks, 20 ms apart (for client disconnects)
  *no-usage     an `ok` answer that never reports usage, streamed (even with include_usage) or not
  reset         drops the connection without answering (a connection reset)
  hang          answers after 5 s (its catalog entry times out after 0.3 s)
  fail-once     503 on every other call, starting with the first (a transient failure)
  error-503     503 with Retry-After: 9;  error-503-date: 503 with Retry-After as an HTTP date 30 s ahead
  error-429-forever   429 with Retry-After: 999999
  drip          a valid answer whose first 40 bytes trickle in a byte every 50 ms (JSON or SSE)
and on /v1/embeddings (models with `output_modalities: [embeddings]`):
  embed         one vector an input ([index + 1, 0.5, -0.5, 0.25], or `dimensions` long), base64 when asked, usage
                5 tokens an input;  embed-no-usage: the same without usage;  embed-error-500: 500
and on GET /v1/models (what vLLM and llama.cpp answer): `ok` and `org/served-model` (answered as `ok`);
and the hostile answers of tests/fakes/hostile.py (huge bodies, JSON or garbage to a stream request).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.fakes import hostile
from tests.fakes.server import FakeServer, catalog_text

USAGE = {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20,
         "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}
TEXT = ["Hello", " from", " the", " fake", " upstream", "."]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class FakeUpstream(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def catalog_yaml(self) -> str:
        """A SWITCHYARD_CONFIG adding this upstream as an `openai` provider with one model per script."""
        return catalog_text(
            "fakevendor", f"kind: openai, base_url: '{self.base_url}', api_key_env: FAKE_VENDOR_KEY", "fake",
            ("ok", "slow-stream", "slow-headers", "error-401", "error-429", "error-500", "error-context", "garbage", "mid-error",
             "long-stream", "gpt-4o-no-usage", "no-usage", "reset", "fail-once", "error-503", "error-503-date",
             "error-429-forever", "drip", *hostile.NAMES),
            "context_length: 8192, pricing: {prompt: 1.0, completion: 2.0}",
            "  - {id: fake/hang, provider: fakevendor, upstream_model: hang, context_length: 8192, "
            "timeout_seconds: 0.3, pricing: {prompt: 1.0, completion: 2.0}}\n"
            + "".join(f"  - {{id: fake/{name}, provider: fakevendor, upstream_model: {name}, context_length: 8192, "
                      "output_modalities: [embeddings], pricing: {prompt: 0.1, completion: 0}}\n"
                      for name in ("embed", "embed-no-usage", "embed-error-500")))

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/openai/v1/chat/completions", self._chat)  # Azure OpenAI, version-less
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)  # Azure OpenAI
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "created": 1, "owned_by": "fake"} for name in ("ok", "org/served-model")]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body,
                              "query": dict(request.query), "at": time.time()})
        if body["model"] == "embed-error-500":
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        inputs = body["input"] if isinstance(body["input"], list) and isinstance(body["input"][0], str) else \
            [body["input"]]
        data = []
        for i, _ in enumerate(inputs):
            vector = ([float(i + 1), 0.5, -0.5, 0.25] * 64)[:body.get("dimensions", 4)]
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() \
                if body.get("encoding_format") == "base64" else vector
            data.append({"object": "embedding", "index": i, "embedding": value})
        answer = {"object": "list", "data": data, "model": body["model"]}
        if body["model"] != "embed-no-usage":
            answer["usage"] = {"prompt_tokens": 5 * len(inputs), "total_tokens": 5 * len(inputs)}
        return web.json_response(answer)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body,
                              "query": dict(request.query), "at": time.time()})
        model = request.match_info.get("deployment") or body["model"]
        if (answer := await hostile.answer(request, model, bool(body.get("stream")))) is not None:
            return answer
        if model == "drip":
            if body.get("stream"):
                payload = b"".join(_chunk(model, {"content": piece}) for piece in TEXT) + b"data: [DONE]\n\n"
                return await hostile.drip(request, payload, "text/event-stream")
            payload = hostile.completion_json(model, "".join(TEXT))
            return await hostile.drip(request, payload, "application/json")
        if model in ("error-503", "error-503-date"):
            after = "9" if model == "error-503" else formatdate(time.time() + 30, usegmt=True)
            return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=503,
                                     headers={"Retry-After": after})
        if model == "error-429-forever":
            return web.json_response({"error": {"message": "slow down", "type": "rate_limit"}}, status=429,
                                     headers={"Retry-After": "999999"})
        if model == "reset":
            request.transport.abort()
            raise ConnectionResetError("dropped on purpose")
        if model == "hang":
            await asyncio.sleep(5)
        if model == "fail-once":
            self.calls["fail-once"] = self.calls.get("fail-once", 0) + 1
            if self.calls["fail-once"] % 2:
                return web.json_response({"error": {"message": "try again", "type": "server_error"}}, status=503)
        if model == "error-429":
            return web.json_response({"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limited"}},
                                     status=429, headers={"Retry-After": "11"})
        if model == "error-500":
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if model == "error-context":
            return web.json_response({"error": {"message": "This model's maximum context length is 8192 tokens",
                                                "code": "context_length_exceeded"}}, status=400)
        if model == "error-401":  # vendors echo (part of) the key they were sent
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return web.json_response({"error": {"message": f"Incorrect API key provided: {key}. Also {key[:8]}...",
                                                "code": "invalid_api_key"}}, status=401)
        if model == "garbage":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        usage = not model.endswith("no-usage")
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(TEXT)},
                             "finish_reason": "stop"}],
                **({"usage": USAGE} if usage else {})})
        if model == "slow-headers":
            await asyncio.sleep(0.6)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if model == "slow-stream":
            await asyncio.sleep(0.6)
        await resp.write(_chunk(model, {"role": "assistant", "content": ""}))
        if model == "mid-error":
            await resp.write(_chunk(model, {"content": "partial"}))
            await resp.write(b'data: {"error": {"message": "upstream overloaded", "code": 503}}\n\n')
            return resp
        pieces = TEXT if model != "long-stream" else [f" w{i}" for i in range(200)]
        for piece in pieces:
            if model == "long-stream":
                await asyncio.sleep(0.02)
            await resp.write(_chunk(model, {"content": piece}))
        await resp.write(_chunk(model, {}, "stop"))
        if usage and (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(b"data: " + json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                                     "created": 1, "model": model, "choices": [],
                                                     "usage": USAGE}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp
