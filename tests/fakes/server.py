"""A loopback aiohttp server in its own thread, recording what it was sent (base of the fake vendors)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


def catalog_text(provider: str, connection: str, prefix: str, names: tuple[str, ...], fields: str,
                 extra_models: str = "") -> str:
    """A SWITCHYARD_CONFIG adding a fake as provider `provider`, with one model `prefix/name` per script name."""
    models = "".join(f"  - {{id: {prefix}/{name}, provider: {provider}, upstream_model: {name}, {fields}}}\n"
                     for name in names)
    return f"providers:\n  - {{id: {provider}, {connection}}}\nmodels:\n{models}{extra_models}"


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}  # per-script call counts (scripts that change behaviour over calls)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        self.routes(app)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
