"""`POST /api/v1/embeddings`: OpenAI's embeddings API over the catalog's embeddings models (shared/chat/embeddings.py),
authenticated, restricted and metered as chat is."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from functions.gateway.inference import call_context, json_response, parsed
from functions.gateway.routes.chat import RawRoute, _unless_client_leaves
from functions.gateway.state import gateway

router = APIRouter(prefix="/api/v1", tags=["embeddings"], route_class=RawRoute)


@router.post("/embeddings", summary="Embeddings (OpenAI's shape) from the catalog's embeddings models")
async def create_embeddings(request: Request) -> Response:
    from shared.chat import embeddings  # (on first use, not at import: off the Lambda cold start)

    ctx = await call_context(request)
    body = parsed(ctx, embeddings.parse, await request.body())
    answer = await _unless_client_leaves(request, embeddings.embed(gateway().chat, body, ctx))
    if answer is None:
        return Response(status_code=499)
    return json_response(answer, ctx)

