"""The `bedrock` kind: AWS Bedrock's Converse / ConverseStream API through botocore.

Credentials come from the default chain (the Lambda role on AWS); the provider's `region` picks the endpoint and
its `base_url`, when set, overrides it (tests, VPC endpoints). Translated both ways: system and developer
messages → `system`; text and image parts (data URLs → bytes) → content blocks; assistant `tool_calls` →
`toolUse` blocks, `tool` messages → `toolResult` blocks (consecutive same-role messages merged); tools →
`toolConfig.tools[].toolSpec`, tool_choice → `toolChoice`; max tokens, temperature, top_p, stop →
`inferenceConfig`. `stopReason` → `finish_reason` (guardrail_intervened / content_filtered → content_filter;
original kept as `native_finish_reason`). Streams: messageStart / contentBlockStart / contentBlockDelta /
contentBlockStop / messageStop / metadata events → OpenAI chunks (tool input deltas included); usage from
the `metadata` event, so streamed and unstreamed counts agree (cache reads/writes included).
JSON mode: json_schema is a forced tool whose input is the answer; json_object a system instruction.
Not translated (knowingly): n > 1 and logprobs (400), image URLs that are not data URLs (Converse takes bytes or S3
only: 400), seed, penalties (dropped).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, AsyncIterator

import orjson
from botocore.config import Config
from botocore.eventstream import ParserError
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import get_session

from shared.catalog import Endpoint
from shared.chat.schema import ChatRequest, ImagePart, Message, TextPart, ToolChoiceFunction
from shared.config import get_settings
from shared.errors import (BadRequestError, ProviderUnreachableError, SwitchyardError, UpstreamError,
                           UpstreamTimeoutError)
from shared.providers.base import (JSON_INSTRUCTION, Completion, Usage, alternating_turns, assistant_choice,
                                   call_arguments, tool_call, upstream_error)

JSON_TOOL = "json_answer"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}
STATUS = {"ThrottlingException": 429, "ValidationException": 400, "AccessDeniedException": 403,
          "ResourceNotFoundException": 404, "ModelTimeoutException": 504, "ServiceUnavailableException": 503,
          "ModelNotReadyException": 503, "InternalServerException": 500, "ModelErrorException": 502,
          "ServiceQuotaExceededException": 429}
STREAM_ERRORS = {"internalServerException": 500, "modelStreamErrorException": 502, "validationException": 400,
                 "throttlingException": 429, "serviceUnavailableException": 503}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


# botocore blocks for a whole generation: Bedrock calls get threads of their own, so that slow answers queue
# neither each other (the default executor has 6 threads on 2 cores) nor key lookups and metering flushes.
_EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="bedrock")


async def _call(fn: Any, params: dict[str, Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, lambda: fn(**params))


@lru_cache(maxsize=32)
def _client(region: str | None, endpoint_url: str | None) -> Any:
    s = get_settings()
    config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=s.connect_timeout_seconds,
                    read_timeout=s.first_byte_timeout_seconds, max_pool_connections=64)
    return get_session().create_client("bedrock-runtime", region_name=region, endpoint_url=endpoint_url,
                                       config=config)


def client_for(endpoint: Endpoint) -> Any:
    return _client(endpoint.provider.region, endpoint.provider.base_url)


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"toolResult": {"toolUseId": message.tool_call_id, "content": [{"text": message.text()}]}}]
    blocks: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"text": message.content})
    else:
        for part in message.content or ():
            if isinstance(part, TextPart):
                blocks.append({"text": part.text})
            elif isinstance(part, ImagePart):
                url = part.image_url.url
                header, _, data = url.partition(",")
                media = header[5:].split(";")[0]
                if not url.startswith("data:") or ";base64" not in header or media not in _FORMATS:
                    raise BadRequestError("Bedrock takes images as base64 data URLs (png, jpeg, gif, webp)",
                                          metadata={"field": "messages.content.image_url"})
                blocks.append({"image": {"format": _FORMATS[media], "source": {"bytes": base64.b64decode(data)}}})
    for call in message.tool_calls or ():
        arguments = call_arguments(call)
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": arguments}})
    return blocks


def build_request(request: ChatRequest, endpoint: Endpoint) -> dict[str, Any]:
    if request.logprobs:
        raise BadRequestError("logprobs are not available from Bedrock models",
                              metadata={"field": "logprobs", "provider_name": endpoint.provider.id})
    if request.n > 1:
        raise BadRequestError("n > 1 is not supported by Bedrock models",
                              metadata={"field": "n", "provider_name": endpoint.provider.id})
    texts, messages = alternating_turns(request.messages, _blocks)
    system = [{"text": t} for t in texts]
    inference: dict[str, Any] = {}
    if request.output_limit or endpoint.config.max_output:
        inference["maxTokens"] = request.output_limit or endpoint.config.max_output
    if request.temperature is not None:
        inference["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    params: dict[str, Any] = {"modelId": endpoint.upstream_model, "messages": messages}
    tools = [{"toolSpec": {"name": t.function.name, "description": t.function.description or t.function.name,
                           "inputSchema": {"json": t.function.parameters or {"type": "object", "properties": {}}}}}
             for t in request.tools or ()]
    choice: dict[str, Any] | None = None
    if isinstance(request.tool_choice, ToolChoiceFunction):
        choice = {"tool": {"name": request.tool_choice.function.name}}
    elif request.tool_choice in ("auto", "required"):
        choice = {"auto": {}} if request.tool_choice == "auto" else {"any": {}}
    if request.json_schema is not None:
        tools.append({"toolSpec": {"name": JSON_TOOL, "description": "Give the answer.",
                                   "inputSchema": {"json": request.json_schema}}})
        choice = {"tool": {"name": JSON_TOOL}}
    elif request.wants_json:
        system.append({"text": JSON_INSTRUCTION})
    if tools and request.tool_choice != "none":
        params["toolConfig"] = {"tools": tools, **({"toolChoice": choice} if choice else {})}
    if system:
        params["system"] = system
    if inference:
        params["inferenceConfig"] = inference
    return params


def usage_of(u: Any) -> Usage | None:
    """Bedrock's usage; None when it is missing or not believable (then the gateway counts)."""
    if not u or not isinstance(u, dict):
        return None
    read, write = u.get("cacheReadInputTokens"), u.get("cacheWriteInputTokens")
    return Usage.checked(u.get("inputTokens"), u.get("outputTokens"), read, extra_prompt=(read, write))


def _error(e: Exception, endpoint: Endpoint) -> SwitchyardError:
    provider = endpoint.provider.id
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        code, message = err.get("Code", ""), str(err.get("Message", ""))
        status = STATUS.get(code) or STREAM_ERRORS.get(code) or \
            e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502
        if code == "ValidationException" and ("too long" in message.lower() or "too many" in message.lower()):
            code = "context_length_exceeded"
        return upstream_error(status, message, provider=provider, code=code)
    if isinstance(e, ParserError):  # botocore refuses frames over 24 MiB and bytes that are not its framing
        return UpstreamError(f"{provider} answered a stream request with a body that is not an event stream "
                             f"({type(e).__name__})", metadata={"provider_name": provider})
    if "timeout" in type(e).__name__.lower():
        return UpstreamTimeoutError(f"{provider} did not answer in time", metadata={"provider_name": provider})
    return ProviderUnreachableError(f"Could not reach {provider}: {type(e).__name__}",
                                    metadata={"provider_name": provider})


class BedrockProvider:
    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion:
        params = build_request(request, endpoint)
        try:
            data = await _call(client_for(endpoint).converse, params)
        except (ClientError, BotoCoreError) as e:
            raise _error(e, endpoint) from e
        text, calls = [], []
        for block in ((data.get("output") or {}).get("message") or {}).get("content") or ():
            if "text" in block:
                text.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                if use.get("name") == JSON_TOOL and request.json_schema is not None:
                    text.append(orjson.dumps(use.get("input")).decode())
                else:
                    calls.append(tool_call(use.get("toolUseId"), use.get("name"), use.get("input", {})))
        native = data.get("stopReason")
        choice = assistant_choice(text, calls, FINISH.get(native or "", "stop"), native)
        request_id = (data.get("ResponseMetadata") or {}).get("RequestId")
        body = {"id": request_id, "object": "chat.completion", "created": int(time.time()),
                "model": endpoint.upstream_model, "choices": [choice]}
        return Completion(body, usage_of(data.get("usage")) or Usage(estimated=True), choice["finish_reason"], request_id)

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[dict[str, Any]]:
        params = build_request(request, endpoint)
        try:
            response = await _call(client_for(endpoint).converse_stream, params)
        except (ClientError, BotoCoreError) as e:
            raise _error(e, endpoint) from e
        translator = _StreamTranslator(request, endpoint)
        async for event in _events(response["stream"], endpoint):
            for chunk in translator.event(event):
                yield chunk


async def _events(stream: Any, endpoint: Endpoint) -> AsyncIterator[dict[str, Any]]:
    """botocore's blocking event iterator, read on a thread and handed to the loop one event at a time."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for event in stream:
                if stop.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, ("event", event))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except Exception as e:  # delivered to the reader, who raises it in our vocabulary
            loop.call_soon_threadsafe(queue.put_nowait, ("error", e))
        finally:
            stream.close()

    thread = threading.Thread(target=pump, name="bedrock-stream", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise _error(item, endpoint) from item
            yield item
    finally:
        stop.set()


class _StreamTranslator:
    def __init__(self, request: ChatRequest, endpoint: Endpoint) -> None:
        self.endpoint, self.json_tool = endpoint, request.json_schema is not None
        self.tools: dict[int, int] = {}
        self.answer_blocks: set[int] = set()
        self.native: str | None = None
        self.finished = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": None, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.endpoint.upstream_model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "native_finish_reason": self.native if finish else None}]}

    def event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        for name, status in STREAM_ERRORS.items():
            if name in event:
                raise upstream_error(status, str(event[name].get("message", name)), provider=self.endpoint.provider.id,
                                     code=name)
        if "messageStart" in event:
            return [self._chunk({"role": "assistant", "content": ""})]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use, index = (start.get("start") or {}).get("toolUse"), start.get("contentBlockIndex", 0)
            if use is None:
                return []
            if self.json_tool and use.get("name") == JSON_TOOL:
                self.answer_blocks.add(index)
                return []
            n = self.tools[index] = len(self.tools)
            return [self._chunk({"tool_calls": [{"index": n, "id": use.get("toolUseId"), "type": "function",
                                                 "function": {"name": use.get("name"), "arguments": ""}}]})]
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta, index = body.get("delta") or {}, body.get("contentBlockIndex", 0)
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            if "toolUse" in delta:
                partial = delta["toolUse"].get("input", "")
                if index in self.answer_blocks:
                    return [self._chunk({"content": partial})]
                return [self._chunk({"tool_calls": [{"index": self.tools.get(index, 0),
                                                     "function": {"arguments": partial}}]})]
            return []
        if "messageStop" in event:
            self.native = event["messageStop"].get("stopReason")
            finish = FINISH.get(self.native or "", "stop")
            if finish == "tool_calls" and not self.tools:
                finish = "stop"
            return [self._chunk({}, finish)]
        if "metadata" in event:
            u = usage_of(event["metadata"].get("usage"))
            return [{**self._chunk({}), "choices": [], "usage": u.to_openai()}] if u else []
        return []
