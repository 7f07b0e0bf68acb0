import asyncio
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit
from typing import Any, Callable, Coroutine

import orjson
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from functions.gateway.deps import admit, client_address, inference_key
from functions.gateway.event_stream import EventStream
from functions.gateway.state import gateway
from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.errors import BadRequestError, ForbiddenError, KeyRateLimitedError
from shared.keys import ApiKey
from shared.keys.counters import limit_period

class RawRoute(APIRoute):
    """A path operation documented like any other whose endpoint takes the Request and returns a Response
    itself: no per-call dependency solving or body handling (measured: ~35 µs a request on the hot route)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


router = APIRouter(prefix="/api/v1", tags=["chat"], route_class=RawRoute)

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")


def categories(header: str | None) -> tuple[str, ...]:
    """X-OpenRouter-Categories: comma-separated, lower-case and hyphenated, up to 30 characters each (OpenRouter's
    rule); up to 10 kept, in order, without repeats. Malformed entries are dropped, as OpenRouter drops them."""
    if not header:
        return ()
    found = (c.strip().lower() for c in header[:1000].split(","))
    return tuple(dict.fromkeys(c for c in found if _CATEGORY.match(c)))[:10]


def origin_of(referer: str) -> str | None:
    """An HTTP-Referer as the app's origin (scheme://host[:port]): the path and query can carry a user's
    session or e-mail, and the referer is recorded, analysed and (for apps in the rankings) published."""
    try:
        parts = urlsplit(referer[:2000].strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host or parts.scheme not in ("http", "https"):
        return referer[:100] if referer.isascii() and referer.replace("-", "").replace(".", "").isalnum() else None
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


# The request headers the usage record keeps (names lower-case, as ASGI servers pass them).
_RECORDED = frozenset((b"http-referer", b"referer", b"x-openrouter-title", b"x-title", b"x-openrouter-categories",
                       b"user-agent"))


def recorded_headers(scope: dict[str, Any]) -> dict[bytes, str]:
    """The headers the usage record keeps, the first value of each (as `request.headers.get` gives it), in one
    pass over the headers: a `Headers.get` is a pass each, and a call asks for six (~1 µs)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _RECORDED and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _context(request: Request, key: ApiKey) -> CallContext:
    """The call's context; its request id is the generation id RequestBoundary gave the request (app.py), so
    an error answer and the usage record name the same generation."""
    h = recorded_headers(request.scope)
    referer = h.get(b"http-referer") or h.get(b"referer")
    ctx = CallContext(
        key_id=key.key_id,
        request_id=request.scope["state"]["generation_id"],
        key_tags=key.tags,
        app_title=(h.get(b"x-openrouter-title") or h.get(b"x-title") or "")[:200] or None,
        categories=categories(h.get(b"x-openrouter-categories")),
        app_referer=origin_of(referer) if referer else None,
        client_ip=client_address(request.scope),
        user_agent=h.get(b"user-agent", "")[:300] or None,
        limit=key.limit,
        usage=key.usage,
    )
    if key.restricted:  # the unrestricted hot path sets none of these
        ctx.allowed_models, ctx.residency, ctx.zero_log = key.allowed_models, key.residency, key.zero_log
    if key.tpm is not None:
        ctx.tpm = key.tpm  # taken and settled by the service (shared/keys/rates.py)
    if key.limit_reset is not None:
        ctx.usage = key.limit_usage
        ctx.limit_period = limit_period(key.limit_reset, datetime.fromtimestamp(ctx.created, timezone.utc))
    return ctx


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (JSON or SSE)")
async def chat_completions(request: Request) -> Response:
    key = await inference_key(request, admitted=False)  # called directly: RawRoute solves no dependencies
    service = gateway().chat
    ctx = _context(request, key)
    if key.allowed_ips is not None or key.allowed_origins is not None:
        try:
            admit(key, request.scope)
        except ForbiddenError as e:  # a key used from where it may not be: on its record, for its owner's audit
            service.meter_rejected(ctx, None, e)
            raise
    headers = {"X-Generation-Id": ctx.request_id}
    if key.rpm is not None or key.rpd is not None:
        headers.update(await admitted(service, ctx, key))
    try:
        chat = parse_chat_request(await request.body())
    except BadRequestError as e:
        service.meter_rejected(ctx, None, e)
        raise
    if chat.stream:
        frames = await service.open_stream(chat, ctx)
        return EventStream(frames, headers={**_SSE_HEADERS, **headers, **transform_headers(ctx)})
    body = await _unless_client_leaves(request, service.complete(chat, ctx))
    if body is None:
        return Response(status_code=499)  # nobody is listening: what matters is that the call was metered
    if ctx.transforms:
        headers.update(transform_headers(ctx))
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


async def admitted(service: ChatService, ctx: CallContext, key: ApiKey) -> dict[str, str]:
    """Count the request against the key's rpm and rpd (before its body is read: a flood of refusals costs
    little), or meter it as a failed call and raise the 429. Returns the X-RateLimit headers for the answer.
    Any inference route counts its requests through here."""
    try:
        return await service.rates.admit(key.key_id, rpm=key.rpm, rpd=key.rpd)
    except KeyRateLimitedError as e:
        service.meter_rejected(ctx, None, e)
        raise


def transform_headers(ctx: CallContext) -> dict[str, str]:
    """`X-Switchyard-Transforms: middle-out` when the prompt was compressed to fit (shared/chat/middle_out.py)."""
    return {"X-Switchyard-Transforms": ",".join(t["id"] for t in ctx.transforms)} if ctx.transforms else {}


_WATCH_AFTER = 0.25  # seconds: a call that ends sooner never starts a watcher


async def _unless_client_leaves(request: Request,
                                call: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any] | None:
    """Await `call`, cancelled (so metered `cancelled`) if the client disconnects first; None then. The body
    is read, so the next `receive()` returns only at a disconnect (or, under Mangum, after the response). The
    watcher starts after _WATCH_AFTER: measured, a timer costs ~3.5 µs a call, a watcher task from the start
    ~8 µs; a client that leaves a call ending sooner is metered as the call ended upstream."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    watcher: asyncio.Task[None] | None = None
    left = False

    async def watch() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        task.cancel()

    def start() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(_WATCH_AFTER, start)
    try:
        return await call
    except asyncio.CancelledError:
        if left and not task.uncancel():
            return None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
