"""API keys as stored: the key record (`ApiKey`), what routes need of a store of keys (`KeyStore`), and the
DynamoDB one (`DynamoKeyStore`), which `functions/gateway/state.py` builds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Protocol

from shared.aws.dynamodb import ConditionFailedError, Table, batch_get
from shared.errors import ConflictError, NotFoundError
from shared.keys.counters import TOTAL, Periods, counter_key, periods
from shared.keys.origins import OriginIndex
from shared.keys.spend import SpendGuard
from shared.keys.tokens import KeyKind, ParsedKey, label, new_key, secret_hash

__all__ = ["ApiKey", "DynamoKeyStore", "KeyStore", "SETTABLE"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


LimitReset = Literal["daily", "weekly", "monthly"]

# The fields a key's owner sets (create and PATCH); None (or absent) means unrestricted / unset.
SETTABLE = ("name", "disabled", "limit", "limit_reset", "tags", "expires_at", "allowed_models", "allowed_ips",
            "allowed_origins", "rpm", "rpd", "tpm", "residency", "zero_log", "scopes")
_TUPLES = frozenset(("tags", "allowed_models", "allowed_ips", "allowed_origins", "residency", "scopes"))


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
    usage_weekly: float = 0.0
    usage_daily: float = 0.0
    tags: tuple[str, ...] = ()  # operator labels, matched by routing rules (`key_tag`)
    # Restrictions (shared/keys/restrictions.py); None: none of that kind.
    limit_reset: LimitReset | None = None  # the limit applies to the current UTC day, week (Mon-Sun) or month
    expires_at: str | None = None  # ISO 8601 UTC; refused from then on
    allowed_models: tuple[str, ...] | None = None  # ids and globs (`anthropic/*`)
    allowed_ips: tuple[str, ...] | None = None  # CIDRs, IPv4 and IPv6
    allowed_origins: tuple[str, ...] | None = None  # scheme://host[:port], `*.` for subdomains
    rpm: int | None = None  # requests per UTC minute
    rpd: int | None = None  # requests per UTC day
    tpm: int | None = None  # tokens (prompt bound + output bound, settled to the real count) per UTC minute
    residency: tuple[str, ...] | None = None  # regions the key's calls may be served from
    zero_log: bool = False  # its usage records keep no IP, user agent, app or prompt fingerprint
    scopes: tuple[str, ...] | None = None  # management keys: what they may do (None: everything, "*")
    created_by: str | None = None  # the management key that created it
    # Rotation: the secret it had, accepted until `previous_valid_until` (epoch seconds).
    previous_secret_hash: str | None = field(default=None, repr=False)
    previous_valid_until: float | None = None

    @property
    def limit_remaining(self) -> float | None:
        return None if self.limit is None else max(round(self.limit - self.limit_usage, 9), 0.0)

    @property
    def limit_usage(self) -> float:
        """The spend the limit applies to: the current period's with `limit_reset`, else all of it."""
        return {"daily": self.usage_daily, "weekly": self.usage_weekly, "monthly": self.usage_monthly,
                None: self.usage}[self.limit_reset]

    @property
    def restricted(self) -> bool:
        """Whether a call needs any check beyond the secret (the unrestricted hot path skips them all)."""
        return any(getattr(self, f) is not None for f in _CHECKED) or self.zero_log

    def to_api(self) -> dict[str, Any]:
        """OpenRouter's key shape; `hash` is our public key id. A whole-dollar limit reads as it was given (10,
        not 10.0)."""
        data = {
            "hash": self.key_id, "name": self.name, "label": self.label, "disabled": self.disabled,
            "limit": _whole(self.limit), "limit_remaining": _whole(self.limit_remaining),
            "limit_reset": self.limit_reset,
            "usage": round(self.usage, 10), "usage_daily": round(self.usage_daily, 10),
            "usage_weekly": round(self.usage_weekly, 10), "usage_monthly": round(self.usage_monthly, 10),
            "is_management_key": self.kind == "management",
            "created_at": self.created_at, "updated_at": self.updated_at, "tags": list(self.tags),
            "expires_at": self.expires_at,
            "allowed_models": _listed(self.allowed_models), "allowed_ips": _listed(self.allowed_ips),
            "allowed_origins": _listed(self.allowed_origins), "rpm": self.rpm, "rpd": self.rpd, "tpm": self.tpm,
            "residency": _listed(self.residency), "zero_log": self.zero_log, "created_by": self.created_by,
            "rotation_grace_until": _iso(self.previous_valid_until),
        }
        if self.kind == "management":
            data["scopes"] = list(self.scopes) if self.scopes is not None else ["*"]
        return data

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "ApiKey":
        def listed(name: str) -> tuple[str, ...] | None:
            value = item.get(name)
            return None if value is None else tuple(value)

        def whole(name: str) -> int | None:
            value = item.get(name)
            return None if value is None else int(value)

        return cls(key_id=item["key_id"], kind=item["kind"], name=item.get("name", ""), label=item["label"],
                   secret_hash=item["secret_hash"], disabled=bool(item.get("disabled", False)),
                   limit=item.get("limit"), created_at=item.get("created_at", ""),
                   updated_at=item.get("updated_at"), tags=tuple(item.get("tags") or ()),
                   limit_reset=item.get("limit_reset"), expires_at=item.get("expires_at"),
                   allowed_models=listed("allowed_models"), allowed_ips=listed("allowed_ips"),
                   allowed_origins=listed("allowed_origins"), rpm=whole("rpm"), rpd=whole("rpd"),
                   tpm=whole("tpm"), residency=listed("residency"), zero_log=bool(item.get("zero_log", False)),
                   scopes=listed("scopes"), created_by=item.get("created_by"),
                   previous_secret_hash=item.get("previous_secret_hash"),
                   previous_valid_until=item.get("previous_valid_until"))


# The fields whose presence makes a call check something (see ApiKey.restricted).
_CHECKED = ("expires_at", "allowed_models", "allowed_ips", "allowed_origins", "rpm", "rpd", "tpm", "residency")


def _listed(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class KeyStore(Protocol):
    """Keys with their spend (DynamoKeyStore; an in-memory fake in tests). `update`, `rotate` and `delete` manage
    keys of one kind (inference by default): a key of another kind is answered like an unknown one
    (NotFoundError). Settings are the fields of `SETTABLE`; in `update`, None clears one."""

    def pepper(self) -> bytes: ...

    def create(self, name: str, *, kind: KeyKind = "inference", token: tuple[str, ParsedKey] | None = None,
               **settings: Any) -> tuple[str, ApiKey]: ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def list(self, *, kind: KeyKind = "inference") -> list[ApiKey]: ...

    def update(self, key_id: str, *, kind: KeyKind = "inference", **changes: Any) -> ApiKey: ...

    def rotate(self, key_id: str, *, grace_seconds: float, kind: KeyKind = "inference") -> tuple[str, ApiKey]: ...

    def delete(self, key_id: str, *, kind: KeyKind = "inference") -> None: ...


def stored(name: str, value: Any) -> Any:
    """A setting as the keys table holds it (tuples as lists)."""
    return list(value) if name in _TUPLES and value is not None else value


class DynamoKeyStore:
    """Keys in the keys table; spend in the counters table (written by metering)."""

    def __init__(self, keys_table: str, counters_table: str, pepper: Callable[[], bytes],
                 spend: SpendGuard | None = None) -> None:
        self.keys = Table(keys_table)
        self.counters_table = counters_table
        self.pepper = pepper  # () -> bytes: read when needed (from Secrets Manager on AWS), never at import
        self.spend = spend or SpendGuard(counters_table, stale_after=900)
        self.origins = OriginIndex(keys_table, ttl=10.0)

    def create(self, name: str, *, kind: KeyKind = "inference", token: tuple[str, ParsedKey] | None = None,
               **settings: Any) -> tuple[str, ApiKey]:
        """A new key (`token`: one made elsewhere, e.g. `derived_key`); FileExistsError when its id is taken."""
        unknown = set(settings) - set(SETTABLE) - {"created_by"}
        if unknown:
            raise TypeError(f"unknown key settings: {sorted(unknown)}")
        token, parts = token or new_key(kind)
        key = ApiKey(key_id=parts.key_id, kind=kind, name=name, label=label(token),
                     secret_hash=secret_hash(self.pepper(), parts.secret), created_at=now_iso(),
                     **{k: tuple(v) if k in _TUPLES and v is not None else v for k, v in settings.items()})
        try:
            self.keys.put(self._item(key), condition="attribute_not_exists(key_id)")
        except ConditionFailedError:
            raise FileExistsError(f"key {key.key_id} exists") from None
        if key.limit is not None:
            self.spend.resync(key.key_id)  # its first hold finds the counters ready
        if key.allowed_origins:
            self.origins.change(key.key_id, (), key.allowed_origins)
        return token, key

    def get(self, key_id: str) -> ApiKey | None:
        """The key with its spend, in one round trip."""
        now = periods(datetime.now(timezone.utc))
        ck = counter_key(key_id)
        found = batch_get({
            self.keys.name: [{"key_id": key_id}],
            self.counters_table: [{"pk": ck, "period": p} for p in (TOTAL, *now)],
        })
        if not found[self.keys.name]:
            return None
        key = ApiKey.from_item(found[self.keys.name][0])
        for row in found[self.counters_table]:
            _add_spend(key, row, now)
        return key

    def list(self, *, kind: KeyKind = "inference") -> list[ApiKey]:
        """Every key of a kind, newest first, each with its spend (BatchGetItem, 25 keys a round trip)."""
        keys = sorted((ApiKey.from_item(i) for i in self.keys.scan() if i.get("kind") == kind),
                      key=lambda k: k.created_at, reverse=True)
        now = periods(datetime.now(timezone.utc))
        by_counter = {counter_key(k.key_id): k for k in keys}
        counters = list(by_counter)
        for start in range(0, len(counters), 25):  # 4 rows a key, at most 100 a BatchGetItem
            found = batch_get({self.counters_table: [{"pk": ck, "period": p} for ck in counters[start:start + 25]
                                                     for p in (TOTAL, *now)]})
            for row in found[self.counters_table]:
                _add_spend(by_counter[row["pk"]], row, now)
        return keys

    def update(self, key_id: str, *, kind: KeyKind = "inference", **changes: Any) -> ApiKey:
        unknown = set(changes) - set(SETTABLE)
        if unknown:
            raise TypeError(f"unknown key settings: {sorted(unknown)}")
        sets, removes = ["updated_at = :u"], []
        values: dict[str, Any] = {":u": now_iso(), ":k": kind}
        names: dict[str, str] = {"#k": "kind"}
        for i, (name, value) in enumerate(changes.items()):
            if value is None and name in ("name", "disabled", "zero_log"):
                continue  # cannot be cleared
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                sets.append(f"#f{i} = :f{i}")
                values[f":f{i}"] = stored(name, value)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        indexed = "allowed_origins" in changes or changes.get("disabled") is not None
        before = self.keys.get({"key_id": key_id}, consistent=True) if indexed else None
        try:
            self.keys.update({"key_id": key_id}, expression, names=names, values=values,
                             condition="attribute_exists(key_id) AND #k = :k")
        except ConditionFailedError:
            raise NotFoundError(f"No key {key_id!r}", metadata={"hash": key_id}) from None
        if indexed:  # the origin index lists enabled keys' origins only (a preflight for a disabled key's: 403)
            before = before or {}
            after = {**before, **{k: v for k, v in changes.items() if k == "allowed_origins" or v is not None}}
            self.origins.change(key_id, () if before.get("disabled") else (before.get("allowed_origins") or ()),
                                () if after.get("disabled") else (after.get("allowed_origins") or ()))
        if changes.get("limit") is not None:
            self.spend.resync(key_id)  # spent while unlimited: `committed` catches up before the limit applies
        key = self.get(key_id)
        assert key is not None
        return key

    def rotate(self, key_id: str, *, grace_seconds: float, kind: KeyKind = "inference") -> tuple[str, ApiKey]:
        """A new secret for the key (same id, same spend); the current one stays valid for `grace_seconds`
        (0: refused at once). A rotation during a grace ends the earlier grace: only one old secret is kept."""
        item = self.keys.get({"key_id": key_id}, consistent=True)
        if item is None or item.get("kind") != kind:
            raise NotFoundError(f"No key {key_id!r}", metadata={"hash": key_id})
        token, parts = new_key(kind, key_id=key_id)
        values: dict[str, Any] = {":h": secret_hash(self.pepper(), parts.secret), ":old": item["secret_hash"],
                                  ":l": label(token), ":u": now_iso()}
        expression = "SET secret_hash = :h, #l = :l, updated_at = :u"
        if grace_seconds > 0:
            expression += ", previous_secret_hash = :old, previous_valid_until = :until"
            values[":until"] = round(time.time() + grace_seconds, 3)
        else:
            expression += " REMOVE previous_secret_hash, previous_valid_until"
        try:  # conditional on the secret read: two rotations at once cannot both keep "the" old secret
            self.keys.update({"key_id": key_id}, expression, names={"#l": "label"}, values=values,
                             condition="secret_hash = :old")
        except ConditionFailedError:
            raise ConflictError("The key was rotated meanwhile; try again", metadata={"hash": key_id}) from None
        key = self.get(key_id)
        assert key is not None
        return token, key

    def delete(self, key_id: str, *, kind: KeyKind = "inference") -> None:
        item = self.keys.get({"key_id": key_id})
        if item is None or item.get("kind") != kind:
            raise NotFoundError(f"No key {key_id!r}", metadata={"hash": key_id})
        self.keys.delete({"key_id": key_id})
        if item.get("allowed_origins"):
            self.origins.change(key_id, item["allowed_origins"], ())

    @staticmethod
    def _item(key: ApiKey) -> dict[str, Any]:
        item = {"key_id": key.key_id, "kind": key.kind, "name": key.name, "label": key.label,
                "secret_hash": key.secret_hash, "disabled": key.disabled, "limit": key.limit,
                "created_at": key.created_at}
        for name in (*SETTABLE, "created_by"):
            value = getattr(key, name)
            if name not in item and value not in (None, (), False):
                item[name] = stored(name, value)
        return item


def _add_spend(key: ApiKey, row: dict[str, Any], now: Periods) -> None:
    cost = float(row.get("cost", 0))
    period = row["period"]
    if period == TOTAL:
        key.usage = cost
    elif period == now.month:
        key.usage_monthly = cost
    elif period == now.week:
        key.usage_weekly = cost
    elif period == now.day:
        key.usage_daily = cost


def _whole(amount: float | None) -> float | int | None:
    return int(amount) if amount is not None and float(amount).is_integer() else amount
