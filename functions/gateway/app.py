"""The FastAPI app: routers, the one error mapping, the request boundary and the body-size guard. No AWS imports."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.gateway.deps import CORS_ORIGIN
from functions.gateway.event_stream import SERVER_SEND
from functions.gateway.routes import (analytics, audit, catalog, chat, completions, dashboard, docs, embeddings,
                                     generation, governance, health, keys, messages, metrics, models, policies,
                                     providers, rankings, responses, synthetic)
from functions.gateway.state import gateway
from shared.chat.service import new_request_id
from shared.errors import BadRequestError, ForbiddenError, PayloadTooLargeError, SwitchyardError
from shared.keys.restrictions import origin_of
from shared.providers import http

log = logging.getLogger("switchyard.gateway")
GENERATION_ID = "generation_id"  # scope["state"] key: the request's id, shared by its errors and usage record


def error_response(error: SwitchyardError, scope: Scope) -> Response:
    """The documented error body, with the request's generation id in metadata and in X-Generation-Id."""
    gen_id = scope["state"][GENERATION_ID]
    body = error.body()
    body["error"]["metadata"] = {**error.metadata, GENERATION_ID: gen_id}
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json",
                    headers={**error.headers, "X-Generation-Id": gen_id})


class RequestBoundary:
    """Outermost: gives each request its generation id, and answers an unexpected exception with the documented
    500 without dropping the connection.

    Starlette's ServerErrorMiddleware (where `exception_handler(Exception)` would go) re-raises after answering,
    and uvicorn closes a connection whose app raised once the response had started: the client, told nothing
    (no `Connection: close`), had its next requests on that keep-alive connection reset. Here the exception ends
    at the boundary; only a response already cut short is left to the server to close."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        state[GENERATION_ID] = new_request_id()
        sent = 0  # 1: response started, 2: response complete

        async def tracked(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                sent = 1
                origin = state.get(CORS_ORIGIN)
                if origin is not None:  # a key that allows this origin answered (functions/gateway/deps.py)
                    message["headers"] = [*message.get("headers", ()), *cors_headers(origin)]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                sent = 2
            await send(message)

        try:
            if scope["method"] == "OPTIONS" and scope["path"].startswith("/api/"):
                await preflight(scope, receive, tracked)
            else:
                await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if sent == 0:
                await error_response(SwitchyardError("Internal error"), scope)(scope, receive, send)
            elif sent == 1:
                raise  # half a response: only closing the connection tells the client


class ServerSend:
    """Outside every layer, Starlette's ServerErrorMiddleware included: puts the server's own send in the scope,
    where a stream's frames go straight to it (functions/gateway/event_stream.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        state[SERVER_SEND] = send
        try:
            await self.app(scope, receive, send)
        finally:
            # The server's send refers, through its closures, to the server's request cycle, which refers to the
            # scope: left in the scope, it makes every request a reference cycle, freed by the garbage collector
            # instead of as it ends (a gen-0 collection every ~1,000 requests: ~18 µs a request on the bench).
            state.pop(SERVER_SEND, None)


class Gateway(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        return ServerSend(super().build_middleware_stack())


_EXPOSED = b"X-Generation-Id, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
_ALLOWED_HEADERS = frozenset(("authorization", "content-type", "http-referer", "x-title", "x-openrouter-title",
                              "x-openrouter-categories", "accept", "x-stainless-lang", "x-stainless-package-version",
                              "x-stainless-os", "x-stainless-arch", "x-stainless-runtime",
                              "x-stainless-runtime-version", "x-stainless-retry-count", "x-stainless-timeout",
                              "x-stainless-async", "openai-organization", "openai-project", "user-agent",
                              "x-api-key", "anthropic-version", "anthropic-beta"))


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
            (b"access-control-expose-headers", _EXPOSED)]


async def preflight(scope: Scope, receive: Receive, send: Send) -> None:
    """A browser's CORS preflight. It carries no key, so it is answered for an origin that some key allows
    (`allowed_origins`); the call that follows is checked against its own key, and only a key that allows the
    origin gets `Access-Control-Allow-Origin` on its answer. Any other origin: 403, with no CORS headers."""
    headers = {n: v.decode("latin-1") for n, v in scope["headers"]
               if n in (b"origin", b"access-control-request-method", b"access-control-request-headers")}
    origin = origin_of(headers.get(b"origin"))
    method = headers.get(b"access-control-request-method", "").upper()
    if origin is None and headers.get(b"origin") and method:  # `null` (a sandboxed page, a file) or no origin
        error = ForbiddenError(f"No key allows calls from origin {headers[b'origin'][:200]!r}",
                               metadata={"reason": "origin_not_allowed", "origin": headers[b"origin"][:200]})
        return await error_response(error, scope)(scope, receive, send)
    if origin is None or not method:
        error = BadRequestError("Not a CORS preflight: OPTIONS needs Origin and Access-Control-Request-Method",
                                metadata={"reason": "not_a_preflight"})
        return await error_response(error, scope)(scope, receive, send)
    try:
        known = await asyncio.to_thread(gateway().origins.allowed, origin)
    except SwitchyardError as e:
        return await error_response(e, scope)(scope, receive, send)
    if not known:
        error = ForbiddenError(f"No key allows calls from origin {origin}",
                               metadata={"reason": "origin_not_allowed", "origin": origin})
        return await error_response(error, scope)(scope, receive, send)
    asked = [h.strip().lower() for h in headers.get(b"access-control-request-headers", "").split(",") if h.strip()]
    allowed = [h for h in asked if h in _ALLOWED_HEADERS]
    response = Response(status_code=204, headers={
        "Access-Control-Allow-Origin": origin, "Vary": "Origin",
        "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": ", ".join(allowed or ["authorization", "content-type"]),
        "Access-Control-Max-Age": "600", "X-Generation-Id": scope["state"][GENERATION_ID]})
    await response(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before they are parsed (declared or streamed in).

    FastAPI's own `max_body_size` answers a too-long Content-Length in plain text, outside the error shape."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = {part.strip() for name, value in scope["headers"] if name == b"content-length"
                    for part in value.split(b",")}
        if declared:
            # One length, in digits: `abc`, `-1` or two that differ would leave the body's end to guesswork.
            # (uvicorn's parser refuses these itself; other servers may pass them on.)
            (length,) = declared if len(declared) == 1 else (b"",)
            if not (length.isascii() and length.isdigit()):
                error = BadRequestError("Invalid Content-Length header", metadata={"field": "content-length"})
                return await error_response(error, scope)(scope, receive, send)
            if len(length) > 18 or int(length) > self.limit:  # int() refuses over 4300 digits
                return await error_response(self._too_large(), scope)(scope, receive, send)
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
    app = Gateway(title="Switchyard", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,  # routes/docs.py
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="An OpenAI-compatible LLM gateway: keys, routing, metering and healing.")
    for router in (health.router, chat.router, models.router, generation.router, keys.router, catalog.router,
                   policies.router, analytics.router, rankings.router, synthetic.router, audit.router,
                   governance.router, messages.router, completions.router, embeddings.router, responses.router,
                   providers.router, docs.router, dashboard.router, metrics.router):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from functions.gateway.openapi import document  # (built when first asked for: functions/gateway/openapi.py)

            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(SwitchyardError)
    async def _ours(request: Request, e: SwitchyardError) -> Response:
        return error_response(e, request.scope)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> Response:
        first: dict[str, Any] = e.errors()[0] if e.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return error_response(BadRequestError(f"Invalid request: {field or 'body'}: {first.get('msg', '')}",
                                              metadata={"field": field or "body"}), request.scope)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> Response:
        error = SwitchyardError(str(e.detail))
        error.status = e.status_code
        error.metadata["error_type"] = "not_found" if e.status_code == 404 else "http_error"
        return error_response(error, request.scope)

    # Unexpected exceptions end at RequestBoundary (not `exception_handler(Exception)`: see its docstring).
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestBoundary)
    return app


app = create_app()
