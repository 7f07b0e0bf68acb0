"""`POST /api/v1/completions`: the legacy text completions (`prompt` → `text`) in front of every chat model
(shared/chat/legacy.py)."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from functions.gateway.inference import answer, call_context, parsed
from functions.gateway.routes.chat import RawRoute

router = APIRouter(prefix="/api/v1", tags=["completions"], route_class=RawRoute)


@router.post("/completions", summary="Legacy text completions (JSON or SSE) in front of every model")
async def completions(request: Request) -> Response:
    from shared.chat import legacy  # (on first use, not at import: off the Lambda cold start)

    ctx = await call_context(request)
    chat = parsed(ctx, legacy.parse, await request.body())
    return await answer(request, ctx, chat, legacy.completion, legacy.chunks)
