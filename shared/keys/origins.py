"""Which origins some key allows: what a CORS preflight, which carries no key, is answered from.

The keys table holds one index item per origin pattern a key lists (`key_id` "origin#<pattern>", `keys`: the
string set of key ids), kept by DynamoKeyStore as keys are created, changed and deleted. A preflight for
`https://a.b.app.com` reads the items of that origin and of its wildcard forms (`https://*.b.app.com`,
`https://*.app.com`, ...) in one BatchGetItem, cached for the key cache's time.
"""

from __future__ import annotations

import time
from typing import Iterable

from shared.aws.dynamodb import Table, batch_get
from shared.keys.restrictions import origin_forms

PREFIX = "origin#"


class OriginIndex:
    def __init__(self, keys_table: str, *, ttl: float, max_entries: int = 10_000) -> None:
        self.table = Table(keys_table)
        self.ttl, self.max_entries = ttl, max_entries
        self._cache: dict[str, tuple[float, bool]] = {}

    def allowed(self, origin: str) -> bool:
        """Whether any key lists a pattern matching `origin` (cached for `ttl` seconds)."""
        entry = self._cache.get(origin)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        forms = origin_forms(origin)  # every form the call's check accepts (restrictions.origin_allowed)
        known = False
        for start in range(0, len(forms), 100):  # BatchGetItem takes 100 keys
            found = batch_get({self.table.name: [{"key_id": PREFIX + f} for f in forms[start:start + 100]]})
            if any(i.get("keys") for i in found[self.table.name]):
                known = True
                break
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[origin] = (time.monotonic() + self.ttl, known)
        return known

    def change(self, key_id: str, before: Iterable[str], after: Iterable[str]) -> None:
        """Index a key's new origin patterns and drop the ones it no longer lists."""
        before, after = set(before), set(after)
        if before != after:
            self._cache.clear()  # this process answers at once; others within `ttl`
        for pattern in after - before:
            self.table.update({"key_id": PREFIX + pattern}, "ADD #k :id", names={"#k": "keys"},
                              values={":id": {key_id}})
        for pattern in before - after:
            self.table.update({"key_id": PREFIX + pattern}, "DELETE #k :id", names={"#k": "keys"},
                              values={":id": {key_id}})
