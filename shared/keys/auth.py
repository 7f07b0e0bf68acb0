"""Authentication: a bearer token → its `ApiKey`, with a short in-process cache (the revocation delay)."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Protocol

from shared.errors import AuthenticationError, ForbiddenError
from shared.keys.store import ApiKey
from shared.keys.tokens import KeyKind, ParsedKey, parse_key, secret_hash


class KeyLookup(Protocol):
    """What authentication needs of a key store (KeyStore; an in-memory fake in tests)."""

    def get(self, key_id: str) -> ApiKey | None: ...

    def pepper(self) -> bytes: ...


_UNAUTHORISED = "Missing or invalid API key"


class Authenticator:
    """Bearer token → ApiKey. Lookups are cached for `ttl` seconds: that is the revocation delay."""

    def __init__(self, store: KeyLookup, *, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._loading: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def authenticate(self, authorization: str | None, *, kind: KeyKind) -> ApiKey:
        parsed = _bearer(authorization)
        entry = self._cache.get(parsed.key_id)
        if entry is None or entry[0] < time.monotonic():
            return self._check(await self._load(parsed.key_id), parsed, kind)
        return self._check(entry[1], parsed, kind)

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

    def _check(self, key: ApiKey | None, parsed: ParsedKey, kind: KeyKind) -> ApiKey:
        # Unknown key and wrong secret answer alike; the HMAC is compared in constant time.
        if key is None or key.kind != parsed.kind:
            raise AuthenticationError(_UNAUTHORISED)
        if not hmac.compare_digest(key.secret_hash, secret_hash(self.store.pepper(), parsed.secret)):
            raise AuthenticationError(_UNAUTHORISED)
        if key.disabled:
            raise AuthenticationError("This API key is disabled")
        if key.kind != kind:
            raise ForbiddenError("Management keys cannot call models" if key.kind == "management"
                                 else "This endpoint needs a management key")
        return key  # a spent key still reads its own usage and generations: calls are refused by their hold

    def add_spend(self, key_id: str, cost: float) -> None:
        """Count a metered call against the cached key at once, so limits hold between refreshes."""
        entry = self._cache.get(key_id)
        if entry and entry[1] is not None and cost:
            entry[1].usage += cost
            entry[1].usage_monthly += cost
            entry[1].usage_daily += cost

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)


def _bearer(authorization: str | None) -> ParsedKey:
    if not authorization:
        raise AuthenticationError("No API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    parsed = parse_key(token.strip()) if scheme.lower() == "bearer" else None
    if parsed is None:
        raise AuthenticationError(_UNAUTHORISED)
    return parsed
