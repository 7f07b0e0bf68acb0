"""The API docs pages (`/docs`: Swagger UI, `/redoc`: ReDoc) with their assets served by the gateway itself, from
the fastapi-offline package, so that they work with no network (FastAPI's own pages fetch them from a CDN)."""

from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse

from shared.errors import NotFoundError

router = APIRouter(include_in_schema=False)
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
           "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}
_OPENAPI = "/openapi.json"


def _static() -> Path:
    spec = find_spec("fastapi_offline")  # located, not imported: only its files are wanted
    assert spec is not None and spec.submodule_search_locations, "fastapi-offline is a runtime dependency"
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=_OPENAPI, title="Switchyard API",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon.png")


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url=_OPENAPI, title="Switchyard API", redoc_js_url="/docs/assets/redoc.standalone.js",
                          redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise NotFoundError(f"No docs asset {name!r}", metadata={"asset": name[:100]})
    return FileResponse(_static() / name, media_type=_ASSETS[name], headers={"Cache-Control": "max-age=86400"})
