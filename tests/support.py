"""Helpers shared by the adapter tests."""

import asyncio
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
