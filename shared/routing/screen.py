"""What one call may use, screened model by model: the key's `allowed_models`, the organisation's model approval
(shared/governance/), and residency (the key's and the organisation's regions, each to be met).

A `Screen` exists only for a call that has one of these (`Screen.of` is None otherwise: an unrestricted call
under no governance pays one attribute test a model). The plan asks it twice (shared/routing/plan.py): up front,
about the models the request names itself (`check_requested`: the whole request is refused, as it would be for a
model the key may not call); then, as each model of the chain comes up, policy targets included, for the
candidates it may use (`keep`): none, with the refusal, for a model not allowed or not approved; for residency,
only the endpoints that serve from the regions, and the refusal when none does (never a fallback elsewhere).
Each refusal is a 403 with its `metadata.reason`: model_not_allowed, model_not_approved, residency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import ForbiddenError
from shared.governance.regions import meets
from shared.governance.source import Governance
from shared.keys.restrictions import model_allowed

if TYPE_CHECKING:
    from shared.catalog import Catalog, CatalogModel
    from shared.chat.context import CallContext
    from shared.routing.providers import Candidate

Regions = tuple[tuple[str, tuple[str, ...]], ...]  # (whose: "key" | "organisation", regions), all to be met


def not_allowed(models: list[str]) -> ForbiddenError:
    return ForbiddenError(f"This key may not call {', '.join(models)} (its allowed_models)",
                          metadata={"reason": "model_not_allowed", "models": models})


def not_approved(models: list[str]) -> ForbiddenError:
    return ForbiddenError(f"{', '.join(models)} {'is' if len(models) == 1 else 'are'} not approved for use in this "
                          "organisation; the request is listed for approval (GET /api/v1/approvals)",
                          metadata={"reason": "model_not_approved", "models": models})


def outside(regions: Regions, model: "CatalogModel") -> ForbiddenError:
    wanted = " and ".join(f"{', '.join(r)} ({whose})" for whose, r in regions)
    served = [{"provider": e.provider.id, "regions": list(e.regions)} for e in model.endpoints]
    where = "; ".join(f"{s['provider']}: {', '.join(s['regions']) or 'undeclared'}" for s in served)
    return ForbiddenError(f"No endpoint of {model.id!r} serves from {wanted} (its endpoints: {where})",
                          metadata={"reason": "residency", "model": model.id,
                                    "regions": sorted({x for _, r in regions for x in r}),
                                    "residency": {whose: list(r) for whose, r in regions}, "endpoints": served})


class Screen:
    __slots__ = ("allowed", "governance", "key_id", "regions")

    def __init__(self, ctx: "CallContext", governance: Governance) -> None:
        self.allowed, self.governance, self.key_id = ctx.allowed_models, governance, ctx.key_id
        self.regions: Regions = tuple((whose, r) for whose, r in (("key", ctx.residency),
                                                                   ("organisation", governance.residency))
                                      if r is not None)

    @classmethod
    def of(cls, ctx: "CallContext", governance: Governance) -> "Screen | None":
        if ctx.allowed_models is None and ctx.residency is None and not governance.model_approval \
                and governance.residency is None:
            return None
        return cls(ctx, governance)

    def check_requested(self, catalog: "Catalog", requested: list[str]) -> None:
        """Every model the request names (its `model` and each fallback in `models`) must be one the key may call
        and, with approval on, approved (those that are not are listed for approval). A routing policy is
        checked through the models it routes to (`keep`)."""
        if self.allowed is None and not self.governance.model_approval:
            return
        ids = [c for m in requested if catalog.policies.find(m) is None and (c := catalog.canonical_id(m)) is not None]
        if self.allowed is not None and (refused := [m for m in ids if not model_allowed(self.allowed, m)]):
            raise not_allowed(refused)
        if self.governance.model_approval:
            unapproved = list(dict.fromkeys(m for m in ids if m not in self.governance.approved))
            if unapproved:
                self.governance.requested(unapproved, self.key_id)
                raise not_approved(unapproved)

    def keep(self, queue: list["Candidate"]) -> tuple[list["Candidate"], ForbiddenError | None]:
        """The candidates of one model (a non-empty list) this call may use, and the refusal when none."""
        model = queue[0].model
        if self.allowed is not None and not model_allowed(self.allowed, model.id):
            return [], not_allowed([model.id])
        governance = self.governance
        if governance.model_approval and model.id not in governance.approved:
            governance.requested([model.id], self.key_id)
            return [], not_approved([model.id])
        if self.regions:
            kept = [c for c in queue if all(meets(r, c.endpoint.regions) for _, r in self.regions)]
            return (kept, None) if kept else ([], outside(self.regions, model))
        return queue, None
