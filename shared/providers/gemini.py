"""The `gemini` kind: Google's Gemini API (generateContent / streamGenerateContent) behind the OpenAI shape.

Translated both ways: system and developer messages → `systemInstruction`; user/assistant turns → `contents`
with `user`/`model` roles (consecutive same-role turns merged); text and image parts (data URLs → inlineData,
other URLs → fileData); assistant `tool_calls` → `functionCall` parts and `tool` messages → `functionResponse`
parts (named after the call they answer); tools → `functionDeclarations`; tool_choice → `toolConfig`;
temperature, top_p, max tokens, stop, seed, n → `generationConfig`; JSON mode → `responseMimeType`
application/json (+ `responseJsonSchema`). `finishReason` maps to `finish_reason` (SAFETY, RECITATION and the
other blocking reasons → content_filter; the original kept as `native_finish_reason`). Usage from
`usageMetadata`: prompt = promptTokenCount, completion = candidates + thoughts, cached = cachedContentTokenCount,
reasoning = thoughtsTokenCount; the final chunk of a stream carries the full counts, so streamed and
unstreamed usage agree. `reasoning` → `thinkingConfig` (a budget: shared/chat/reasoning.py; 0 when disabled), thought
parts → `reasoning`. logprobs / top_logprobs → `responseLogprobs` / `logprobs`, `logprobsResult` back in OpenAI's shape.
Not translated (knowingly): presence/frequency penalties (dropped).
"""

from __future__ import annotations

import base64
import time
from contextlib import aclosing
from typing import Any, AsyncIterator

import orjson

from shared.aws.secrets import vendor_key
from shared.catalog import Endpoint
from shared.chat import reasoning
from shared.chat.schema import ChatRequest, ImagePart, Message, TextPart, ToolChoiceFunction
from shared.errors import SwitchyardError, UpstreamError
from shared.providers.base import (Completion, Marker, Usage, alternating_turns, call_arguments, post, read_ok, sse_data,
                                   upstream_error)
from shared.providers.http import Response

DEFAULT_URL = "https://generativelanguage.googleapis.com"
BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "FINISH_REASON_UNSPECIFIED": "stop", "OTHER": "stop",
          "MALFORMED_FUNCTION_CALL": "stop"}


def _part(part: Any) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart):
        url = part.image_url.url
        if url.startswith("data:"):
            header, _, data = url.partition(",")
            mime = header[5:].split(";")[0] or "image/png"
            if ";base64" not in header:
                data = base64.b64encode(data.encode()).decode()
            return {"inlineData": {"mimeType": mime, "data": data}}
        return {"fileData": {"fileUri": url}}
    return None


def _parts(message: Message, call_names: dict[str, str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        name = call_names.get(message.tool_call_id or "", message.name or "tool")
        try:
            response = orjson.loads(message.text())
        except orjson.JSONDecodeError:
            response = message.text()
        return [{"functionResponse": {"name": name, "response": response if isinstance(response, dict)
                                      else {"result": response}}}]
    parts: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            parts.append({"text": message.content})
    else:
        parts.extend(p for p in (_part(x) for x in message.content or ()) if p)
    for call in message.tool_calls or ():
        call_names[call.id] = call.function.name
        args = call_arguments(call)
        parts.append({"functionCall": {"name": call.function.name, "args": args}})
    return parts


def _logprobs(result: Any) -> dict[str, Any] | None:
    """Gemini's logprobsResult (chosen candidates, and the top candidates at each step) in OpenAI's shape."""
    if not isinstance(result, dict) or not result.get("chosenCandidates"):
        return None
    tops = result.get("topCandidates") or []
    content = []
    for i, chosen in enumerate(result["chosenCandidates"]):
        token = str(chosen.get("token", ""))
        alternatives = (tops[i].get("candidates") or []) if i < len(tops) and isinstance(tops[i], dict) else []
        content.append({"token": token, "logprob": chosen.get("logProbability"), "bytes": list(token.encode()),
                        "top_logprobs": [{"token": str(c.get("token", "")), "logprob": c.get("logProbability"),
                                          "bytes": list(str(c.get("token", "")).encode())} for c in alternatives]})
    return {"content": content, "refusal": None}


def build_request(request: ChatRequest, endpoint: Endpoint) -> dict[str, Any]:
    call_names: dict[str, str] = {}
    texts, contents = alternating_turns(request.messages, lambda m: _parts(m, call_names), assistant="model",
                                        key="parts")
    system = [{"text": t} for t in texts]
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if getattr(request, ours) is not None:
            config[theirs] = getattr(request, ours)
    if request.output_limit:
        config["maxOutputTokens"] = request.output_limit
    if (asked := request.reasoning) is not None:
        thinking = reasoning.budget(request, request.output_limit or endpoint.config.max_output or 65_536)
        config["thinkingConfig"] = {"includeThoughts": asked.enabled is not False and reasoning.shown(request)}
        if thinking is not None or asked.enabled is False:
            config["thinkingConfig"]["thinkingBudget"] = thinking or 0  # (0: no thinking)
    if request.stop:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.n > 1:
        config["candidateCount"] = request.n
    if request.logprobs:
        config["responseLogprobs"] = True
        if request.top_logprobs:
            config["logprobs"] = request.top_logprobs
    if request.wants_json:
        config["responseMimeType"] = "application/json"
        if request.json_schema is not None:
            config["responseJsonSchema"] = request.json_schema
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [
            {"name": t.function.name, "description": t.function.description or "",
             **({"parameters": t.function.parameters} if t.function.parameters else {})} for t in request.tools]}]
    choice = request.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}}
    elif choice in ("auto", "required", "none"):
        body["toolConfig"] = {"functionCallingConfig": {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}}
    return body


def usage_of(u: Any) -> Usage | None:
    """Gemini's usageMetadata; None when it is missing or not believable (then the gateway counts)."""
    if not u or not isinstance(u, dict):
        return None
    usage = Usage.checked(u.get("promptTokenCount"), u.get("candidatesTokenCount"), u.get("cachedContentTokenCount"),
                          u.get("thoughtsTokenCount"))
    if usage is not None:
        usage.completion_tokens += usage.reasoning_tokens  # thoughts are billed as output
    return usage


def _finish(native: str | None, has_calls: bool) -> str | None:
    if native is None:
        return None
    if native in BLOCKED:
        return "content_filter"
    return "tool_calls" if has_calls else FINISH.get(native, "stop")


def _error(status: int, raw: bytes, headers: dict[str, str], endpoint: Endpoint) -> SwitchyardError:
    message, code = raw[:500].decode("utf-8", "replace"), None
    try:
        err = orjson.loads(raw)
        err = (err[0] if isinstance(err, list) else err).get("error") or {}
        message, code = str(err.get("message") or message), err.get("status")
    except (orjson.JSONDecodeError, AttributeError, IndexError):
        pass
    if status == 400 and "token" in message.lower() and ("exceed" in message.lower() or "too long" in message.lower()):
        code = "context_length_exceeded"
    return upstream_error(status, message, provider=endpoint.provider.id, code=code,
                          retry_after=headers.get("retry-after"))


class _Calls:
    """Gemini sends function calls whole, without ids: number them per choice."""

    def __init__(self) -> None:
        self.count: dict[int, int] = {}

    def convert(self, index: int, part: dict[str, Any]) -> dict[str, Any]:
        n = self.count.get(index, 0)
        self.count[index] = n + 1
        call = part["functionCall"]
        return {"index": n, "id": call.get("id") or f"call_{index}_{n}", "type": "function",
                "function": {"name": call.get("name"), "arguments": orjson.dumps(call.get("args") or {}).decode()}}


class GeminiProvider:
    honours_deadline = True  # all its I/O goes through base.post
    streams_by_read = True  # its stream comes through sse_data

    async def _post(self, request: ChatRequest, endpoint: Endpoint, *, stream: bool) -> Response:
        base = (endpoint.provider.base_url or DEFAULT_URL).rstrip("/")
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{base}/v1beta/models/{endpoint.upstream_model}:{action}"
        headers = {"content-type": "application/json", **endpoint.provider.headers}
        key = vendor_key(endpoint.provider.api_key_env, endpoint.provider.api_key_secret)
        if key:
            headers["x-goog-api-key"] = key
        return await post(endpoint, url, headers, orjson.dumps(build_request(request, endpoint)))

    def _choices(self, data: dict[str, Any], calls: _Calls, *, stream: bool) -> list[dict[str, Any]]:
        choices = []
        for position, candidate in enumerate(data.get("candidates") or ()):
            index = candidate.get("index", position)
            parts = (candidate.get("content") or {}).get("parts") or ()
            text = "".join(p.get("text", "") for p in parts if "text" in p and not p.get("thought"))
            thought = "".join(p.get("text", "") for p in parts if "text" in p and p.get("thought"))
            tool_calls = [calls.convert(index, p) for p in parts if "functionCall" in p]
            native = candidate.get("finishReason")
            finish = _finish(native, bool(tool_calls) or bool(calls.count.get(index)))
            message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
            if tool_calls:
                message["tool_calls"] = tool_calls if stream else [{k: v for k, v in c.items() if k != "index"}
                                                                   for c in tool_calls]
            if thought:
                message["reasoning"] = thought  # (Gemini sends thoughts only when includeThoughts is set)
            key = "delta" if stream else "message"
            if stream and not text:
                message.pop("content")
            choices.append({"index": index, key: message, "finish_reason": finish, "native_finish_reason": native,
                            "logprobs": _logprobs(candidate.get("logprobsResult"))})
        return choices

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion:
        raw = await read_ok(await self._post(request, endpoint, stream=False), endpoint, _error)
        try:
            data = orjson.loads(raw)
            choices = self._choices(data, _Calls(), stream=False)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            raise UpstreamError(f"{endpoint.provider.id} returned a body that is not a GenerateContentResponse",
                                metadata={"provider_name": endpoint.provider.id}) from None
        if not choices:
            feedback = data.get("promptFeedback") or {}
            choices = [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter",
                        "native_finish_reason": feedback.get("blockReason"), "logprobs": None}]
        body = {"id": data.get("responseId"), "object": "chat.completion", "created": int(time.time()),
                "model": data.get("modelVersion", endpoint.upstream_model), "choices": choices}
        return Completion(body, usage_of(data.get("usageMetadata")) or Usage(estimated=True), choices[0]["finish_reason"],
                          data.get("responseId"))

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[list[dict[str, Any]] | Marker]:
        resp = await self._post(request, endpoint, stream=True)
        calls, usage, first = _Calls(), None, True
        async with aclosing(sse_data(resp, endpoint, _error)) as reads:
            async for read in reads:
                if read.__class__ is Marker:
                    yield read
                    continue
                chunks = []
                for raw in read:
                    try:
                        data = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        data = None
                    if not isinstance(data, dict):
                        raise UpstreamError(f"{endpoint.provider.id} sent a stream event that is not a JSON "
                                            "object", metadata={"provider_name": endpoint.provider.id})
                    if "error" in data:
                        err = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
                        code = err.get("code")
                        status = code if isinstance(code, int) and 400 <= code <= 599 else 502
                        raise upstream_error(status, str(err.get("message"))[:500], provider=endpoint.provider.id,
                                             code=str(err["status"]) if err.get("status") else None)
                    usage = data.get("usageMetadata") or usage  # the last chunk carries the full counts
                    chunk = {"id": data.get("responseId"), "object": "chat.completion.chunk",
                             "created": int(time.time()), "model": data.get("modelVersion", endpoint.upstream_model),
                             "choices": self._choices(data, calls, stream=True)}
                    if first:
                        for choice in chunk["choices"]:
                            choice["delta"]["role"] = "assistant"
                        first = False
                    chunks.append(chunk)
                yield chunks
        if (u := usage_of(usage)) is not None:
            yield [{"id": None, "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": endpoint.upstream_model, "choices": [], "usage": u.to_openai()}]
