"""The dashboard page (`/dashboard`): the static files of functions/gateway/dashboard/, served with a strict
Content-Security-Policy (no inline script or style, nothing from another origin). The page holds no data of its
own: it calls the public API with the key it is signed in with, so it can do exactly what that key can."""

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse

from shared.errors import NotFoundError

router = APIRouter(include_in_schema=False)
FILES = Path(__file__).resolve().parent.parent / "dashboard"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
ASSETS = {p.name: _TYPES[p.suffix] for p in FILES.iterdir() if p.suffix in _TYPES and p.name != "index.html"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# no-cache: revalidated on each load (the files change with a deploy and carry no version in their names)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


@router.get("/dashboard")
async def page() -> FileResponse:
    return FileResponse(FILES / "index.html", media_type=_TYPES[".html"], headers=HEADERS)


@router.get("/dashboard/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFoundError(f"No dashboard file {name!r}", metadata={"file": name[:100]})
    return FileResponse(FILES / name, media_type=ASSETS[name], headers=HEADERS)
