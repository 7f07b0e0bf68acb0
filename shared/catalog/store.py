"""Where operator overrides of the catalog files are kept: what the catalog needs of that place (`CatalogStore`)
and the DynamoDB one (`DynamoCatalogStore`), which `functions/gateway/state.py` builds."""

from __future__ import annotations

import logging
from typing import Protocol

import orjson
from pydantic import ValidationError

from shared.aws.dynamodb import Table
from shared.catalog.schema import CatalogFile, ModelConfig, ProviderConfig
from shared.routing.policy import RoutePolicy

__all__ = ["CatalogStore", "DynamoCatalogStore"]

log = logging.getLogger("switchyard.catalog")


class CatalogStore(Protocol):
    """Stored providers, model endpoints, routing policies and hidden model ids (DynamoCatalogStore; an in-memory
    fake in tests). A put adds or replaces the entry of the same id; a delete says whether there was one."""

    def load(self) -> tuple[CatalogFile, frozenset[str]]:
        """Every valid override, and the hidden model ids (an invalid entry is logged and skipped)."""
        ...

    def put_provider(self, provider: ProviderConfig) -> None: ...

    def delete_provider(self, provider_id: str) -> bool: ...

    def put_model(self, model: ModelConfig) -> None: ...

    def delete_model(self, model_id: str, provider: str) -> bool: ...

    def put_route(self, route: RoutePolicy) -> None: ...

    def delete_route(self, route_id: str) -> bool: ...

    def set_hidden(self, model_id: str, hidden: bool) -> None: ...


class DynamoCatalogStore:
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

    def _delete(self, key: dict[str, str]) -> bool:
        """Delete one item; False when there was none."""
        if self.table.get(key, consistent=True) is None:
            return False
        self.table.delete(key)
        return True

    def put_provider(self, provider: ProviderConfig) -> None:
        self.table.put({"pk": "provider", "sk": provider.id, "spec": provider.model_dump_json(exclude_none=True)})

    def delete_provider(self, provider_id: str) -> bool:
        return self._delete({"pk": "provider", "sk": provider_id})

    def put_model(self, model: ModelConfig) -> None:
        self.table.put({"pk": "model", "sk": f"{model.id}|{model.provider}",
                        "spec": model.model_dump_json(exclude_none=True)})

    def delete_model(self, model_id: str, provider: str) -> bool:
        return self._delete({"pk": "model", "sk": f"{model_id}|{provider}"})

    def put_route(self, route: RoutePolicy) -> None:
        self.table.put({"pk": "route", "sk": route.id, "spec": route.model_dump_json(exclude_defaults=True)})

    def delete_route(self, route_id: str) -> bool:
        return self._delete({"pk": "route", "sk": route_id})

    def set_hidden(self, model_id: str, hidden: bool) -> None:
        if hidden:
            self.table.put({"pk": "hidden", "sk": model_id})
        else:
            self.table.delete({"pk": "hidden", "sk": model_id})
