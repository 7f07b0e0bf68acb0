from fastapi import APIRouter
from starlette.responses import Response

from functions.gateway.state import gateway

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models", summary="The model catalog in OpenRouter's shape")
async def list_models() -> Response:
    return Response(gateway().catalog.models_json, media_type="application/json")
