"""Helpers shared by the adapter tests, and an app served under uvicorn."""

import asyncio
import threading
from http.client import HTTPConnection
from pathlib import Path

from shared.catalog import Catalog, load_catalog
from shared.providers import http
from shared.providers.base import Marker


def run(coro):
    """Run one adapter call on a fresh loop, closing the pooled upstream connections after it."""
    async def go():
        try:
            return await coro
        finally:
            await http.close()
    return asyncio.run(go())


def chunks_of(stream) -> list[dict]:
    """The chunks of an adapter's stream, awaited: one an item, or by read (PULSE markers left out)."""
    async def go():
        chunks = []
        async for item in stream:
            if isinstance(item, list):
                chunks += item
            elif not isinstance(item, Marker):
                chunks.append(item)
        return chunks
    return go()


def collect(provider, request, endpoint) -> list[dict]:
    """The chunks of an adapter's stream (its PULSE markers left out)."""
    return run(chunks_of(provider.stream(request, endpoint)))


def catalog_from(yaml_text: str, tmp_path: Path) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml_text)
    return load_catalog(path)


class Recorder:
    """A meter that keeps the usage events it is given (for service-level tests)."""

    def __init__(self):
        self.events = []

    def record(self, event):
        self.events.append(event)


def sse_frames(sent: list[bytes]) -> list[bytes]:
    """What a relay sent, as SSE frames (each `data: ...` or `: comment`, without its blank line): one write
    may carry several frames."""
    return [f for f in b"".join(sent).split(b"\n\n") if f]


class Served:
    """An app under uvicorn (httptools, as `make run`) on a loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        from infra.local import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off",
                                                    http="httptools", log_level="critical", access_log=False))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def idle(self) -> None:
        """Wait until the server has finished every request it was given (its tasks end after the answer)."""
        while self.server.server_state.tasks:
            self.thread.join(0.01)

    def connection(self) -> HTTPConnection:
        return HTTPConnection("127.0.0.1", self.port, timeout=10)


def api(base_url: str, method: str, path: str, key: str, body=None, timeout: float = 120) -> tuple[int, dict]:
    """One JSON call to the gateway's API with a key: its status and body (an error's documented body too)."""
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
