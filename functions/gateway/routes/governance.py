"""The organisation's governance (management key): model approval and residency settings, and the approvals.

With `model_approval` on, a model that is not approved cannot be called by any key (403 `model_not_approved`),
and each model asked for is listed here with its first and last request, its count and the keys that asked.
Residency (`residency: ["us-east-1"]`) makes every call consider only endpoints that serve from there (403
`residency` when a model has none), on top of any key's own. A change applies at once in the process that made
it and within the catalog's refresh interval (30 s) everywhere else (shared/governance/source.py). Every change
is audited (`_audit`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from functions.gateway.deps import client_address, scoped
from functions.gateway.state import gateway
from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.governance import regions
from shared.governance.store import Approval, OrgSettings, Status
from shared.keys import ApiKey

router = APIRouter(prefix="/api/v1", tags=["governance"])

Region = Annotated[str, AfterValidator(regions.region)]
Note = Annotated[str, Field(max_length=1000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # `"yes"` or `1` is not `true`


class SettingsChange(Strict):
    """Fields left out keep their value; `residency: null` lifts the organisation's residency."""

    model_approval: Literal["on", "off"] | bool | None = None
    residency: Annotated[list[Region], Field(min_length=1, max_length=32)] | None = None


class Decision(Strict):
    decision: Literal["approve", "reject"]
    note: Note | None = None


class Revocation(Strict):
    note: Note | None = None


async def _audit(request: Request, actor: ApiKey, action: str, target: str, before: dict | None,
                 after: dict | None) -> None:
    """Every change lands in the audit log (shared/audit/log.py), with who made it, from where, and its request."""
    await asyncio.to_thread(lambda: gateway().audit.append(
        action=action, actor=actor, target=target, before=before, after=after,
        source_ip=client_address(request.scope), request_id=request.scope["state"].get("generation_id")))


def _settings_json(settings: OrgSettings) -> dict[str, Any]:
    return {"object": "governance", **settings.to_json()}


@router.get("/governance", summary="The organisation's model approval and residency settings")
async def get_governance(key: ApiKey = Depends(scoped("approvals:read"))) -> dict:
    source = gateway().governance
    await asyncio.to_thread(source.refresh_now)  # what is stored, not what this process last read
    return {"data": _settings_json(source.settings)}


@router.put("/governance", summary="Change the model approval and residency settings")
async def put_governance(change: SettingsChange, request: Request,
                         key: ApiKey = Depends(scoped("approvals:write"))) -> dict:
    source = gateway().governance
    before = (await asyncio.to_thread(source.store.load))[0]
    given = change.model_fields_set
    if "model_approval" in given and change.model_approval is None:
        raise BadRequestError("model_approval is \"on\"/true or \"off\"/false; it cannot be null",
                              metadata={"field": "model_approval"})
    approval = before.model_approval if "model_approval" not in given else change.model_approval in ("on", True)
    residency = before.residency if "residency" not in given else \
        (tuple(dict.fromkeys(change.residency)) if change.residency is not None else None)
    after = OrgSettings(model_approval=approval, residency=residency, updated_at=time.time(), updated_by=key.key_id)
    await asyncio.to_thread(source.store.put_settings, after)
    await asyncio.to_thread(source.refresh_now)
    await _audit(request, key, "governance.update", "governance", before.to_json(), after.to_json())
    return {"data": _settings_json(after)}


@router.get("/approvals", summary="Models asked for and decided (pending first, newest request first)")
async def list_approvals(status: Annotated[Status | None, Query()] = None,
                         key: ApiKey = Depends(scoped("approvals:read"))) -> dict:
    rows = await asyncio.to_thread(gateway().governance.approvals)
    if status is not None:
        rows = [a for a in rows if a.status == status]
    rows.sort(key=lambda a: (a.status != "pending", -(a.last_requested or a.decided_at or 0.0), a.model))
    return {"data": [{"object": "approval", **a.to_json()} for a in rows]}


async def _known(model_id: str) -> tuple[str, Approval | None]:
    """The catalog id a path names and its row; 404 for a model neither in the catalog nor ever asked for."""
    g = gateway()
    canonical = g.catalogs.latest().canonical_id(model_id) or model_id
    row = await asyncio.to_thread(g.governance.store.approval, canonical)
    if row is None and canonical not in g.catalogs.latest():
        raise NotFoundError(f"Model {model_id!r} is neither in the catalog nor asked for",
                            metadata={"model": model_id[:200]})
    return canonical, row


async def _decide(key: ApiKey, model_id: str, status: Status, note: str | None) -> dict:
    """Write the decision, then apply it here at once (other processes follow within the refresh interval)."""
    source = gateway().governance
    row = await asyncio.to_thread(source.store.decide, model_id, status, by=key.key_id, at=time.time(), note=note)
    await asyncio.to_thread(source.refresh_now)
    return {"object": "approval", **row.to_json()}


@router.post("/approvals/{author}/{slug}", summary="Approve or reject a model")
async def decide(author: str, slug: str, body: Decision, request: Request,
                 key: ApiKey = Depends(scoped("approvals:write"))) -> dict:
    model_id, before = await _known(f"{author}/{slug}")
    status: Status = "approved" if body.decision == "approve" else "rejected"
    after = await _decide(key, model_id, status, body.note)
    await _audit(request, key, f"approval.{body.decision}", model_id, before and before.to_json(), after)
    return {"data": after}


@router.post("/approvals/{author}/{slug}/revoke", summary="Withdraw a model's approval")
async def revoke(author: str, slug: str, body: Revocation, request: Request,
                 key: ApiKey = Depends(scoped("approvals:write"))) -> dict:
    model_id, before = await _known(f"{author}/{slug}")
    if before is None or before.status != "approved":
        raise ConflictError(f"Model {model_id!r} is not approved ({before.status if before else 'never decided'})"
                            ": there is nothing to revoke", metadata={"model": model_id, "reason": "not_approved"})
    after = await _decide(key, model_id, "revoked", body.note)
    await _audit(request, key, "approval.revoke", model_id, before.to_json(), after)
    return {"data": after}
