"""`POST /api/v1/messages`: Anthropic's Messages API in front of every model (shared/chat/anthropic_api.py), so the
official `anthropic` SDK works unchanged with `base_url=".../api"`. Its key may come as `x-api-key` (what the SDK
sends) or as `Authorization: Bearer`."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from functions.gateway.inference import answer, call_context, parsed
from functions.gateway.routes.chat import RawRoute

router = APIRouter(prefix="/api/v1", tags=["messages"], route_class=RawRoute)


def _x_api_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    return f"Bearer {key.strip()}" if key else None


@router.post("/messages", summary="Anthropic Messages API (JSON or SSE) in front of every model")
async def messages(request: Request) -> Response:
    from shared.chat import anthropic_api  # (on first use, not at import: off the Lambda cold start)

    ctx = await call_context(request, authorization=_x_api_key(request))
    chat = parsed(ctx, anthropic_api.parse, await request.body())
    return await answer(request, ctx, chat, anthropic_api.message, anthropic_api.events)
