"""One pooled aiohttp session per process (per event loop), created on first use."""

from __future__ import annotations

import asyncio

import aiohttp

_session: aiohttp.ClientSession | None = None
_loop: asyncio.AbstractEventLoop | None = None


def session() -> aiohttp.ClientSession:
    """The shared session for the running loop (Mangum reuses one loop across warm invocations)."""
    global _session, _loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _loop is not loop:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=128, ttl_dns_cache=300,
                                         enable_cleanup_closed=True)
        _session = aiohttp.ClientSession(connector=connector)
        _loop = loop
    return _session


async def close() -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None
