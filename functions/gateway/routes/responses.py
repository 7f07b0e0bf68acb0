"""`POST /api/v1/responses`: the OpenAI Responses API subset that maps onto chat (shared/chat/responses_api.py)."""

from functools import partial

from fastapi import APIRouter, Request
from starlette.responses import Response

from functions.gateway.inference import answer, call_context, parsed
from functions.gateway.routes.chat import RawRoute

router = APIRouter(prefix="/api/v1", tags=["responses"], route_class=RawRoute)


@router.post("/responses", summary="OpenAI Responses API (text, function tools, streaming events), stateless")
async def responses(request: Request) -> Response:
    from shared.chat import responses_api  # (on first use, not at import: off the Lambda cold start)

    ctx = await call_context(request)
    chat, asked = parsed(ctx, responses_api.parse, await request.body())
    return await answer(request, ctx, chat, partial(responses_api.response, asked),
                        partial(responses_api.events, asked))
