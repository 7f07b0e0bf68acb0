"""Helpers shared by the adapter tests."""

import asyncio
from pathlib import Path

from shared.catalog import Catalog, load_catalog
from shared.providers import http


def run(coro):
    """Run one adapter call on a fresh loop, closing the pooled upstream connections after it."""
    async def go():
        try:
            return await coro
        finally:
            await http.close()
    return asyncio.run(go())


def collect(provider, request, endpoint) -> list[dict]:
    async def go():
        return [c async for c in provider.stream(request, endpoint)]
    return run(go())


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
