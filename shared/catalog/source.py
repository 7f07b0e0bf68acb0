"""The live catalog: files (built-in, generated, SWITCHYARD_CONFIG) plus operator overrides kept in DynamoDB.

Overrides add or replace providers and model endpoints, and hide models, without a deploy. A process loads
them on its first request (nothing is fetched at import: Lambda SnapStart snapshots the import), then again in
the background every `ttl` seconds; the process that makes a change through the API applies it at once. So a
change reaches every process within `ttl` seconds (30 by default).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import orjson
from pydantic import ValidationError

from shared.aws.dynamodb import Table
from shared.catalog import Catalog, CatalogError, load_catalog
from shared.catalog.schema import CatalogFile, ModelConfig, ProviderConfig
from shared.routing.policy import RoutePolicy
from shared.errors import StorageError

log = logging.getLogger("switchyard.catalog")


class CatalogStore:
    """Overrides in the catalog table: (pk "provider", sk id), (pk "model", sk "model|provider"), (pk "hidden", sk id),
    (pk "route", sk policy id)."""

    def __init__(self, table: str) -> None:
        self.table = Table(table)

    def load(self) -> tuple[CatalogFile, frozenset[str]]:
        providers, models, routes, hidden = [], [], [], set()
        for item in self.table.scan():
            try:
                if item["pk"] == "provider":
                    providers.append(ProviderConfig.model_validate(orjson.loads(item["spec"])))
                elif item["pk"] == "model":
                    models.append(ModelConfig.model_validate(orjson.loads(item["spec"])))
                elif item["pk"] == "route":
                    routes.append(RoutePolicy.model_validate(orjson.loads(item["spec"])))
                elif item["pk"] == "hidden":
                    hidden.add(item["sk"])
            except (ValidationError, orjson.JSONDecodeError, KeyError):
                log.warning("skipping an invalid catalog override %s/%s", item.get("pk"), item.get("sk"))
        return CatalogFile(providers=providers, models=models, routes=routes), frozenset(hidden)

    def put_provider(self, provider: ProviderConfig) -> None:
        self.table.put({"pk": "provider", "sk": provider.id, "spec": provider.model_dump_json(exclude_none=True)})

    def put_model(self, model: ModelConfig) -> None:
        self.table.put({"pk": "model", "sk": f"{model.id}|{model.provider}",
                        "spec": model.model_dump_json(exclude_none=True)})

    def delete_model(self, model_id: str, provider: str) -> None:
        self.table.delete({"pk": "model", "sk": f"{model_id}|{provider}"})

    def put_route(self, route: RoutePolicy) -> None:
        self.table.put({"pk": "route", "sk": route.id, "spec": route.model_dump_json(exclude_defaults=True)})

    def delete_route(self, route_id: str) -> None:
        self.table.delete({"pk": "route", "sk": route_id})

    def set_hidden(self, model_id: str, hidden: bool) -> None:
        if hidden:
            self.table.put({"pk": "hidden", "sk": model_id})
        else:
            self.table.delete({"pk": "hidden", "sk": model_id})


class CatalogSource:
    def __init__(self, config: Path | None, store: CatalogStore, *, ttl: float = 30.0) -> None:
        self.config, self.store, self.ttl = config, store, ttl
        self.current: Catalog = load_catalog(config)
        self._loaded = False
        self._next = 0.0
        self._busy = threading.Lock()

    def maybe_refresh(self) -> None:
        """Cheap on the request path: one clock read, except the first call of a process (one table scan)."""
        if time.monotonic() < self._next:
            return
        if not self._loaded:
            self._refresh()
        elif self._busy.acquire(blocking=False):
            self._busy.release()
            threading.Thread(target=self._refresh, name="catalog-refresh", daemon=True).start()
        self._next = time.monotonic() + self.ttl

    def refresh_now(self) -> Catalog:
        """Reload at once (after a change made through this process). An override model whose provider is
        unknown is skipped (and logged), so that one bad entry cannot keep all the others out."""
        overrides, hidden = self.store.load()
        known = set(self.current.providers) | {p.id for p in overrides.providers}
        for m in overrides.models:
            if m.provider not in known:
                log.warning("catalog override %s names unknown provider %s: skipped", m.id, m.provider)
        overrides = CatalogFile(providers=overrides.providers, models=[m for m in overrides.models if m.provider in known],
                                routes=overrides.routes)
        self.current = load_catalog(self.config, overrides, hidden)
        self._loaded, self._next = True, time.monotonic() + self.ttl
        return self.current

    def _refresh(self) -> None:
        with self._busy:
            try:
                self.refresh_now()
            except (StorageError, CatalogError) as e:  # keep serving the catalog we have
                log.warning("catalog overrides not loaded: %s", e)
                self._loaded = True
