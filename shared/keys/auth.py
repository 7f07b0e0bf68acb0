"""Authentication: a bearer token → its `ApiKey`, with a short in-process cache (the revocation delay), the
rotation grace, expiry, and a throttle on sources that keep failing."""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from typing import Callable, Protocol

from shared.errors import AuthenticationError, ForbiddenError, RateLimitedError
from shared.keys.restrictions import epoch
from shared.keys.store import ApiKey
from shared.keys.tokens import KeyKind, ParsedKey, parse_key, secret_hash


class KeyLookup(Protocol):
    """What authentication needs of a key store (KeyStore; an in-memory fake in tests)."""

    def get(self, key_id: str) -> ApiKey | None: ...

    def pepper(self) -> bytes: ...


_UNAUTHORISED = "Missing or invalid API key"
_RELOAD_EVERY = 1.0  # seconds: a secret the cached key does not know reloads it at most this often (rotation)
_KNOWN_FOR = 600.0  # seconds: a key id that authenticated is not throttled for this long


class FailedAuthThrottle:
    """Sources (client addresses) that sent `most` invalid keys within `window` seconds are refused with 429
    until the window ends, without a lookup. An attempt counts as it arrives (`attempt`), before its lookup, so
    that concurrent guesses are counted too; one that turns out valid, or fails for another reason (a disabled
    key is a real key), is given back (`refund`). In-process: each gateway process (or Lambda instance) counts
    its own; the per-source state is bounded (`max_sources`, oldest windows dropped first)."""

    def __init__(self, *, most: int = 20, window: float = 60.0, max_sources: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.most, self.window, self.max_sources, self.clock = most, window, max_sources, clock
        self._failures: dict[str, list[float]] = {}  # source -> [window start, attempts counted]

    def check(self, source: str | None) -> None:
        entry = self._failures.get(source) if source else None
        if entry is None or entry[1] < self.most:
            return
        wait = entry[0] + self.window - self.clock()
        if wait <= 0:
            del self._failures[source]
            return
        reset_ms = int((time.time() + wait) * 1000)
        raise RateLimitedError("Too many failed authentications from this address; try again later",
                               metadata={"reason": "auth_throttled", "retry_after": math.ceil(wait)},
                               headers={"Retry-After": str(math.ceil(wait)), "X-RateLimit-Limit": str(self.most),
                                        "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_ms)})

    def attempt(self, source: str | None) -> float | None:
        """Count an attempt from `source`; returns the window it was counted in (for `refund`), or None."""
        if not source:
            return None
        now = self.clock()
        entry = self._failures.get(source)
        if entry is None or entry[0] + self.window <= now:
            if entry is None and len(self._failures) >= self.max_sources:
                for old in list(self._failures)[: self.max_sources // 10]:  # dicts keep insertion order
                    del self._failures[old]
            entry = self._failures[source] = [now, 0]
        entry[1] += 1
        return entry[0]

    def refund(self, source: str | None, window: float | None) -> None:
        entry = self._failures.get(source) if source else None
        if entry is not None and entry[0] == window and entry[1] > 0:
            entry[1] -= 1

    def failed(self, source: str | None) -> None:
        """Count a failure that is not an attempt's (tests, and callers that know it failed)."""
        self.attempt(source)


class Authenticator:
    """Bearer token → ApiKey. Lookups are cached for `ttl` seconds: that is the revocation delay. A secret the
    cached key does not match reloads it (at most once a second a key), so a rotated key's new secret works at
    once on every process; its old secret is accepted until the rotation's grace ends (checked on each call)."""

    def __init__(self, store: KeyLookup, *, ttl: float, throttle: FailedAuthThrottle | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.throttle = throttle or FailedAuthThrottle()
        self.clock = clock  # wall clock: expiry and rotation grace are instants
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}
        self._reloaded: dict[str, float] = {}
        self._known: dict[str, float] = {}  # key id -> until when it skips the throttle

    async def authenticate(self, authorization: str | None, *, kind: KeyKind, source: str | None = None) -> ApiKey:
        """The caller's key, or the error. `source` (the client address) is throttled after `throttle.most`
        invalid keys, unless the key id authenticated here recently (a good client behind a shared address)."""
        parsed = _bearer(authorization, lambda: self._throttled(source))
        counted, window, watched = False, None, self._known.get(parsed.key_id, 0.0) < time.monotonic()
        if watched:
            self.throttle.check(source)
        try:
            entry = self._cache.get(parsed.key_id)
            if entry is None or entry[0] < time.monotonic():
                if watched and parsed.key_id not in self._loading:  # counted before its lookup: concurrent
                    counted, window = True, self.throttle.attempt(source)  # guesses cannot all pass `check`
                key = self._check(await self._load(parsed.key_id), parsed, kind)
            else:
                key = entry[1]
                if key is not None and not self._matches(key, parsed) and self._may_reload(parsed.key_id):
                    key = await self._load(parsed.key_id)  # rotated elsewhere since it was cached?
                key = self._check(key, parsed, kind)
        except AuthenticationError as e:
            invalid = e.metadata.get("reason") == "key_invalid"
            if counted and not invalid:
                self.throttle.refund(source, window)
            elif watched and invalid and not counted:  # from the cache, or a lookup another request started
                self.throttle.attempt(source)
            raise
        except BaseException:
            if counted:
                self.throttle.refund(source, window)
            raise
        if counted:
            self.throttle.refund(source, window)
        self._remember(parsed.key_id)
        return key

    def _throttled(self, source: str | None) -> None:
        """A malformed token: refused as any invalid key is, and counted as one (it costs no lookup)."""
        self.throttle.check(source)
        self.throttle.attempt(source)

    def _remember(self, key_id: str) -> None:
        """Key ids that authenticated here within `_KNOWN_FOR` seconds skip the throttle (bounded)."""
        now = time.monotonic()
        if self._known.get(key_id, 0.0) > now:
            return
        if len(self._known) >= 100_000:
            self._known = {k: t for k, t in self._known.items() if t > now}
            if len(self._known) >= 100_000:
                self._known.clear()
        self._known[key_id] = now + _KNOWN_FOR

    async def _load(self, key_id: str) -> ApiKey | None:
        """One lookup per key at a time: concurrent requests for an expired entry share it."""
        loading = self._loading.get(key_id)
        if loading is None:
            loading = asyncio.ensure_future(asyncio.to_thread(self.store.get, key_id))
            self._loading[key_id] = loading
            try:
                key = await loading
                self._cache[key_id] = (time.monotonic() + self.ttl, key)
                return key
            finally:
                del self._loading[key_id]
        return await asyncio.shield(loading)

    def _may_reload(self, key_id: str) -> bool:
        now = time.monotonic()
        if now - self._reloaded.get(key_id, -_RELOAD_EVERY) < _RELOAD_EVERY:
            return False
        if len(self._reloaded) > 10_000:
            self._reloaded.clear()
        self._reloaded[key_id] = now
        return True

    def _matches(self, key: ApiKey, parsed: ParsedKey) -> bool:
        """The secret is the key's, or its previous one within the rotation's grace (compared in constant time)."""
        given = secret_hash(self.store.pepper(), parsed.secret)
        if hmac.compare_digest(key.secret_hash, given):
            return True
        return key.previous_secret_hash is not None and key.previous_valid_until is not None \
            and self.clock() < key.previous_valid_until and hmac.compare_digest(key.previous_secret_hash, given)

    def _check(self, key: ApiKey | None, parsed: ParsedKey, kind: KeyKind) -> ApiKey:
        # Unknown key and wrong secret answer alike.
        if key is None or key.kind != parsed.kind or not self._matches(key, parsed):
            raise AuthenticationError(_UNAUTHORISED, metadata={"reason": "key_invalid"})
        if key.disabled:
            raise AuthenticationError("This API key is disabled", metadata={"reason": "key_disabled"})
        if key.expires_at is not None and self.clock() >= epoch(key.expires_at):
            raise AuthenticationError(f"This API key expired at {key.expires_at}",
                                      metadata={"reason": "key_expired", "expires_at": key.expires_at})
        if key.kind != kind:
            raise ForbiddenError("Management keys cannot call models" if key.kind == "management"
                                 else "This endpoint needs a management key", metadata={"reason": "key_kind"})
        return key  # a spent key still reads its own usage and generations: calls are refused by their hold

    def add_spend(self, key_id: str, cost: float) -> None:
        """Count a metered call against the cached key at once, so limits hold between refreshes."""
        entry = self._cache.get(key_id)
        if entry and entry[1] is not None and cost:
            key = entry[1]
            key.usage += cost
            key.usage_monthly += cost
            key.usage_weekly += cost
            key.usage_daily += cost

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)


def _bearer(authorization: str | None, invalid: Callable[[], None]) -> ParsedKey:
    """The token of an Authorization header; `invalid` is called (to throttle) before a malformed one is refused."""
    if not authorization:
        raise AuthenticationError("No API key: send 'Authorization: Bearer <key>'", metadata={"reason": "key_missing"})
    scheme, _, token = authorization.partition(" ")
    parsed = parse_key(token.strip()) if scheme.lower() == "bearer" else None
    if parsed is None:
        invalid()
        raise AuthenticationError(_UNAUTHORISED, metadata={"reason": "key_invalid"})
    return parsed
