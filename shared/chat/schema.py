"""The OpenAI chat-completions request, validated at the boundary.

Unknown top-level fields are kept (vendor extras such as `top_k` reach OpenAI-compatible upstreams),
except those that could steer where or how the gateway connects: see `NEVER_FORWARDED`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, ValidationError, model_validator

from shared.chat.json_schema import SchemaBudget, check_schema
from shared.errors import BadRequestError


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Model):
    type: Literal["text"]
    text: str


class ImageURL(_Model):
    url: Annotated[str, Field(min_length=1)]
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Model):
    data: str
    format: str


class AudioPart(_Model):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(_Model):
    type: Literal["file"]
    file: dict[str, Any]


ContentPart = Annotated[Union[TextPart, ImagePart, AudioPart, FilePart], Field(discriminator="type")]


class FunctionCall(_Model):
    name: str
    arguments: str


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_rules(self) -> "Message":
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))


class FunctionDef(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Model):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Closed):
    name: str


class ToolChoiceFunction(_Closed):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaFormat(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(_Closed):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return self


class Plugin(_Model):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    enabled: bool = True


class StreamOptions(_Model):
    include_usage: bool | None = None


class Reasoning(_Closed):
    """OpenRouter's `reasoning`: how much the model may think (shared/chat/reasoning.py)."""

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    exclude: StrictBool = False
    enabled: StrictBool | None = None


class UsageOptions(_Closed):
    """OpenRouter's usage accounting: answers always carry usage with its cost here, so `include` only confirms."""

    include: StrictBool | None = None


class MaxPrice(_Model):
    """The most the caller will pay, in USD per 1M tokens (OpenRouter's `provider.max_price`)."""

    prompt: Annotated[float, Field(ge=0)] | None = None
    completion: Annotated[float, Field(ge=0)] | None = None


ProviderSlug = Annotated[str, Field(min_length=1, max_length=64)]


class ProviderPreferences(_Closed):
    """OpenRouter's `provider` object: which endpoints may serve the call, and in what order. Closed: a field we
    do not serve (OpenRouter's `quantizations`, `zdr`…) is a 400 naming it, not a preference silently ignored."""

    order: Annotated[list[ProviderSlug], Field(max_length=32)] | None = None
    allow_fallbacks: StrictBool = True
    only: Annotated[list[ProviderSlug], Field(max_length=64)] | None = None
    ignore: Annotated[list[ProviderSlug], Field(max_length=64)] | None = None
    sort: Literal["price", "latency", "throughput"] | None = None
    max_price: MaxPrice | None = None
    require_parameters: StrictBool = False
    data_collection: Literal["allow", "deny"] = "allow"


NEVER_FORWARDED = frozenset({
    "api_base", "base_url", "api_key", "api_version", "endpoint", "url", "custom_llm_provider",
    "extra_headers", "headers", "organization",
})
GATEWAY_FIELDS = frozenset({"models", "provider", "route", "plugins", "transforms", "heal_json", "usage",
                            "session_id"})
_NOT_UPSTREAM = NEVER_FORWARDED | GATEWAY_FIELDS | {"model"}
_PARAMETERS = ("tools", "tool_choice", "response_format", "temperature", "top_p", "max_tokens", "stop", "seed",
               "frequency_penalty", "presence_penalty")
_REQUESTABLE = frozenset(_PARAMETERS) | {"structured_outputs"}  # every name parameters() can give
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})
# orjson reads 1024 levels but writes at most 255: a deeper body could not be forwarded to an upstream. Only a
# body with that many brackets at all (a C-speed count) is walked.
MAX_BODY_DEPTH = 128


class ChatRequest(_Model):
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)  # the body as the client sent it
    _ids: list[str] | None = PrivateAttr(default=None)
    _parameters: frozenset[str] | None = PrivateAttr(default=None)
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    models: Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=16)] | None = None
    messages: Annotated[list[Message], Field(min_length=1)]
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    response_format: ResponseFormat | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: Annotated[str, Field(max_length=256)] | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    n: Annotated[int, Field(ge=1, le=8)] = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None  # keeps a sticky split on one model
    provider: ProviderPreferences | None = None
    heal_json: StrictBool | None = None  # None: heal when the request asks for JSON
    plugins: Annotated[list[Plugin], Field(max_length=16)] | None = None
    transforms: Annotated[list[Literal["middle-out"]], Field(max_length=4)] | None = None  # shared/chat/middle_out.py
    usage: UsageOptions | None = None
    reasoning: Reasoning | None = None
    logprobs: StrictBool | None = None  # passed on where the vendor has them (openai kinds, Gemini, the sim)
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None

    @property
    def model_ids(self) -> list[str]:
        """The requested model, then the `models` fallbacks, without repeats."""
        ids = self.__pydantic_private__["_ids"]
        if ids is None:
            ids = list(dict.fromkeys(([self.model] if self.model else []) + (self.models or [])))
            self.__pydantic_private__["_ids"] = ids
        return ids

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    @property
    def heal_content(self) -> bool:
        """heal_json decides when given; else OpenRouter's response-healing plugin; else whether JSON was asked."""
        if self.heal_json is not None:
            return self.heal_json
        plugin = next((p for p in self.plugins or () if p.id == "response-healing"), None)
        if plugin is not None:
            return plugin.enabled
        return self.wants_json

    @property
    def heal_tool_arguments(self) -> bool:
        """Tool-call arguments are JSON by definition: healed unless healing is switched off."""
        plugin = next((p for p in self.plugins or () if p.id == "response-healing"), None)
        return bool(self.tools) and self.heal_json is not False and (plugin is None or plugin.enabled)

    @property
    def json_schema(self) -> dict[str, Any] | None:
        fmt = self.response_format
        return fmt.json_schema.schema_ if fmt and fmt.type == "json_schema" and fmt.json_schema else None

    def parameters(self) -> frozenset[str]:
        """The parameters this request uses, named as `supported_parameters` names them (computed once)."""
        private = self.__pydantic_private__
        used = private["_parameters"]
        if used is None:
            found = {name for name in _PARAMETERS if getattr(self, name) is not None}
            if self.max_completion_tokens is not None:
                found.add("max_tokens")
            if self.response_format is not None and self.response_format.type == "json_schema":
                found.add("structured_outputs")
            used = private["_parameters"] = frozenset(found)
        return used

    def for_endpoint(self, supported: frozenset[str]) -> "ChatRequest":
        """This request as an endpoint receives it: parameters it does not support dropped."""
        if supported >= _REQUESTABLE:  # the usual case: nothing to look at
            return self
        unsupported = self.parameters() - supported
        return self.without(unsupported) if unsupported else self

    def without(self, parameters: frozenset[str] | set[str]) -> "ChatRequest":
        """A copy with these parameters dropped (for an endpoint that does not support them)."""
        fields = {name: None for name in parameters if name in _PARAMETERS}
        if "max_tokens" in parameters:
            fields["max_completion_tokens"] = None
        if "structured_outputs" in parameters and "response_format" not in parameters:
            fields["response_format"] = None
        copy = self.model_copy(update=fields)
        raw = self.__pydantic_private__["_raw"]
        copy._raw = {k: v for k, v in raw.items() if k not in fields} if raw else {}
        copy._parameters = None  # model_copy kept the original's
        return copy

    def upstream_body(self, upstream_model: str) -> dict[str, Any]:
        """What an OpenAI-compatible upstream receives: the client's own fields as sent (validated above),
        without gateway fields and nothing that steers connections."""
        raw = self.__pydantic_private__["_raw"] or self.model_dump(exclude_none=True, by_alias=True)
        body = {k: v for k, v in raw.items() if k not in _NOT_UPSTREAM}
        body["model"] = upstream_model
        return body


def _where(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a JSON path, without the branch labels pydantic adds inside unions."""
    out, previous = "", None
    for part in loc:
        if part == previous:
            continue  # a discriminated union repeats its tag ("image_url") before the field of that name
        previous = part
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).isidentifier() and part not in _TYPE_TAGS:
            out += ("." if out else "") + str(part)
    return out or "body"


def _invalid(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"Invalid request: {field}: {message}", metadata={"field": field})


def _deeper_than(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        if children and depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body as the JSON object it must be, or the 400 (`field: body`) every front answers."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequestError(f"Request body is not valid JSON: {e}", metadata={"field": "body"}) from None
    if not isinstance(data, dict):
        raise BadRequestError("Request body must be a JSON object", metadata={"field": "body"})
    return data


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Bytes → a validated request, or a 400 naming the bad field."""
    data = json_object(raw)
    try:
        request = ChatRequest.model_validate(data)
        request._raw = data
    except ValidationError as e:
        # The deepest location is the most specific one (inside a union, the branch that got furthest).
        first = max(e.errors(include_url=False), key=lambda err: len(err["loc"]))
        raise _invalid(_where(first["loc"]), first["msg"].removeprefix("Value error, ")) from None
    if not request.model_ids:
        raise _invalid("model", "is required")
    if request.top_logprobs is not None and not request.logprobs:
        raise _invalid("top_logprobs", "needs logprobs: true")
    if request.tool_choice is not None and not isinstance(request.tool_choice, str) and not request.tools:
        raise _invalid("tool_choice", "names a function but no tools were given")
    if request.tools or request.json_schema is not None:
        _check_schemas(request)
    if raw.count(b"[") + raw.count(b"{") > MAX_BODY_DEPTH and _deeper_than(data, MAX_BODY_DEPTH):
        raise BadRequestError(f"Request body is nested deeper than {MAX_BODY_DEPTH} levels",
                              metadata={"field": "body"})
    return request


def _check_schemas(request: ChatRequest) -> None:
    """Every schema of the request usable (shared/chat/json_schema.py), or a 400 naming the first that is not."""
    budget = SchemaBudget()
    found = [("response_format.json_schema.schema", request.json_schema)]
    found += [(f"tools[{i}].function.parameters", t.function.parameters) for i, t in enumerate(request.tools or ())]
    for field, schema in found:
        if schema is not None and (problem := check_schema(schema, budget)):
            raise _invalid(field, problem)
