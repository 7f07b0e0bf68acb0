"""The call flow every inference front besides chat shares (messages, completions, responses, embeddings).

Each front is another wire shape in front of the same chat service: authenticated, restricted and metered exactly
as `POST /chat/completions` is (functions/gateway/routes/chat.py), so a refusal after authentication (an address
or origin the key may not use, a body that does not parse) is metered on the key's record, and an accepted call
is metered once by the service. Only the request's translation in and the answer's translation out differ.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, TypeVar

import orjson
from fastapi import Request
from starlette.responses import Response

from functions.gateway.deps import admit, inference_key
from functions.gateway.event_stream import EventStream
# chat.py's own parts, reused so that every inference front builds its call exactly as chat does
from functions.gateway.routes.chat import (_SSE_HEADERS, _context, _unless_client_leaves, admitted,
                                          transform_headers)
from functions.gateway.state import gateway
from shared.chat.context import CallContext
from shared.chat.schema import ChatRequest
from shared.errors import ForbiddenError, SwitchyardError

T = TypeVar("T")


async def call_context(request: Request, *, authorization: str | None = None) -> CallContext:
    """The caller's key checked (and its address and origin restrictions, a refusal metered), as its call's
    context. `authorization`: used when the request has no Authorization header."""
    key = await inference_key(request, admitted=False, authorization=authorization)
    ctx = _context(request, key)
    if key.allowed_ips is not None or key.allowed_origins is not None:
        try:
            admit(key, request.scope)
        except ForbiddenError as e:
            gateway().chat.meter_rejected(ctx, None, e)
            raise
    if key.rpm is not None or key.rpd is not None:
        ctx.rate_headers = await admitted(gateway().chat, ctx, key)  # counted as chat counts
    return ctx


def parsed(ctx: CallContext, parse: Callable[[bytes], T], raw: bytes) -> T:
    """The body parsed by `parse`, or its 400 metered on the key's record and raised."""
    try:
        return parse(raw)
    except SwitchyardError as e:
        gateway().chat.meter_rejected(ctx, None, e)
        raise


def json_response(body: dict[str, Any], ctx: CallContext, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"X-Generation-Id": ctx.request_id, **(ctx.rate_headers or {}), **(headers or {})})


async def answer(request: Request, ctx: CallContext, chat: ChatRequest,
                 shape: Callable[[dict[str, Any]], dict[str, Any]],
                 stream_shape: Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]) -> Response:
    """Run the call through the chat service; the answer in the front's shape (`shape` for a chat completion
    body, `stream_shape` for the chat SSE frames). A client that leaves an unstreamed call gets a 499."""
    service = gateway().chat
    if chat.stream:
        frames = await service.open_stream(chat, ctx)
        return EventStream(stream_shape(frames), headers={**_SSE_HEADERS, "X-Generation-Id": ctx.request_id,
                                                          **(ctx.rate_headers or {}), **transform_headers(ctx)})
    body = await _unless_client_leaves(request, service.complete(chat, ctx))
    if body is None:
        return Response(status_code=499)
    return json_response(shape(body), ctx, transform_headers(ctx))

