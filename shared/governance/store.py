"""Where the organisation's governance is kept: its settings and one row per model asked for or decided, in the
catalog table's `governance` partition, so that one Query reads all of it (`GovernanceStore`; the DynamoDB one is
`DynamoGovernanceStore`, built by functions/gateway/state.py; an in-memory one in tests/stores.py).

    (pk "governance", sk "settings")        model_approval, residency, updated_at, updated_by
    (pk "governance", sk "approval|<model>") status, first_requested, last_requested, requests, key_ids (≤ 20),
                                              decided_at, decided_by, note

A model's status: `pending` (asked for, never decided), `approved`, `rejected`, `revoked` (approved, then
withdrawn). Calls refused for want of an approval add to its counts in batches (shared/governance/source.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from shared.aws.dynamodb import ConditionFailedError, Table

__all__ = ["Approval", "DynamoGovernanceStore", "GovernanceStore", "OrgSettings", "KEY_IDS_KEPT", "Status"]

Status = Literal["pending", "approved", "rejected", "revoked"]
KEY_IDS_KEPT = 20  # the requesting keys a row lists (the count goes on; the list is an example, not a log)
_PK = "governance"
_APPROVAL = "approval|"


def iso(epoch: float | None) -> str | None:
    """Times are kept as epoch seconds and shown as ISO 8601 UTC, as the keys API shows them."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class OrgSettings:
    model_approval: bool = False
    residency: tuple[str, ...] | None = None  # regions every call must be served from (None: anywhere)
    updated_at: float | None = None
    updated_by: str | None = None  # the management key's id

    def to_json(self) -> dict[str, Any]:
        return {"model_approval": "on" if self.model_approval else "off",
                "residency": list(self.residency) if self.residency is not None else None,
                "updated_at": iso(self.updated_at), "updated_by": self.updated_by}


@dataclass(frozen=True, slots=True)
class Approval:
    model: str
    status: Status = "pending"
    first_requested: float | None = None
    last_requested: float | None = None
    requests: int = 0
    key_ids: tuple[str, ...] = field(default=())
    decided_at: float | None = None
    decided_by: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "first_requested": iso(self.first_requested),
                "last_requested": iso(self.last_requested), "requests": self.requests, "key_ids": list(self.key_ids),
                "decided_at": iso(self.decided_at), "decided_by": self.decided_by, "note": self.note}


class GovernanceStore(Protocol):
    def load(self) -> tuple[OrgSettings, list[Approval]]:
        """The settings (defaults when never set) and every approval row."""
        ...

    def put_settings(self, settings: OrgSettings) -> None: ...

    def approval(self, model: str) -> Approval | None: ...

    def decide(self, model: str, status: Status, *, by: str, at: float, note: str | None) -> Approval:
        """Set a model's status (the row is made if there was none); its request counts are kept."""
        ...

    def add_requests(self, model: str, count: int, first: float, last: float, key_ids: set[str]) -> None:
        """Add refused calls to a model's row (made `pending` if there was none)."""
        ...


def _settings(item: dict[str, Any] | None) -> OrgSettings:
    if not item:
        return OrgSettings()
    residency = item.get("residency")
    return OrgSettings(model_approval=item.get("model_approval") is True,
                       residency=tuple(residency) if isinstance(residency, list) else None,
                       updated_at=item.get("updated_at"), updated_by=item.get("updated_by"))


def _approval(item: dict[str, Any]) -> Approval:
    status = item.get("status")
    return Approval(model=item["sk"][len(_APPROVAL):],
                    status=status if status in ("pending", "approved", "rejected", "revoked") else "pending",
                    first_requested=item.get("first_requested"), last_requested=item.get("last_requested"),
                    requests=int(item.get("requests") or 0), key_ids=tuple(sorted(item.get("key_ids") or ())),
                    decided_at=item.get("decided_at"), decided_by=item.get("decided_by"), note=item.get("note"))


class DynamoGovernanceStore:
    def __init__(self, table: str) -> None:
        self.table = Table(table)

    def load(self) -> tuple[OrgSettings, list[Approval]]:
        settings, approvals = OrgSettings(), []
        for item in self.table.query("pk", _PK, limit=100_000):
            if item["sk"] == "settings":
                settings = _settings(item)
            elif item["sk"].startswith(_APPROVAL):
                approvals.append(_approval(item))
        return settings, approvals

    def put_settings(self, settings: OrgSettings) -> None:
        self.table.put({"pk": _PK, "sk": "settings", "model_approval": settings.model_approval,
                        "residency": list(settings.residency) if settings.residency is not None else None,
                        "updated_at": settings.updated_at, "updated_by": settings.updated_by})

    def approval(self, model: str) -> Approval | None:
        item = self.table.get({"pk": _PK, "sk": _APPROVAL + model}, consistent=True)
        return None if item is None else _approval(item)

    def decide(self, model: str, status: Status, *, by: str, at: float, note: str | None) -> Approval:
        values: dict[str, Any] = {":s": status, ":by": by, ":at": at, ":z": 0}
        expression = "SET #s = :s, decided_by = :by, decided_at = :at, requests = if_not_exists(requests, :z)"
        if note is not None:
            expression += ", note = :note"
            values[":note"] = note
        else:
            expression += " REMOVE note"
        item = self.table.update({"pk": _PK, "sk": _APPROVAL + model}, expression, names={"#s": "status"},
                                 values=values)
        return _approval(item)

    def add_requests(self, model: str, count: int, first: float, last: float, key_ids: set[str]) -> None:
        key = {"pk": _PK, "sk": _APPROVAL + model}
        base = ("SET #s = if_not_exists(#s, :pending), first_requested = if_not_exists(first_requested, :first), "
                "last_requested = :last ADD requests :n")
        values: dict[str, Any] = {":pending": "pending", ":first": first, ":last": last, ":n": count}
        if key_ids:
            try:  # the list of keys stays short: it is added to only while it has room
                self.table.update(key, base + ", key_ids :ids", names={"#s": "status"},
                                  values={**values, ":ids": set(key_ids), ":cap": KEY_IDS_KEPT},
                                  condition="attribute_not_exists(key_ids) OR size(key_ids) < :cap")
                return
            except ConditionFailedError:
                pass
        self.table.update(key, base, names={"#s": "status"}, values=values)
