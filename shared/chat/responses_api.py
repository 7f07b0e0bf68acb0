"""The OpenAI Responses API, the subset that maps onto chat (`POST /api/v1/responses`): text and image input,
function tools and their round trips, JSON output, streaming events. Stateless, as OpenRouter's is.

In: `instructions` becomes a system message; `input` (a string, or items: messages with input_text / input_image /
output_text parts, `function_call` and `function_call_output` items; earlier `reasoning` items are dropped) becomes
the messages; function tools, tool_choice, max_output_tokens, temperature, top_p, parallel_tool_calls, user,
`text.format` (→ response_format), `reasoning` (passed on as the chat's), `truncation: "auto"` (→ middle-out) and
the gateway's own fields. Refused with a 400 naming the field: anything that needs stored state
(`previous_response_id`, `conversation`, `store: true`, `background`), hosted tools (web or file search, code
interpreter…), and fields the API defines that this subset does not serve.
Out: a `response` object whose output is a `message` item (output_text) and `function_call` items; `status` is
`incomplete` (reason max_output_tokens) when the answer was cut. Streams: response.created, response.in_progress,
output_item.added/done, content_part.added/done, output_text.delta/done, function_call_arguments.delta/done,
response.completed (or response.incomplete); a failure after the first event is an `error` event then
response.failed. Every event carries its `sequence_number`; there is no `[DONE]`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, AsyncIterator, Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from shared.chat import frames
from shared.chat.schema import ChatRequest, json_object, parse_chat_request
from shared.errors import BadRequestError

GATEWAY_FIELDS = frozenset({"models", "provider", "route", "plugins", "transforms", "heal_json", "session_id",
                            "usage"})
STATEFUL = ("previous_response_id", "conversation", "background", "prompt")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Closed):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class InputImage(_Closed):
    type: Literal["input_image"]
    image_url: Annotated[str, Field(min_length=1)]
    detail: Literal["auto", "low", "high"] | None = None


class InputMessage(_Closed):
    type: Literal["message"] | None = None
    id: str | None = None
    status: str | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[Annotated[Union[InputText, InputImage], Field(discriminator="type")]]


class FunctionCallItem(_Closed):
    type: Literal["function_call"]
    id: str | None = None
    call_id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    arguments: str
    status: str | None = None


class FunctionOutputItem(_Closed):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: Annotated[str, Field(min_length=1)]
    output: str
    status: str | None = None


class ReasoningItem(_Open):
    type: Literal["reasoning"]


class FunctionTool(_Closed):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedTool(_Closed):
    type: Literal["function"]
    name: str


class TextFormat(_Closed):
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None
    description: str | None = None


class TextOptions(_Closed):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(_Open):
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    input: Annotated[str, Field(min_length=1)] | Annotated[list[dict[str, Any]], Field(min_length=1)]
    instructions: str | None = None
    tools: Annotated[list[dict[str, Any]], Field(max_length=128)] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedTool | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    parallel_tool_calls: StrictBool | None = None
    stream: StrictBool = False
    store: StrictBool | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, str] | None = None
    text: TextOptions | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None


_ITEMS = {"message": InputMessage, "function_call": FunctionCallItem, "function_call_output": FunctionOutputItem,
          "reasoning": ReasoningItem}


def _invalid(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"Invalid request: {field}: {message}", metadata={"field": field})


def _first_error(e: ValidationError, prefix: str = "") -> tuple[str, str]:
    first = max(e.errors(include_url=False), key=lambda err: len(err["loc"]))
    path = prefix
    for part in first["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("input_text", "output_text", "input_image", "str", "list", "function") \
                and str(part).isidentifier():
            path += ("." if path else "") + str(part)
    return path or "body", first["msg"]


def parse(raw: bytes) -> tuple[ChatRequest, ResponsesRequest]:
    """A Responses body → the chat request it stands for (and the request, which the answer echoes), or a 400."""
    data = json_object(raw)
    for name in STATEFUL:
        if data.get(name) is not None:
            raise _invalid(name, "needs responses stored by the server; this gateway is stateless (send the "
                                 "whole conversation in `input`)")
    try:
        request = ResponsesRequest.model_validate(data)
    except ValidationError as e:
        raise _invalid(*_first_error(e)) from None
    if request.store:
        raise _invalid("store", "responses are not stored by this gateway (send store: false or leave it out)")
    unknown = sorted(set(request.model_extra or ()) - GATEWAY_FIELDS)
    if unknown:
        raise _invalid(unknown[0], "is not a Responses API field this gateway serves")
    return parse_chat_request(orjson.dumps(to_chat(request, data))), request


def _item(i: int, item: dict[str, Any]) -> Any:
    kind = item.get("type", "message")
    model = _ITEMS.get(kind)
    if model is None:
        raise _invalid(f"input[{i}].type", f"{kind!r} items are not served by this gateway")
    try:
        return model.model_validate(item)
    except ValidationError as e:
        raise _invalid(*_first_error(e, f"input[{i}]")) from None


def _content(content: str | list[Any]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [{"type": "text", "text": p.text} if isinstance(p, InputText) else
            {"type": "image_url", "image_url": {"url": p.image_url, **({"detail": p.detail} if p.detail else {})}}
            for p in content]


def _messages(request: ResponsesRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        return messages + [{"role": "user", "content": request.input}]
    for i, raw in enumerate(request.input):
        item = _item(i, raw)
        if isinstance(item, InputMessage):
            content = _content(item.content)
            if item.role == "assistant" and isinstance(content, list):
                content = "".join(p["text"] for p in content if p["type"] == "text")
            messages.append({"role": item.role, "content": content})
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)  # parallel calls: one assistant message
            elif last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionOutputItem):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
    return messages


def _tool(i: int, tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise _invalid(f"tools[{i}].type", f"hosted tool {tool.get('type')!r} is not served by this gateway "
                                           "(only function tools)")
    try:
        t = FunctionTool.model_validate(tool)
    except ValidationError as e:
        raise _invalid(*_first_error(e, f"tools[{i}]")) from None
    function = t.model_dump(exclude_none=True, exclude={"type"})
    return {"type": "function", "function": function}


def to_chat(request: ResponsesRequest, data: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body a Responses request stands for."""
    body: dict[str, Any] = {k: data[k] for k in GATEWAY_FIELDS if k in data}
    body.update(messages=_messages(request), stream=request.stream)
    if request.model is not None:
        body["model"] = request.model
    if request.max_output_tokens is not None:
        body["max_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if (value := getattr(request, name)) is not None:
            body[name] = value
    if request.reasoning is not None:  # (its `summary`: the whole reasoning text comes back, or none)
        effort = request.reasoning.get("effort")
        body["reasoning"] = {"enabled": False} if effort == "none" else {"effort": effort} if effort else {"enabled": True}
    if request.tools:
        body["tools"] = [_tool(i, t) for i, t in enumerate(request.tools)]
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = choice if isinstance(choice, str) else \
            {"type": "function", "function": {"name": choice.name}}
    fmt = request.text.format if request.text is not None else None
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_schema":
            if not fmt.name or fmt.schema_ is None:
                raise _invalid("text.format", "a json_schema format needs a name and a schema")
            body["response_format"] = {"type": "json_schema", "json_schema": fmt.model_dump(
                exclude_none=True, by_alias=True, exclude={"type"})}
        else:
            body["response_format"] = {"type": "json_object"}
    if request.truncation == "auto":
        body["transforms"] = list(dict.fromkeys([*body.get("transforms", []), "middle-out"]))
    return body


# -- out ------------------------------------------------------------------------------------------------------
def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return {"input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                                     or 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": (usage.get("completion_tokens_details") or {})
                                      .get("reasoning_tokens") or 0},
            "total_tokens": prompt + completion, **({"cost": usage["cost"]} if "cost" in usage else {})}


def _response(request: ResponsesRequest, rid: str, model: str | None, created: int, status: str,
              output: list[dict[str, Any]], usage: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    fmt = request.text.format if request.text is not None and request.text.format is not None else None
    return {
        "id": rid, "object": "response", "created_at": created, "status": status, "model": model,
        "output": output, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions, "max_output_tokens": request.max_output_tokens,
        "parallel_tool_calls": request.parallel_tool_calls if request.parallel_tool_calls is not None else True,
        "previous_response_id": None, "store": False, "temperature": request.temperature, "top_p": request.top_p,
        "text": {"format": fmt.model_dump(exclude_none=True, by_alias=True) if fmt else {"type": "text"}},
        "tool_choice": request.tool_choice if isinstance(request.tool_choice, str) or request.tool_choice is None
        else request.tool_choice.model_dump(), "tools": request.tools or [], "truncation": request.truncation
        or "disabled", "metadata": request.metadata or {}, "user": request.user,
        "usage": _usage(usage) if usage is not None else None, **extra}


def _text_item(rid: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{rid}", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []}


def _call_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"type": "function_call", "id": f"fc_{call.get('id')}", "call_id": call.get("id"), "name": fn.get("name"),
            "arguments": (fn.get("arguments") or "") if status == "completed" else "", "status": status}


def response(request: ResponsesRequest, body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion body → a Response."""
    choice = (body.get("choices") or [{}])[0]
    said = choice.get("message") or {}
    output = []
    if said.get("content"):
        output.append(_text_item(body["id"], said["content"]))
    output += [_call_item(c) for c in said.get("tool_calls") or ()]
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    extra = {k: body[k] for k in ("provider", "heal_status", "heal", "transforms") if k in body}
    return _response(request, body["id"], body.get("model"), int(body.get("created") or time.time()), status,
                     output, body.get("usage"), **extra)


class _Events:
    """The events of one streamed response, numbered."""

    def __init__(self, request: ResponsesRequest) -> None:
        self.request = request
        self.sequence = 0
        self.rid: str = ""
        self.model: str | None = None
        self.created = int(time.time())
        self.output: list[dict[str, Any]] = []  # finished items
        self.open: dict[str, Any] | None = None  # the item being streamed: its kind, key, index and text so far
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return frames.sse(kind, data)

    def snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return _response(self.request, self.rid, self.model, self.created, status, self.output,
                         self.usage if status != "in_progress" else None, **extra)

    def begin(self, chunk: dict[str, Any]) -> list[bytes]:
        self.rid, self.model = chunk.get("id") or "", chunk.get("model")
        self.created = int(chunk.get("created") or self.created)
        return [self.event("response.created", response=self.snapshot("in_progress")),
                self.event("response.in_progress", response=self.snapshot("in_progress"))]

    def close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        index = item["index"]
        if item["kind"] == "text":
            done = _text_item(self.rid, item["text"])
            part = done["content"][0]
            out = [self.event("response.output_text.done", item_id=done["id"], output_index=index, content_index=0,
                              text=item["text"], logprobs=[]),
                   self.event("response.content_part.done", item_id=done["id"], output_index=index,
                              content_index=0, part=part)]
        else:
            done = _call_item({"id": item["call_id"], "function": {"name": item["name"], "arguments": item["text"]}})
            out = [self.event("response.function_call_arguments.done", item_id=done["id"], output_index=index,
                              arguments=item["text"])]
        self.output.append(done)
        return out + [self.event("response.output_item.done", output_index=index, item=done)]

    def text(self, delta: str) -> list[bytes]:
        out: list[bytes] = []
        if self.open is None or self.open["kind"] != "text":
            out += self.close()
            index = len(self.output)
            self.open = {"kind": "text", "key": None, "index": index, "text": ""}
            item = _text_item(self.rid, "", "in_progress")
            out += [self.event("response.output_item.added", output_index=index, item=item),
                    self.event("response.content_part.added", item_id=item["id"], output_index=index,
                               content_index=0, part={"type": "output_text", "text": "", "annotations": []})]
        self.open["text"] += delta
        return out + [self.event("response.output_text.delta", item_id=f"msg_{self.rid}",
                                 output_index=self.open["index"], content_index=0, delta=delta, logprobs=[])]

    def call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        fn = call.get("function") or {}
        key = call.get("index", 0)
        if self.open is None or self.open["kind"] != "call" or self.open["key"] != key:
            out += self.close()
            index = len(self.output)
            self.open = {"kind": "call", "key": key, "index": index, "text": "", "call_id": call.get("id"),
                         "name": fn.get("name")}
            item = _call_item({"id": call.get("id"), "function": {"name": fn.get("name")}}, "in_progress")
            out.append(self.event("response.output_item.added", output_index=index, item=item))
        if fn.get("arguments"):
            self.open["text"] += fn["arguments"]
            out.append(self.event("response.function_call_arguments.delta", item_id=f"fc_{self.open['call_id']}",
                                  output_index=self.open["index"], delta=fn["arguments"]))
        return out


async def events(request: ResponsesRequest, relay: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chat relay's frames → the Responses API's stream events."""
    state = _Events(request)
    started = False
    async for kind, item in frames.read(relay):
        if kind == frames.COMMENT:
            yield item
            continue
        if kind == frames.END:
            status = "incomplete" if state.finish == "length" else "completed"
            yield b"".join([*state.close(), state.event(f"response.{status}",
                                                        response=state.snapshot(status, **state.extra))])
            return
        out: list[bytes] = []
        if not started:
            started = True
            out += state.begin(item)
        if "error" in item:
            error = item["error"]
            failed = {**state.snapshot("failed"), "error": {"code": str(error.get("code")),
                                                           "message": error.get("message", "")}}
            yield b"".join([*out, *state.close(), state.event("error", code=str(error.get("code")),
                                                              message=error.get("message", ""), param=None,
                                                              error=error),
                            state.event("response.failed", response=failed)])
            return
        if item.get("usage"):
            state.usage = item["usage"]
            state.extra.update({k: item[k] for k in ("provider", "heal_status", "heal") if k in item})
        for choice in item.get("choices") or ():
            if choice.get("index", 0):
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += state.text(delta["content"])
            for call in delta.get("tool_calls") or ():
                out += state.call(call)
            if choice.get("finish_reason"):
                state.finish = choice["finish_reason"]
        if out:
            yield b"".join(out)
