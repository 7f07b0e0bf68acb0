"""The FastAPI app: routers, the one error mapping, and the body-size guard. No AWS imports here."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.gateway.routes import catalog, chat, generation, health, keys, models, policies
from functions.gateway.state import gateway
from shared.errors import BadRequestError, PayloadTooLargeError, SwitchyardError
from shared.providers import http

log = logging.getLogger("switchyard.gateway")


def error_response(error: SwitchyardError) -> Response:
    return Response(orjson.dumps(error.body()), status_code=error.status, media_type="application/json",
                    headers=error.headers)


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before they are parsed (declared or streamed in).

    FastAPI's own `max_body_size` answers a too-long Content-Length in plain text, outside the error shape."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await error_response(self._too_large())(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._too_large()
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"Request body is larger than {self.limit} bytes",
                                    metadata={"limit_bytes": self.limit})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Under uvicorn: flush metering in the background and close pools on exit. (Off under Mangum.)"""
    meter = gateway().meter
    meter.start()
    gc.freeze()  # the long-lived objects built at start-up need no more collection passes
    gc.set_threshold(20_000, 20, 20)
    yield
    await meter.stop()
    await http.close()


def create_app() -> FastAPI:
    settings = gateway().settings
    # FastAPI's native OpenTelemetry probes the global providers on every request; tracing is Powertools' job.
    app = FastAPI(title="Switchyard", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="An OpenAI-compatible LLM gateway: keys, routing, metering and healing.")
    for router in (health.router, chat.router, models.router, generation.router, keys.router, catalog.router,
                   policies.router):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            schema["paths"]["/api/v1/chat/completions"]["post"]["requestBody"] = chat.openapi_request_body(components)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(SwitchyardError)
    async def _ours(_: Request, e: SwitchyardError) -> Response:
        return error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> Response:
        first: dict[str, Any] = e.errors()[0] if e.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return error_response(BadRequestError(f"Invalid request: {field or 'body'}: {first.get('msg', '')}",
                                              metadata={"field": field or "body"}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> Response:
        error = SwitchyardError(str(e.detail))
        error.status = e.status_code
        error.metadata["error_type"] = "not_found" if e.status_code == 404 else "http_error"
        return error_response(error)

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(SwitchyardError("Internal error"))

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


app = create_app()
