"""API keys as stored: the key record (`ApiKey`), what routes need of a store of keys (`KeyStore`), and the
DynamoDB one (`DynamoKeyStore`), which `functions/gateway/state.py` builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from shared.aws.dynamodb import ConditionFailedError, Table, batch_get
from shared.errors import NotFoundError
from shared.keys.counters import counter_key, periods
from shared.keys.spend import SpendGuard
from shared.keys.tokens import KeyKind, ParsedKey, label, new_key, secret_hash

__all__ = ["ApiKey", "DynamoKeyStore", "KeyStore"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ApiKey:
    key_id: str
    kind: KeyKind
    name: str
    label: str
    secret_hash: str = field(repr=False)
    disabled: bool = False
    limit: float | None = None
    created_at: str = ""
    updated_at: str | None = None
    usage: float = 0.0
    usage_monthly: float = 0.0
    usage_daily: float = 0.0
    tags: tuple[str, ...] = ()  # operator labels, matched by routing rules (`key_tag`)

    @property
    def limit_remaining(self) -> float | None:
        return None if self.limit is None else max(self.limit - self.usage, 0.0)

    def to_api(self) -> dict[str, Any]:
        """OpenRouter's key shape; `hash` is our public key id."""
        return {
            "hash": self.key_id, "name": self.name, "label": self.label, "disabled": self.disabled,
            "limit": self.limit, "limit_remaining": self.limit_remaining, "limit_reset": None,
            "usage": round(self.usage, 10), "usage_daily": round(self.usage_daily, 10),
            "usage_monthly": round(self.usage_monthly, 10),
            "is_management_key": self.kind == "management",
            "created_at": self.created_at, "updated_at": self.updated_at, "tags": list(self.tags),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "ApiKey":
        return cls(key_id=item["key_id"], kind=item["kind"], name=item.get("name", ""), label=item["label"],
                   secret_hash=item["secret_hash"], disabled=bool(item.get("disabled", False)),
                   limit=item.get("limit"), created_at=item.get("created_at", ""),
                   updated_at=item.get("updated_at"), tags=tuple(item.get("tags") or ()))


class KeyStore(Protocol):
    """Keys with their spend (DynamoKeyStore; an in-memory fake in tests). `update` and `delete` manage
    inference keys only: a management key's id is answered like an unknown one (NotFoundError)."""

    def pepper(self) -> bytes: ...

    def create(self, name: str, *, kind: KeyKind = "inference", limit: float | None = None,
               tags: tuple[str, ...] = (), token: tuple[str, ParsedKey] | None = None) -> tuple[str, ApiKey]: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def list(self, *, kind: KeyKind = "inference") -> list[ApiKey]: ...

    def update(self, key_id: str, *, name: str | None = None, disabled: bool | None = None,
               limit: float | None = None, clear_limit: bool = False,
               tags: tuple[str, ...] | None = None) -> ApiKey: ...

    def delete(self, key_id: str) -> None: ...


class DynamoKeyStore:
    """Keys in the keys table; spend in the counters table (written by metering)."""

    def __init__(self, keys_table: str, counters_table: str, pepper: Callable[[], bytes],
                 spend: SpendGuard | None = None) -> None:
        self.keys = Table(keys_table)
        self.counters_table = counters_table
        self.pepper = pepper  # () -> bytes: read when needed (from Secrets Manager on AWS), never at import
        self.spend = spend or SpendGuard(counters_table, stale_after=900)

    def create(self, name: str, *, kind: KeyKind = "inference", limit: float | None = None,
               tags: tuple[str, ...] = (), token: tuple[str, ParsedKey] | None = None) -> tuple[str, ApiKey]:
        """A new key (`token`: one made elsewhere, e.g. `derived_key`); FileExistsError when its id is taken."""
        token, parts = token or new_key(kind)
        key = ApiKey(key_id=parts.key_id, kind=kind, name=name, label=label(token),
                     secret_hash=secret_hash(self.pepper(), parts.secret), limit=limit, created_at=now_iso(),
                     tags=tags)
        try:
            self.keys.put(self._item(key), condition="attribute_not_exists(key_id)")
        except ConditionFailedError:
            raise FileExistsError(f"key {key.key_id} exists") from None
        if limit is not None:
            self.spend.resync(key.key_id)  # its first hold finds the counters ready
        return token, key

    def get(self, key_id: str) -> ApiKey | None:
        """The key with its spend, in one round trip."""
        month, day = periods(datetime.now(timezone.utc))
        ck = counter_key(key_id)
        found = batch_get({
            self.keys.name: [{"key_id": key_id}],
            self.counters_table: [{"pk": ck, "period": p} for p in ("total", month, day)],
        })
        if not found[self.keys.name]:
            return None
        key = ApiKey.from_item(found[self.keys.name][0])
        spend = {c["period"]: float(c.get("cost", 0)) for c in found[self.counters_table]}
        key.usage, key.usage_monthly, key.usage_daily = spend.get("total", 0.0), spend.get(month, 0.0), spend.get(day, 0.0)
        return key

    def list(self, *, kind: KeyKind = "inference") -> list[ApiKey]:
        """Every key of a kind, newest first, each with its spend (BatchGetItem, 33 keys a round trip)."""
        keys = sorted((ApiKey.from_item(i) for i in self.keys.scan() if i.get("kind") == kind),
                      key=lambda k: k.created_at, reverse=True)
        month, day = periods(datetime.now(timezone.utc))
        by_counter = {counter_key(k.key_id): k for k in keys}
        counters = list(by_counter)
        for start in range(0, len(counters), 33):  # 3 rows a key, at most 100 a BatchGetItem
            found = batch_get({self.counters_table: [{"pk": ck, "period": p} for ck in counters[start:start + 33]
                                                     for p in ("total", month, day)]})
            for row in found[self.counters_table]:
                key, cost = by_counter[row["pk"]], float(row.get("cost", 0))
                if row["period"] == "total":
                    key.usage = cost
                elif row["period"] == month:
                    key.usage_monthly = cost
                elif row["period"] == day:
                    key.usage_daily = cost
        return keys

    def update(self, key_id: str, *, name: str | None = None, disabled: bool | None = None,
               limit: float | None = None, clear_limit: bool = False, tags: tuple[str, ...] | None = None) -> ApiKey:
        sets, values = ["updated_at = :u"], {":u": now_iso()}
        removes = []
        if name is not None:
            sets.append("#n = :n")
            values[":n"] = name
        if disabled is not None:
            sets.append("disabled = :d")
            values[":d"] = disabled
        if limit is not None:
            sets.append("#l = :l")
            values[":l"] = limit
        elif clear_limit:
            removes.append("#l")
        if tags is not None:
            sets.append("tags = :g")
            values[":g"] = list(tags)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        names = {"#n": "name", "#l": "limit"}
        names = {k: v for k, v in names.items() if k in expression}
        values[":k"] = "inference"
        try:  # management keys are not managed through the API
            self.keys.update({"key_id": key_id}, expression, names={**names, "#k": "kind"}, values=values,
                             condition="attribute_exists(key_id) AND #k = :k")
        except ConditionFailedError:
            raise NotFoundError(f"No key {key_id!r}", metadata={"hash": key_id}) from None
        if limit is not None:
            self.spend.resync(key_id)  # spent while unlimited: `committed` catches up before the limit applies
        key = self.get(key_id)
        assert key is not None
        return key

    def delete(self, key_id: str) -> None:
        item = self.keys.get({"key_id": key_id})
        if item is None or item.get("kind") != "inference":
            raise NotFoundError(f"No key {key_id!r}", metadata={"hash": key_id})
        self.keys.delete({"key_id": key_id})

    @staticmethod
    def _item(key: ApiKey) -> dict[str, Any]:
        return {"key_id": key.key_id, "kind": key.kind, "name": key.name, "label": key.label,
                "secret_hash": key.secret_hash, "disabled": key.disabled, "limit": key.limit,
                "created_at": key.created_at, **({"tags": list(key.tags)} if key.tags else {})}
