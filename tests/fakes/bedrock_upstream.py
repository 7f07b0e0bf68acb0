"""A local fake of Bedrock Runtime's Converse API (POST /model/{modelId}/converse and /converse-stream), speaking
its wire formats: REST JSON, errors named in `x-amzn-ErrorType`, and streams in the binary
application/vnd.amazon.eventstream framing (prelude, typed headers, payload, CRC32s) that botocore parses.

  bedrock-ok         "Hello from Bedrock." with cache-read usage
  bedrock-tool       a toolUse block (or, once a toolResult came back, a text answer)
  bedrock-json       answers through the forced tool named in toolConfig.toolChoice
  bedrock-throttle   ThrottlingException (429);  bedrock-long: ValidationException "Input is too long"
  bedrock-midstream  one text delta, then a throttlingException event
  and the hostile answers of tests/fakes/hostile.py under their own names (huge, json-to-stream…)
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from aiohttp import web

from tests.fakes import hostile
from tests.fakes.server import FakeServer, catalog_text

USAGE = {"inputTokens": 11, "outputTokens": 5, "totalTokens": 16, "cacheReadInputTokens": 4,
         "cacheWriteInputTokens": 2}


def frame(kind: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One event-stream message."""
    names = {"event": ":event-type", "exception": ":exception-type"}
    headers = b""
    for name, value in ((names[message_type], kind), (":content-type", "application/json"),
                        (":message-type", message_type)):
        n, v = name.encode(), value.encode()
        headers += bytes([len(n)]) + n + bytes([7]) + len(v).to_bytes(2, "big") + v
    body = json.dumps(payload).encode()
    prelude = (12 + len(headers) + len(body) + 4).to_bytes(4, "big") + len(headers).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + headers + body
    return message + zlib.crc32(message).to_bytes(4, "big")


class FakeBedrock(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def catalog_yaml(self) -> str:
        return catalog_text(
            "fakebedrock", f"kind: bedrock, region: us-east-1, base_url: '{self.base_url}'", "bedrock-fake",
            ("bedrock-ok", "bedrock-tool", "bedrock-json", "bedrock-throttle", "bedrock-long", "bedrock-midstream",
             *hostile.NAMES),
            "context_length: 200000, max_output: 2048, pricing: {prompt: 3.0, completion: 15.0}")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model}/{action}", self._handle)

    def _blocks(self, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        if model == "bedrock-tool":
            if any("toolResult" in b for b in body["messages"][-1]["content"]):
                return [{"text": "It is sunny."}]
            name = body["toolConfig"]["tools"][0]["toolSpec"]["name"]
            return [{"toolUse": {"toolUseId": "tooluse_01", "name": name, "input": {"city": "Paris"}}}]
        if model == "bedrock-json":
            name = body["toolConfig"]["toolChoice"]["tool"]["name"]
            return [{"toolUse": {"toolUseId": "tooluse_02", "name": name, "input": {"name": "Ada", "n": 36}}}]
        return [{"text": "Hello from Bedrock."}]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        model, action = request.match_info["model"], request.match_info["action"]
        self.requests.append({"headers": dict(request.headers), "body": body, "model": model, "action": action})
        if (answer := await hostile.answer(request, model, action == "converse-stream")) is not None:
            return answer
        if model == "bedrock-throttle":
            return web.json_response({"message": "Too many requests, please wait before trying again."}, status=429,
                                     headers={"x-amzn-ErrorType": "ThrottlingException"})
        if model == "bedrock-long":
            return web.json_response({"message": "Input is too long for requested model."}, status=400,
                                     headers={"x-amzn-ErrorType": "ValidationException"})
        blocks = self._blocks(model, body)
        stop = "tool_use" if any("toolUse" in b for b in blocks) else "end_turn"
        if action == "converse":
            return web.json_response({"output": {"message": {"role": "assistant", "content": blocks}},
                                      "stopReason": stop, "usage": USAGE, "metrics": {"latencyMs": 12}})
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)
        await resp.write(frame("messageStart", {"role": "assistant"}))
        for i, block in enumerate(blocks):
            if "text" in block:
                for n, word in enumerate(block["text"].split(" ")):
                    if model == "bedrock-midstream" and n == 1:
                        await resp.write(frame("throttlingException", {"message": "Slow down"}, "exception"))
                        return resp
                    await resp.write(frame("contentBlockDelta", {"contentBlockIndex": i,
                                                                 "delta": {"text": word if n == 0 else " " + word}}))
            else:
                use = block["toolUse"]
                await resp.write(frame("contentBlockStart", {"contentBlockIndex": i, "start": {
                    "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
                arguments = json.dumps(use["input"])
                for part in (arguments[:6], arguments[6:]):
                    await resp.write(frame("contentBlockDelta", {"contentBlockIndex": i,
                                                                 "delta": {"toolUse": {"input": part}}}))
            await resp.write(frame("contentBlockStop", {"contentBlockIndex": i}))
        await resp.write(frame("messageStop", {"stopReason": stop}))
        await resp.write(frame("metadata", {"usage": USAGE, "metrics": {"latencyMs": 12}}))
        return resp
