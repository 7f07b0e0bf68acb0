"""In-memory stores behind the gateway's store interfaces, for tests that need no DynamoDB. Each keeps the
contract of its DynamoDB implementation, checked by tests that run against both."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from shared.catalog.schema import CatalogFile, ModelConfig, ProviderConfig
from shared.errors import NotFoundError
from shared.governance.store import KEY_IDS_KEPT, Approval, OrgSettings
from shared.keys.store import SETTABLE, ApiKey, now_iso
from shared.keys.tokens import KeyKind, ParsedKey, label, new_key, secret_hash
from shared.metering.events import UsageEvent
from shared.routing.policy import RoutePolicy


class MemoryKeyStore:
    """A KeyStore in a dict; a key's spend is what a test sets on it. Callers get copies, as from DynamoDB."""

    def __init__(self, pepper: bytes = b"memory-pepper") -> None:
        self.keys: dict[str, ApiKey] = {}
        self._pepper = pepper

    def pepper(self) -> bytes:
        return self._pepper

    def create(self, name: str, *, kind: KeyKind = "inference", token: tuple[str, ParsedKey] | None = None,
               **settings: Any) -> tuple[str, ApiKey]:
        unknown = set(settings) - set(SETTABLE) - {"created_by"}
        if unknown:
            raise TypeError(f"unknown key settings: {sorted(unknown)}")
        token, parts = token or new_key(kind)
        if parts.key_id in self.keys:
            raise FileExistsError(parts.key_id)
        key = ApiKey(key_id=parts.key_id, kind=kind, name=name, label=label(token),
                     secret_hash=secret_hash(self._pepper, parts.secret), created_at=now_iso(),
                     **{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        self.keys[key.key_id] = key
        return token, replace(key)

    def get(self, key_id: str) -> ApiKey | None:
        key = self.keys.get(key_id)
        return None if key is None else replace(key)

    def list(self, *, kind: KeyKind = "inference") -> list[ApiKey]:
        keys = [replace(k) for k in self.keys.values() if k.kind == kind]
        return sorted(keys, key=lambda k: k.created_at, reverse=True)

    def update(self, key_id: str, *, kind: KeyKind = "inference", **changes: Any) -> ApiKey:
        unknown = set(changes) - set(SETTABLE)
        if unknown:
            raise TypeError(f"unknown key settings: {sorted(unknown)}")
        key = self._managed(key_id, kind)
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()
                  if not (v is None and k in ("name", "disabled", "zero_log"))}
        key = replace(key, updated_at=now_iso(), **fields)
        self.keys[key_id] = key
        return replace(key)

    def rotate(self, key_id: str, *, grace_seconds: float, kind: KeyKind = "inference") -> tuple[str, ApiKey]:
        key = self._managed(key_id, kind)
        token, parts = new_key(kind, key_id=key_id)
        grace = grace_seconds > 0
        key = replace(key, secret_hash=secret_hash(self._pepper, parts.secret), label=label(token),
                      updated_at=now_iso(), previous_secret_hash=key.secret_hash if grace else None,
                      previous_valid_until=round(time.time() + grace_seconds, 3) if grace else None)
        self.keys[key_id] = key
        return token, replace(key)

    def delete(self, key_id: str, *, kind: KeyKind = "inference") -> None:
        self._managed(key_id, kind)
        del self.keys[key_id]

    def _managed(self, key_id: str, kind: KeyKind = "inference") -> ApiKey:
        key = self.keys.get(key_id)
        if key is None or key.kind != kind:
            raise NotFoundError(f"No key {key_id!r}", metadata={"hash": key_id})
        return key


class MemoryCatalogStore:
    """A CatalogStore in dicts, keyed as the catalog table is."""

    def __init__(self) -> None:
        self.providers: dict[str, ProviderConfig] = {}
        self.models: dict[tuple[str, str], ModelConfig] = {}
        self.routes: dict[str, RoutePolicy] = {}
        self.hidden: set[str] = set()

    def load(self) -> tuple[CatalogFile, frozenset[str]]:
        return CatalogFile(providers=list(self.providers.values()), models=list(self.models.values()),
                           routes=list(self.routes.values())), frozenset(self.hidden)

    def put_provider(self, provider: ProviderConfig) -> None:
        self.providers[provider.id] = provider

    def delete_provider(self, provider_id: str) -> bool:
        return self.providers.pop(provider_id, None) is not None

    def put_model(self, model: ModelConfig) -> None:
        self.models[model.id, model.provider] = model

    def delete_model(self, model_id: str, provider: str) -> bool:
        return self.models.pop((model_id, provider), None) is not None

    def put_route(self, route: RoutePolicy) -> None:
        self.routes[route.id] = route

    def delete_route(self, route_id: str) -> bool:
        return self.routes.pop(route_id, None) is not None

    def set_hidden(self, model_id: str, hidden: bool) -> None:
        (self.hidden.add if hidden else self.hidden.discard)(model_id)


class MemoryUsageStore:
    """A UsageStore in a dict of records (the keys' spend is not kept); `reads` lists the models read."""

    def __init__(self, retention_days: int = 30) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.retention_days = retention_days
        self.reads: list[str] = []

    def write(self, events: list[UsageEvent]) -> list[UsageEvent]:
        skipped = [e for e in events if e.id in self.records]
        for e in events:
            self.records.setdefault(e.id, e.to_record(self.retention_days))
        return skipped

    def get(self, record_id: str) -> dict[str, Any] | None:
        record = self.records.get(record_id)
        return None if record is None else dict(record)

    def for_model(self, model: str, *, since: float, limit: int) -> list[dict[str, Any]]:
        self.reads.append(model)
        found = [dict(r) for r in self.records.values()
                 if r.get("model") == model and r["created_at"] >= since]
        return sorted(found, key=lambda r: r["created_at"], reverse=True)[:limit]

    def for_key(self, key_id: str, *, start: float, end: float, limit: int,
                after: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        found = sorted((dict(r) for r in self.records.values()
                        if r["key_id"] == key_id and start <= r["created_at"] <= end),
                       key=lambda r: (r["created_at"], r["id"]), reverse=True)
        if after is not None:
            found = [r for r in found if (r["created_at"], r["id"]) < (after["created_at"], after["id"])]
        page = found[:limit]
        more = len(found) > limit
        return page, ({"id": page[-1]["id"], "key_id": key_id, "created_at": page[-1]["created_at"]} if more else None)


class MemoryGovernanceStore:
    """A GovernanceStore in a dict; `writes` counts the batches of refused calls written."""

    def __init__(self) -> None:
        self.settings = OrgSettings()
        self.rows: dict[str, Any] = {}
        self.writes = 0

    def load(self):
        return self.settings, list(self.rows.values())

    def put_settings(self, settings) -> None:
        self.settings = settings

    def approval(self, model: str):
        return self.rows.get(model)

    def decide(self, model: str, status, *, by: str, at: float, note: str | None):
        old = self.rows.get(model) or Approval(model)
        self.rows[model] = row = replace(old, status=status, decided_by=by, decided_at=at, note=note)
        return row

    def add_requests(self, model: str, count: int, first: float, last: float, key_ids: set[str]) -> None:
        self.writes += 1
        old = self.rows.get(model) or Approval(model, first_requested=first)
        ids = tuple(sorted(set(old.key_ids) | set(sorted(key_ids)[:max(KEY_IDS_KEPT - len(old.key_ids), 0)])))
        self.rows[model] = replace(old, requests=old.requests + count, last_requested=last, key_ids=ids)
