"""What a management key may do (`ApiKey.scopes`), and the rule that no key hands out more than it holds.

A scope is `resource:read` or `resource:write`; `write` implies `read` of the same resource, and `*` is every
scope. A key whose `scopes` is None holds `*`: the first key (`infra.admin_key`, `make run`) and every
management key made before scopes existed. Which route needs which scope: README, "Management scopes".

A key may give (create a key with, change a key to, rotate to get the secret of) only rights it holds itself:
  - scopes: the new or changed management key's scopes are all granted by the caller's (reason `scope_escalation`);
    a management key can be changed, rotated or deleted only by a key that holds all of its scopes;
  - spend: a caller with a `limit` may give a key only a limit at most its own (`limit_exceeds_own`), never none
    (`limit_required`). Inference keys' restrictions (models, addresses) are not rights a management key holds.
"""

from __future__ import annotations

from typing import Iterable

from shared.errors import ForbiddenError

SCOPES: dict[str, str] = {
    "keys:read": "list and read keys, inference and management",
    "keys:write": "create, change, rotate, disable and delete keys (never beyond the caller's own rights)",
    "analytics:read": "every key's usage: analytics, exports, activity, credits, any generation",
    "catalog:write": "add, replace, remove and hide providers and models",
    "routes:read": "list and read routing policies",
    "routes:write": "add, replace and remove routing policies",
    "audit:read": "the audit log, its export and verification, and any key's per-call metadata",
    "synthetic:read": "synthetic jobs, their rows and cards, and the templates",
    "synthetic:write": "start, cancel, review and preview synthetic jobs",
    "rankings:read": "rankings runs started through the API",
    "rankings:write": "run the daily rankings for a day",
    "approvals:read": "the model approval workflow's requests and decisions",
    "approvals:write": "approve or refuse models, and turn the approval workflow on or off",
    "metrics:read": "GET /metrics, the Prometheus exposition (unless SWITCHYARD_METRICS_PUBLIC=true)",
    "*": "every scope, present and future",
}


def implied(scope: str) -> set[str]:
    """The scopes that holding `scope` grants (itself, and `x:read` for `x:write`)."""
    if scope.endswith(":write"):
        return {scope, scope[:-len("write")] + "read"}
    return {scope}


def held(scopes: tuple[str, ...] | None) -> set[str]:
    """Every scope a key's `scopes` grants (all of them for None or `*`)."""
    if scopes is None or "*" in scopes:
        return set(SCOPES)
    return {s for scope in scopes for s in implied(scope)}


def grants(scopes: tuple[str, ...] | None, needed: str) -> bool:
    return needed in held(scopes)


def missing(caller: tuple[str, ...] | None, wanted: Iterable[str] | None) -> list[str]:
    """The scopes of `wanted` (None: `*`) that `caller` does not hold."""
    wanted = ("*",) if wanted is None else tuple(wanted)
    have = held(caller)
    return sorted({s for w in wanted for s in (held((w,)) if w == "*" else implied(w))} - have)


def normalise(scopes: Iterable[str]) -> tuple[str, ...]:
    """A scope list as stored: known scopes only (ValueError names an unknown one), deduplicated, `*` alone."""
    out = tuple(dict.fromkeys(scopes))
    unknown = [s for s in out if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)})")
    return ("*",) if "*" in out else out


def require(scopes: tuple[str, ...] | None, needed: str) -> None:
    if not grants(scopes, needed):
        raise ForbiddenError(f"This management key does not hold the scope {needed!r}",
                             metadata={"reason": "scope_missing", "scope": needed,
                                       "scopes": sorted(held(scopes)) if scopes is not None else ["*"]})


def check_grant(caller_scopes: tuple[str, ...] | None, caller_limit: float | None, *, management: bool,
                scopes: tuple[str, ...] | None, limit: float | None) -> None:
    """Refuse (403) a key that would have more rights than the caller: `scopes`, `limit` are the key's rights
    as they would be after the change (scopes only count for a management key)."""
    if management:
        beyond = missing(caller_scopes, scopes)
        if beyond:
            raise ForbiddenError("A key cannot give scopes it does not hold: " + ", ".join(beyond),
                                 metadata={"reason": "scope_escalation", "scopes": beyond})
    if caller_limit is None:
        return
    if limit is None:
        raise ForbiddenError(f"A key with a limit (${caller_limit}) cannot give a key without one",
                             metadata={"reason": "limit_required", "own_limit": caller_limit})
    if limit > caller_limit:
        raise ForbiddenError(f"A key cannot give a limit (${limit}) above its own (${caller_limit})",
                             metadata={"reason": "limit_exceeds_own", "limit": limit, "own_limit": caller_limit})
