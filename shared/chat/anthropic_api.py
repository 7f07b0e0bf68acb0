"""Anthropic's Messages API in front of every model (`POST /api/v1/messages`): a Messages request becomes a chat
request, and the chat answer (or its stream) becomes a Message (or Anthropic's stream events).

The reverse of shared/providers/anthropic.py. In: `system` becomes a system message; text, image and PDF document
blocks become content parts; `tool_use` blocks become the assistant's `tool_calls` and `tool_result` blocks `tool`
messages (placed before the rest of their user turn, as the chat shape wants them right after the call);
`thinking` blocks of earlier assistant turns are dropped (they are outputs, and most models take none back);
tools, tool_choice (`any` → required, `disable_parallel_tool_use` → parallel_tool_calls: false), stop_sequences,
temperature, top_p, top_k, metadata.user_id and the gateway's own fields (`models`, `provider`, `transforms`…).
`thinking` is passed on as the chat request's `reasoning` budget. Server tools (web search, code execution…) and
fields the API does not define are refused with a 400 naming them, never ignored.
Out: reasoning becomes a thinking block, content a text block, tool calls `tool_use` blocks; finish reasons map to
stop reasons; usage is Anthropic's (input tokens exclude cache reads, which are `cache_read_input_tokens`), with
our `cost` beside it. Streams: message_start, content_block_start/delta/stop (thinking_delta, text_delta,
input_json_delta), message_delta (stop reason
and the whole usage), message_stop; a failure after the first event is an `error` event.
"""

from __future__ import annotations

from typing import Annotated, Any, AsyncIterator, Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from shared.chat import frames
from shared.chat.schema import ChatRequest, json_object, parse_chat_request
from shared.errors import BadRequestError

# The chat request's own fields a Messages request may carry too (OpenRouter's extensions).
GATEWAY_FIELDS = frozenset({"models", "provider", "route", "plugins", "transforms", "heal_json", "session_id",
                            "usage", "user"})
STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
               "content_filter": "refusal"}
ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
              403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
              503: "overloaded_error", 529: "overloaded_error"}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # blocks may carry cache_control, citations…: passed on


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Base64Source(_Closed):
    type: Literal["base64"]
    media_type: Annotated[str, Field(min_length=1, max_length=100)]
    data: str


class UrlSource(_Closed):
    type: Literal["url"]
    url: Annotated[str, Field(min_length=1)]


class TextSource(_Closed):
    type: Literal["text"]
    media_type: str = "text/plain"
    data: str


class TextBlock(_Open):
    type: Literal["text"]
    text: str


class ImageBlock(_Open):
    type: Literal["image"]
    source: Annotated[Union[Base64Source, UrlSource], Field(discriminator="type")]


class DocumentBlock(_Open):
    type: Literal["document"]
    source: Annotated[Union[Base64Source, UrlSource, TextSource], Field(discriminator="type")]
    title: str | None = None


class ToolUseBlock(_Open):
    type: Literal["tool_use"]
    id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    input: dict[str, Any]


class ToolResultBlock(_Open):
    type: Literal["tool_result"]
    tool_use_id: Annotated[str, Field(min_length=1)]
    content: str | list[Annotated[Union[TextBlock, ImageBlock], Field(discriminator="type")]] = ""
    is_error: StrictBool = False


class ThinkingBlock(_Open):
    type: Literal["thinking", "redacted_thinking"]


Block = Annotated[Union[TextBlock, ImageBlock, DocumentBlock, ToolUseBlock, ToolResultBlock, ThinkingBlock],
                  Field(discriminator="type")]


class MessageParam(_Closed):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolParam(_Open):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class ToolChoice(_Closed):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: StrictBool | None = None


class Thinking(_Closed):
    type: Literal["enabled", "disabled"]
    budget_tokens: Annotated[int, Field(ge=1)] | None = None


class Metadata(_Closed):
    user_id: Annotated[str, Field(max_length=256)] | None = None


class MessagesRequest(_Open):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    system: str | list[TextBlock] | None = None
    stop_sequences: Annotated[list[str], Field(max_length=4)] | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    stream: StrictBool = False
    tools: Annotated[list[dict[str, Any]], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: Metadata | None = None


def _invalid(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"Invalid request: {field}: {message}", metadata={"field": field})


_TAGS = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
                   "base64", "url"})


def _where(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a JSON path, without the labels pydantic adds inside unions (a block's
    `type` tag after its index or after `source`, a branch's type name)."""
    out, previous = "", None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (part in _TAGS and (isinstance(previous, int) or previous == "source")) \
                and str(part).isidentifier() and part not in ("str", "list", "dict", "int", "float", "bool"):
            out += ("." if out else "") + str(part)
        previous = part
    return out or "body"


def parse(raw: bytes) -> ChatRequest:
    """A Messages body → the chat request it asks for, or a 400 naming the field (in the Messages shape)."""
    data = json_object(raw)
    try:
        request = MessagesRequest.model_validate(data)
    except ValidationError as e:
        first = max(e.errors(include_url=False), key=lambda err: len(err["loc"]))
        raise _invalid(_where(first["loc"]), first["msg"].removeprefix("Value error, ")) from None
    unknown = sorted(set(request.model_extra or ()) - GATEWAY_FIELDS)
    if unknown:
        raise _invalid(unknown[0], "is not a Messages API field this gateway serves")
    return parse_chat_request(orjson.dumps(to_chat(request, data)))


def _image(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    url = source.url if isinstance(source, UrlSource) else f"data:{source.media_type};base64,{source.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _part(block: Any) -> dict[str, Any]:
    """A user or tool content block as a chat content part."""
    extra = block.model_extra or {}
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text, **extra}
    if isinstance(block, ImageBlock):
        return _image(block)
    source = block.source
    if isinstance(source, TextSource):
        return {"type": "text", "text": source.data}
    if isinstance(source, UrlSource):
        return {"type": "file", "file": {"filename": block.title or "document.pdf", "file_data": source.url}}
    return {"type": "file", "file": {"filename": block.title or "document.pdf",
                                     "file_data": f"data:{source.media_type};base64,{source.data}"}}


def _turn(i: int, message: MessageParam) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: an assistant turn is one message, a user turn its tool results then
    one message with the rest."""
    field = f"messages[{i}].content"
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    if message.role == "assistant":
        text, calls = [], []
        for j, block in enumerate(message.content):
            if isinstance(block, TextBlock):
                text.append(block.text)
            elif isinstance(block, ToolUseBlock):
                calls.append({"id": block.id, "type": "function",
                              "function": {"name": block.name, "arguments": orjson.dumps(block.input).decode()}})
            elif not isinstance(block, ThinkingBlock):
                raise _invalid(f"{field}[{j}]", f"an assistant turn cannot hold a {block.type} block")
        out: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    results, parts = [], []
    for j, block in enumerate(message.content):
        if isinstance(block, ToolResultBlock):
            content = block.content if isinstance(block.content, str) else \
                [_part(b) for b in block.content]
            if block.is_error:  # the chat shape has no flag for it: the model is told in words
                content = "Error: " + content if isinstance(content, str) else \
                    [{"type": "text", "text": "Error:"}, *content]
            results.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
        elif isinstance(block, (ToolUseBlock, ThinkingBlock)):
            raise _invalid(f"{field}[{j}]", f"a user turn cannot hold a {block.type} block")
        else:
            parts.append(_part(block))
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _tool(i: int, tool: dict[str, Any]) -> dict[str, Any]:
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise _invalid(f"tools[{i}].type", f"server tool {kind!r} is not served by this gateway (only client tools, "
                                           "with an input_schema)")
    try:
        t = ToolParam.model_validate(tool)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise _invalid(f"tools[{i}]." + _where(first["loc"]) if first["loc"] else f"tools[{i}]", first["msg"]) from None
    function: dict[str, Any] = {"name": t.name, "parameters": t.input_schema}
    if t.description is not None:
        function["description"] = t.description
    return {"type": "function", "function": function}


def to_chat(request: MessagesRequest, data: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body a Messages request stands for."""
    messages: list[dict[str, Any]] = []
    if request.system:
        system = request.system if isinstance(request.system, str) else "\n\n".join(b.text for b in request.system)
        messages.append({"role": "system", "content": system})
    for i, message in enumerate(request.messages):
        messages.extend(_turn(i, message))
    body: dict[str, Any] = {k: data[k] for k in GATEWAY_FIELDS if k in data}
    body.update(model=request.model, messages=messages, stream=request.stream)
    for name in ("max_tokens", "temperature", "top_p", "top_k"):
        if (value := getattr(request, name)) is not None:
            body[name] = value
    if request.stop_sequences:
        body["stop"] = request.stop_sequences
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    if request.tools:
        body["tools"] = [_tool(i, t) for i, t in enumerate(request.tools)]
    choice = request.tool_choice
    if choice is not None:
        if choice.type == "tool":
            if not choice.name:
                raise _invalid("tool_choice.name", "is required when type is tool")
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if choice.disable_parallel_tool_use:
            body["parallel_tool_calls"] = False
    if request.thinking is not None and request.thinking.type == "enabled":
        if request.thinking.budget_tokens is None:
            raise _invalid("thinking.budget_tokens", "is required when thinking is enabled")
        body["reasoning"] = {"max_tokens": request.thinking.budget_tokens}
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    return body


# -- out ------------------------------------------------------------------------------------------------------
def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    out = {"input_tokens": max((usage.get("prompt_tokens") or 0) - cached, 0),
           "output_tokens": usage.get("completion_tokens") or 0,
           "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out


def _input(arguments: str | None) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_unparsed_arguments": arguments}  # (healing runs first: this is an answer it could not repair)
    return value if isinstance(value, dict) else {"value": value}


def message(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion body → a Message."""
    choice = (body.get("choices") or [{}])[0]
    said = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if said.get("reasoning"):  # (no signature: it cannot be sent back to Anthropic itself as a thinking block)
        content.append({"type": "thinking", "thinking": said["reasoning"], "signature": ""})
    if said.get("content"):
        content.append({"type": "text", "text": said["content"]})
    for call in said.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                        "input": _input(fn.get("arguments"))})
    out = {"id": body.get("id"), "type": "message", "role": "assistant", "model": body.get("model"),
           "content": content, "stop_reason": STOP_REASON.get(choice.get("finish_reason") or "stop", "end_turn"),
           "stop_sequence": None, "usage": _usage(body.get("usage")), "provider": body.get("provider")}
    for extra in ("heal_status", "heal", "transforms"):
        if extra in body:
            out[extra] = body[extra]
    return out


class _StreamState:
    """Which content block is open, and what the final message_delta will say."""

    def __init__(self) -> None:
        self.started = False
        self.block: tuple[str, int] | None = None  # ("text", -1) or ("tool", the chat tool call's index)
        self.index = -1  # the open block's index in the message
        self.stop_reason = "end_turn"
        self.usage: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}

    def close(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [frames.sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def open(self, kind: tuple[str, int], block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.block, self.index = kind, self.index + 1
        out.append(frames.sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                                      "content_block": block}))
        return out

    def delta(self, delta: dict[str, Any]) -> bytes:
        return frames.sse("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})


def _start(chunk: dict[str, Any]) -> bytes:
    return frames.sse("message_start", {"type": "message_start", "message": {
        "id": chunk.get("id"), "type": "message", "role": "assistant", "model": chunk.get("model"), "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0}}})  # (the chat stream counts at its end: message_delta)


def _error(error: dict[str, Any]) -> bytes:
    kind = ERROR_TYPE.get(error.get("code") or 502, "api_error")
    return frames.sse("error", {"type": "error", "error": {"type": kind, "message": error.get("message", ""),
                                                           "metadata": error.get("metadata") or {}}})


def _translate(state: _StreamState, chunk: dict[str, Any]) -> list[bytes]:
    out: list[bytes] = []
    if not state.started:
        state.started = True
        out.append(_start(chunk))
    if chunk.get("usage"):
        state.usage = chunk["usage"]
        state.extra.update({k: chunk[k] for k in ("heal_status", "heal") if k in chunk})
    for choice in chunk.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue  # (a Messages request has no `n`)
        delta = choice.get("delta") or {}
        if delta.get("reasoning"):
            if state.block != ("thinking", -1):
                out += state.open(("thinking", -1), {"type": "thinking", "thinking": "", "signature": ""})
            out.append(state.delta({"type": "thinking_delta", "thinking": delta["reasoning"]}))
        if delta.get("content"):
            if state.block != ("text", -1):
                out += state.open(("text", -1), {"type": "text", "text": ""})
            out.append(state.delta({"type": "text_delta", "text": delta["content"]}))
        for call in delta.get("tool_calls") or ():
            kind = ("tool", call.get("index", 0))
            fn = call.get("function") or {}
            if state.block != kind:
                out += state.open(kind, {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                                         "input": {}})
            if fn.get("arguments"):
                out.append(state.delta({"type": "input_json_delta", "partial_json": fn["arguments"]}))
        if choice.get("finish_reason"):
            state.stop_reason = STOP_REASON.get(choice["finish_reason"], "end_turn")
    return out


async def events(relay: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chat relay's frames → Anthropic's stream events."""
    state = _StreamState()
    async for kind, item in frames.read(relay):
        if kind == frames.COMMENT:
            yield item
        elif kind == frames.CHUNK:
            if "error" in item:
                yield b"".join([*state.close(), _error(item["error"])])
                return
            out = _translate(state, item)
            if out:
                yield b"".join(out)
        else:
            usage = _usage(state.usage)
            yield b"".join([*state.close(), frames.sse("message_delta", {
                "type": "message_delta", "delta": {"stop_reason": state.stop_reason, "stop_sequence": None},
                "usage": usage, **state.extra}), frames.sse("message_stop", {"type": "message_stop"})])
            return
