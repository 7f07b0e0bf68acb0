"""A local fake of the Gemini API (models/{model}:generateContent and :streamGenerateContent?alt=sse),
scripted by model name:

  gemini-ok      "Hello from Gemini." (3 chunks when streamed; cumulative usageMetadata, full in the last)
  gemini-tool    a functionCall (or, once a functionResponse came back, a text answer)
  gemini-json    JSON text when generationConfig.responseMimeType is application/json
  (any)          with generationConfig.responseLogprobs: a logprobsResult for "Hello from Gemini." (unstreamed)
  gemini-think   with thinkingConfig.includeThoughts: a thought part ("Weighing it.") before "Hello from Gemini."
  gemini-safety  finishReason SAFETY with no content;  gemini-429: RESOURCE_EXHAUSTED;  gemini-long: 400 token limit
  and the hostile answers of tests/fakes/hostile.py under their own names (huge, json-to-stream…)
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes import hostile
from tests.fakes.server import FakeServer, catalog_text

USAGE = {"promptTokenCount": 17, "candidatesTokenCount": 6, "thoughtsTokenCount": 4, "cachedContentTokenCount": 2,
         "totalTokenCount": 27}


class FakeGemini(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def catalog_yaml(self) -> str:
        return catalog_text(
            "fakegemini", f"kind: gemini, base_url: '{self.base_url}', api_key_env: FAKE_GEMINI_KEY", "gemini-fake",
            ("gemini-ok", "gemini-tool", "gemini-json", "gemini-safety", "gemini-429", "gemini-long", "gemini-think",
             *hostile.NAMES),
            "context_length: 1048576, pricing: {prompt: 1.25, completion: 10.0}")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self._generate)

    def _parts(self, model: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        if model == "gemini-safety":
            return [], "SAFETY"
        if model == "gemini-tool":
            last = body["contents"][-1]["parts"]
            if any("functionResponse" in p for p in last):
                return [{"text": "It is sunny."}], "STOP"
            name = body["tools"][0]["functionDeclarations"][0]["name"]
            return [{"functionCall": {"name": name, "args": {"city": "Paris"}}}], "STOP"
        if model == "gemini-json" and body.get("generationConfig", {}).get("responseMimeType") == "application/json":
            return [{"text": '{"name": "Ada", "n": 36}'}], "STOP"
        if model == "gemini-think" and body.get("generationConfig", {}).get("thinkingConfig", {}).get("includeThoughts"):
            return [{"text": "Weighing it.", "thought": True}, {"text": "Hello from Gemini."}], "STOP"
        return [{"text": "Hello from Gemini."}], "STOP"

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        model, _, action = request.match_info["call"].partition(":")
        self.requests.append({"headers": dict(request.headers), "body": body, "action": action,
                              "query": dict(request.query)})
        if (answer := await hostile.answer(request, model, action.startswith("stream"))) is not None:
            return answer
        if model == "gemini-429":
            return web.json_response({"error": {"code": 429, "message": "Resource has been exhausted",
                                                "status": "RESOURCE_EXHAUSTED"}}, status=429)
        if model == "gemini-long":
            return web.json_response({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                                                "The input token count (1200000) exceeds the maximum number of "
                                                "tokens allowed (1048576)."}}, status=400)
        parts, finish = self._parts(model, body)
        base = {"modelVersion": model, "responseId": "resp-fake01"}
        if action == "generateContent":
            candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
            if body.get("generationConfig", {}).get("responseLogprobs"):
                top = body["generationConfig"].get("logprobs", 0)
                candidate["logprobsResult"] = {
                    "chosenCandidates": [{"token": t, "logProbability": -0.1} for t in ("Hello", " from", " Gemini.")],
                    "topCandidates": [{"candidates": [{"token": t, "logProbability": -0.1},
                                                      {"token": " Hi", "logProbability": -2.5}][:top]}
                                      for t in ("Hello", " from", " Gemini.")]}
            return web.json_response({**base, "candidates": [candidate], "usageMetadata": USAGE})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = [{"text": w} for w in ("Hello", " from", " Gemini.")] if parts and "text" in parts[0] and \
            model == "gemini-ok" else parts
        for n, piece in enumerate(pieces or [None]):
            last = n == max(len(pieces), 1) - 1
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [piece] if piece else []}, "index": 0}
            if last:
                candidate["finishReason"] = finish
            usage = USAGE if last else {"promptTokenCount": USAGE["promptTokenCount"], "totalTokenCount": 17}
            await resp.write(b"data: " + json.dumps({**base, "candidates": [candidate],
                                                     "usageMetadata": usage}).encode() + b"\r\n\r\n")
        return resp
