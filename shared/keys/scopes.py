"""What a management key may do (`ApiKey.scopes`), and the rule that no key hands out more than it holds.

A scope is `resource:read` or `resource:write`; `write` implies `read` of the same resource, and `*` is every
scope. A key whose `scopes` is None holds `*`: the first key (`infra.admin_key`, `make run`) and every
management key made before scopes existed. Which route needs which scope: README, "Management scopes".

A key may give (create a key with, change a key to, rotate to get the secret of) only rights it holds itself:
  - scopes: the new or changed management key's scopes are all granted by the caller's (reason `scope_escalation`);
    a management key can be changed, rotated or deleted only by a key that holds all of its scopes;
  - spend: a caller with a `limit` may give a key only a limit at most its own (`limit_exceeds_own`), never none
    (`limit_required`), reset no more often than its own (`limit_reset_exceeds_own`: a lifetime $5 cannot give
    $5 a day);
  - a management key it gives (or changes, itself included) expires no later than the caller
    (`expiry_exceeds_own`) and is usable only from within the caller's `allowed_ips` (`ips_exceed_own`).
Inference keys' restrictions (models, addresses, origins) are not rights a management key holds.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Iterable

from shared.errors import ForbiddenError
from shared.keys.restrictions import epoch

if TYPE_CHECKING:
    from shared.keys.store import ApiKey

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
    """The scopes that holding `scope` grants (itself, and `x:read` for `x:write` where there is one)."""
    read = scope[:-len("write")] + "read"
    return {scope, read} if scope.endswith(":write") and read in SCOPES else {scope}


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


_PERIOD_RANK = {"daily": 0, "weekly": 1, "monthly": 2, None: 3}  # None: a lifetime limit, never reset


def check_grant(caller: ApiKey, *, management: bool, scopes: tuple[str, ...] | None, limit: float | None,
                limit_reset: str | None = None, allowed_ips: tuple[str, ...] | None = None,
                expires_at: str | None = None) -> None:
    """Refuse (403) a key that would have more rights than `caller`, its settings as they would be after the
    change: scopes (a management key's only), a spend limit no higher and reset no more often than the
    caller's, and, for a management key, an expiry no later and addresses no wider than the caller's."""
    if management:
        beyond = missing(caller.scopes, scopes)
        if beyond:
            raise ForbiddenError("A key cannot give scopes it does not hold: " + ", ".join(beyond),
                                 metadata={"reason": "scope_escalation", "scopes": beyond})
        if caller.expires_at is not None and (expires_at is None or epoch(expires_at) > epoch(caller.expires_at)):
            raise ForbiddenError(f"A key that expires ({caller.expires_at}) cannot give a management key that "
                                 "outlives it", metadata={"reason": "expiry_exceeds_own",
                                                          "own_expires_at": caller.expires_at})
        if caller.allowed_ips is not None and not _within(allowed_ips, caller.allowed_ips):
            raise ForbiddenError("A key with allowed_ips cannot give a management key usable from addresses "
                                 "outside its own", metadata={"reason": "ips_exceed_own",
                                                              "own_allowed_ips": list(caller.allowed_ips)})
    if caller.limit is None:
        return
    if limit is None:
        raise ForbiddenError(f"A key with a limit (${caller.limit}) cannot give a key without one",
                             metadata={"reason": "limit_required", "own_limit": caller.limit})
    if limit > caller.limit:
        raise ForbiddenError(f"A key cannot give a limit (${limit}) above its own (${caller.limit})",
                             metadata={"reason": "limit_exceeds_own", "limit": limit, "own_limit": caller.limit})
    if _PERIOD_RANK.get(limit_reset, 3) < _PERIOD_RANK.get(caller.limit_reset, 3):
        own = caller.limit_reset or "never (a lifetime limit)"
        raise ForbiddenError(f"A key whose limit resets {own} cannot give a limit that resets {limit_reset}",
                             metadata={"reason": "limit_reset_exceeds_own", "limit_reset": limit_reset,
                                       "own_limit_reset": caller.limit_reset})


def _within(cidrs: tuple[str, ...] | None, own: tuple[str, ...]) -> bool:
    """Every network of `cidrs` (None: everywhere) lies inside one of `own`."""
    if cidrs is None:
        return False
    mine = [ipaddress.ip_network(c) for c in own]
    return all(any(n.version == m.version and n.subnet_of(m) for m in mine)
               for n in map(ipaddress.ip_network, cidrs))
