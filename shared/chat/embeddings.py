"""Embeddings (`POST /api/v1/embeddings`), routed and metered by the chat service's own parts.

A call plans like a chat call (the model, its `models` fallbacks, provider preferences, the key's allowed models,
circuit breakers, retries; a limited key's worst case held first) over a stand-in chat request whose one message
is the input, so routing rules that read the prompt read the input. An endpoint serves it when its model lists
`embeddings` among its output modalities and its adapter has `embed` (the `openai`, `azure` and `sim` kinds);
otherwise that model is refused with a 400 and the plan moves to the next. One usage record a call, its prompt
tokens the vendor's count (ours when it sends none), no completion tokens.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.chat import record
from shared.chat.context import CallContext
from shared.chat.schema import ChatRequest, ProviderPreferences, json_object
from shared.errors import BadRequestError, SwitchyardError, UpstreamTimeoutError
from shared.providers import Completion, Usage
from shared.routing.plan import Plan
from shared.tokenizer import count_text

if TYPE_CHECKING:
    from shared.chat.service import ChatService, Route

MAX_INPUTS = 2048  # OpenAI's own bound on inputs a call
ModelId = Annotated[str, Field(min_length=1, max_length=256)]


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request, with OpenRouter's `models` and `provider`. Other fields (e.g. `input_type`)
    are passed on to OpenAI-compatible upstreams, as chat passes vendor extras."""

    model_config = ConfigDict(extra="allow")
    model: ModelId | None = None
    models: Annotated[list[ModelId], Field(max_length=16)] | None = None
    input: (Annotated[str, Field(min_length=1)] | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
            | Annotated[list[int], Field(min_length=1)]
            | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1, max_length=MAX_INPUTS)])
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1, le=8192)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    provider: ProviderPreferences | None = None

    @property
    def inputs(self) -> list[str] | list[list[int]]:
        """Each input: texts, or token-id lists."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [value]  # type: ignore[list-item]
        return value  # type: ignore[return-value]

    def upstream_body(self, upstream_model: str) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True, exclude={"models", "provider"})
        body["model"] = upstream_model
        return body

    def as_chat(self) -> ChatRequest:
        """The stand-in chat request routing plans over (its one message: the texts). An embedding has no output:
        `max_tokens: 1` keeps the holds (spend, tpm) to the input, not a chat answer's worst case."""
        texts = [t for t in self.inputs if isinstance(t, str)]
        return ChatRequest.model_validate({
            "model": self.model, "models": self.models, "provider": self.provider, "user": self.user,
            "messages": [{"role": "user", "content": "\n".join(texts)}], "max_tokens": 1})


def parse(raw: bytes) -> EmbeddingRequest:
    """Bytes → a validated request, or a 400 naming the field."""
    data = json_object(raw)
    try:
        request = EmbeddingRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"] if isinstance(p, str)) or "body"
        if field.startswith("input"):  # inside `input`'s union every branch failed: say what it takes
            field = "input"
        message = "a non-empty string, list of strings, list of token ids or list of token-id lists" \
            if field == "input" else first["msg"]
        raise BadRequestError(f"Invalid request: {field}: {message}", metadata={"field": field}) from None
    if not request.model and not request.models:
        raise BadRequestError("Invalid request: model: is required", metadata={"field": "model"})
    return request


def _not_embeddings(route: "Route") -> BadRequestError | None:
    if "embeddings" not in route.model.config.output_modalities:
        return BadRequestError(f"{route.model.id} is not an embeddings model (see GET /api/v1/models?"
                               "output_modalities=embeddings)", metadata={"field": "model", "model": route.model.id})
    if getattr(route.adapter, "embed", None) is None:
        return BadRequestError(f"{route.endpoint.provider.id} ({route.endpoint.provider.kind}) serves no "
                               "embeddings", metadata={"field": "model", "model": route.model.id})
    return None


async def _attempt(plan: Plan, route: "Route", request: EmbeddingRequest) -> Completion:
    if (refusal := _not_embeddings(route)) is not None:
        raise refusal
    try:
        async with asyncio.timeout(max(plan.remaining(), 0)):
            return await route.adapter.embed(request, route.endpoint)  # type: ignore[attr-defined]
    except TimeoutError:
        raise UpstreamTimeoutError(f"{route.endpoint.provider.id} did not answer in time (the call's total "
                                   "timeout)", metadata={"provider_name": route.endpoint.provider.id}) from None


async def embed(service: "ChatService", request: EmbeddingRequest, ctx: CallContext) -> dict[str, Any]:
    """The embeddings answer in OpenAI's shape (with OpenRouter's `provider` and our `cost`), metered once."""
    chat = request.as_chat()
    event = record.started(ctx, chat, streamed=False, fingerprint=service.fingerprint)
    route: Route | None = None
    plan: Plan | None = None
    usage: Usage | None = None
    try:
        plan = Plan(service.routing, chat, ctx)
        record.routed(event, plan)
        route, _ = await service.begin(plan, event, ctx, chat)
        while True:
            try:
                done = await _attempt(plan, route, request)
                break
            except SwitchyardError as e:
                step = await service.advance(plan, event, ctx, chat, route, e)
                if step is None:
                    raise plan.final_error() from None
                route, _ = step
        plan.succeeded(route)
        usage = done.usage
        if usage.estimated:
            usage = Usage(sum(count_text(t, route.endpoint.upstream_model) if isinstance(t, str) else len(t)
                              for t in request.inputs), 0, estimated=True)
        event.ttft_ms = ctx.elapsed_ms()
        event.upstream_id = done.upstream_id
        block = record.usage_block(route, usage)
        body = {"id": ctx.request_id, "object": "list", "data": done.body.get("data", []), "model": route.model.id,
                "provider": route.endpoint.provider.id,
                "usage": {"prompt_tokens": block["prompt_tokens"], "total_tokens": block["prompt_tokens"],
                          "cost": block["cost"], **({"estimated": True} if usage.estimated else {})}}
        return body
    except BaseException as e:
        record.failed(event, e)
        if isinstance(e, asyncio.CancelledError):
            event.status = "cancelled"
        raise
    finally:
        if plan is not None:
            event.attempts = plan.metered_attempts()
        service.recorder.finish(event, route, ctx, usage)
