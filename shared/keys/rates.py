"""Per-key rate limits that hold across processes: requests per UTC minute (`rpm`) and per UTC day (`rpd`),
tokens per UTC minute (`tpm`), in fixed windows whose bucket is in the DynamoDB key of the counters table:

    pk "rate#<key id>"   period "rpm#2026-12-02T07:05"   granted, expires_at (TTL: an hour after the window)
                         period "rpd#2026-12-02"          granted, expires_at (a day after)
                         period "tpm#2026-12-02T07:05"    granted, expires_at (an hour after)

`granted` is what the window has handed out to every process together. A process does not ask the table for
each request: it leases a *slice* of the window with one conditional UpdateItem (`granted + slice <= limit`,
checked and applied atomically by DynamoDB, so any number of processes or Lambda instances together never pass
the limit) and serves requests from its lease with no round trip. When less than a slice is left, what is left
is granted (the failed condition returns the row as it was, in the same round trip; a second UpdateItem takes
the rest). A slice is sized to last this process about `horizon` seconds at the rate it used its last one, and
is never more than 1/`share` of what the window still has: slices shrink as the window fills, so an idle
process strands little. With `prefetch`, a lease of 4 or more that is three-quarters used asks for its next
slice in the background, so that a request rarely waits for a grant. A refusal is remembered for `recheck`
seconds (at most to the window's end), so a flood of refused requests makes no round trips either.

Round trips a request: none when its lease covers it; one a grant (a slice is ~`horizon` seconds of the
process's traffic, so one per rate × horizon requests under load, mostly made in the background); two when
the window runs short (the failed grant and the remainder). Keys without rpm, rpd and tpm never come here.

Tokens (tpm): a call takes its worst case before it is sent — the prompt's upper bound plus its output bound
× n (shared/chat/budget.py; the output bound is enforced for tpm keys as for keys with a spend limit) — as
OpenAI does, which counts `max_tokens` against the limit when the request arrives. When the call ends it gives
back what it did not use: to this process's lease while its window lasts (no round trip); whatever the lease
then holds beyond one slice goes back to the table off the request path. A window that has ended keeps what
it counted.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal, NamedTuple

from shared.aws.dynamodb import ConditionFailedError, Table
from shared.errors import KeyRateLimitedError

Kind = Literal["rpm", "rpd", "tpm"]
_LENGTH = {"rpm": 60, "rpd": 86_400, "tpm": 60}  # seconds a window lasts
_KEEP = {"rpm": 3_600, "rpd": 86_400, "tpm": 3_600}  # seconds a window's row outlives it (its TTL)
_WHAT = {"rpm": "requests per minute", "rpd": "requests per day", "tpm": "tokens per minute"}
_ATTEMPTS = 8  # grants tried in a row while other processes keep taking what was left
_MAX_LEASES = 100_000  # (key, kind) pairs kept in memory; the oldest are dropped past it


def rate_key(key_id: str) -> str:
    return f"rate#{key_id}"


@lru_cache(maxsize=64)
def bucket(kind: Kind, start: int) -> str:
    """The sort key of the window starting at `start` (epoch seconds): `rpm#2026-12-02T07:05`, `rpd#2026-12-02`."""
    return kind + "#" + time.strftime("%Y-%m-%dT%H:%M" if _LENGTH[kind] == 60 else "%Y-%m-%d", time.gmtime(start))


class Taken(NamedTuple):
    """Units taken for one call from one window (given back, in part or whole, with `RateLimiter.give_back`)."""

    key_id: str
    kind: Kind
    bucket: str
    amount: int
    limit: int
    remaining: int  # what this process knows is still unused in the window (a lower bound)
    reset: float  # the window's end, epoch seconds


@dataclass(slots=True)
class _Lease:
    """One process's share of one key's current window."""

    bucket: str
    end: float
    left: int = 0  # units leased to this process and not yet used
    seen: int = 0  # the window's `granted` (every process's) as last read
    size: int = 0  # what the last grant gave
    granted_at: float | None = None  # when (the limiter's clock); None: nothing granted in this window yet
    used: int = 0  # units taken since then
    rate: float = 0.0  # units a second this process used its last lease at (carried into the next window)
    refused_room: int | None = None  # the room the table had at the last refusal, believed until recheck_at
    recheck_at: float = 0.0
    granting: bool = False  # a grant is in flight: others wait for it rather than make their own
    limit: int = 0  # the key's limit when last served: a lower one (a PATCH) strands what the lease holds

    def remaining(self, limit: int) -> int:
        return max(limit - self.seen, 0) + self.left


class RateLimiter:
    """Leases of each rate-limited key's windows, for this process. Thread-safe: request limits are taken on
    the event loop (`admit`, a thread only for a round trip), tokens in the worker thread that holds spend."""

    def __init__(self, counters_table: str, *, clock: Callable[[], float] = time.time, horizon: float = 0.5,
                 share: int = 8, recheck: float = 1.0, prefetch: bool = True) -> None:
        self.table = Table(counters_table)
        self.clock = clock  # wall clock: windows are UTC minutes and days
        self.horizon, self.share, self.recheck, self.prefetch = horizon, share, recheck, prefetch
        self._leases: dict[tuple[str, Kind], _Lease] = {}
        self.refused: dict[Kind, int] = {}  # refusals (429) by limit, since the process started
        # Re-entrant: a stream dropped by the garbage collector settles its tokens from wherever it is collected.
        self._lock = threading.RLock()
        self._granted = threading.Condition(self._lock)
        self._background: ThreadPoolExecutor | None = None  # returns and prefetches, off the request path

    # -- requests (rpm, rpd) ---------------------------------------------------------------------------------
    async def admit(self, key_id: str, *, rpm: int | None, rpd: int | None) -> dict[str, str]:
        """Count one request against the key's day and minute, or raise 429 naming the one that refused
        (the day first: when both are spent, the day's wait is the true one). Returns the X-RateLimit headers
        of the tighter of the two for the answer."""
        taken: list[Taken] = []
        try:
            for kind, limit in (("rpd", rpd), ("rpm", rpm)):
                if limit is not None:
                    got = self.take_local(key_id, kind, limit)
                    if got is None:
                        got = await asyncio.to_thread(self.take, key_id, kind, limit)
                    taken.append(got)
        except KeyRateLimitedError:
            for t in taken:
                self.give_back(t, t.amount)
            raise
        return headers(min(taken, key=lambda t: t.remaining))

    # -- any kind --------------------------------------------------------------------------------------------
    def take_local(self, key_id: str, kind: Kind, limit: int, amount: int = 1) -> Taken | None:
        """`amount` units from this process's lease, with no round trip; the refusal this process already
        knows of; or None: only the table can say (`take`)."""
        with self._lock:
            return self._local(key_id, kind, limit, amount, self.clock())

    def take(self, key_id: str, kind: Kind, limit: int, amount: int = 1) -> Taken:
        """`amount` units of the key's current window, leasing a slice from the table when the lease is short
        (blocking: call it from a worker thread), or raise KeyRateLimitedError."""
        while True:
            with self._lock:
                while True:
                    now = self.clock()
                    got = self._local(key_id, kind, limit, amount, now)
                    if got is not None:
                        return got
                    lease = self._leases[(key_id, kind)]
                    if not lease.granting:
                        break
                    self._granted.wait(timeout=5)  # another thread's grant may cover this call too
                lease.granting = True
                need = amount - lease.left
                ask = self._slice(lease, limit, need, now)
            outcome = self._fill(key_id, kind, limit, lease, need, ask, now, take=amount)
            if outcome == "taken":
                return Taken(key_id, kind, lease.bucket, amount, limit, lease.remaining(limit), lease.end)
            if outcome == "refused":
                with self._lock:
                    raise self._refused(kind, limit, amount, lease, now)
            # "short": smaller calls used the lease meanwhile; what was granted stays in it: look again

    def give_back(self, taken: Taken, amount: int) -> None:
        """Return `amount` of what `taken` took, unused: to the lease while its window lasts (beyond one slice
        held, to the table, off the request path); nothing once the window has ended."""
        if amount <= 0:
            return
        with self._lock:
            lease = self._leases.get((taken.key_id, taken.kind))
            if lease is None or lease.bucket != taken.bucket:
                return
            lease.left += amount
            lease.used = max(lease.used - amount, 0)
            excess = lease.left - max(lease.size, 1)
            if excess <= 0:
                return
            lease.left -= excess
        self._submit(self._return, taken.key_id, lease, excess)

    def _submit(self, *call: object) -> None:
        if self._background is None:
            with self._lock:
                if self._background is None:
                    self._background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rate-leases")
        self._background.submit(*call)  # type: ignore[arg-type]

    # -- inside ----------------------------------------------------------------------------------------------
    def _local(self, key_id: str, kind: Kind, limit: int, amount: int, now: float) -> Taken | None:
        length = _LENGTH[kind]
        start = int(now // length) * length
        name = bucket(kind, start)
        lease = self._leases.get((key_id, kind))
        if lease is None or lease.bucket != name:
            if lease is None and len(self._leases) >= _MAX_LEASES:
                for old in list(self._leases)[: _MAX_LEASES // 10]:  # dicts keep insertion order
                    del self._leases[old]
            lease = self._leases[(key_id, kind)] = _Lease(name, start + length,
                                                          rate=lease.rate if lease is not None else 0.0)
        if limit < lease.limit:  # lowered since the lease was sized: what it holds may be past the new limit;
            lease.left = 0  # left unused (counted as granted in the table), so the table decides from here
            lease.refused_room = None
        lease.limit = limit
        if lease.left >= amount:
            lease.left -= amount
            lease.used += amount
            if self.prefetch and lease.size >= 4 and lease.left * 4 <= lease.size and not lease.granting \
                    and lease.refused_room is None:
                lease.granting = True  # a request that runs short meanwhile waits for this grant
                self._submit(self._prefetch, key_id, kind, limit, lease)
            return Taken(key_id, kind, name, amount, limit, lease.remaining(limit), lease.end)
        if amount > limit or (lease.refused_room is not None and now < lease.recheck_at
                              and amount - lease.left > lease.refused_room):
            raise self._refused(kind, limit, amount, lease, now)
        return None

    def _refused(self, kind: Kind, limit: int, amount: int, lease: _Lease, now: float) -> KeyRateLimitedError:
        """The 429, counted by limit for /metrics (under the lock)."""
        self.refused[kind] = self.refused.get(kind, 0) + 1
        return refusal(kind, limit, amount, lease.remaining(limit), lease.end, now)

    def _prefetch(self, key_id: str, kind: Kind, limit: int, lease: _Lease) -> None:
        """The lease's next slice, asked for before it runs out (in a background thread)."""
        with self._lock:
            now = self.clock()
            ask = self._slice(lease, limit, 1, now)
        try:
            self._fill(key_id, kind, limit, lease, 1, ask, now)
        except Exception:  # noqa: BLE001 — the request that runs short asks again, and sees the error
            pass

    def _fill(self, key_id: str, kind: Kind, limit: int, lease: _Lease, need: int, ask: int, now: float, *,
              take: int = 0) -> Literal["taken", "refused", "short"]:
        """Grant the lease `ask` (at least `need`) from the table, its `granting` set by the caller, and take
        `take` of it in the same step: "taken"; "refused" (remembered until the recheck); or "short" (granted,
        but concurrent calls used the lease meanwhile, so `take` no longer fits)."""
        granted: tuple[int, int] | None = None
        try:
            granted = self._grant(key_id, lease, limit, need, ask, kind)
        finally:
            with self._lock:  # one step with the notify: a woken waiter sees the grant applied
                lease.granting = False
                self._granted.notify_all()
                if granted is not None:
                    outcome = self._apply(lease, limit, need, now, take, *granted)
        return outcome

    def _apply(self, lease: _Lease, limit: int, need: int, now: float, take: int, got: int,
               seen: int) -> Literal["taken", "refused", "short"]:
        lease.seen = max(lease.seen, seen)
        if got < need:
            lease.refused_room, lease.recheck_at = max(limit - seen, 0), min(now + self.recheck, lease.end)
            return "refused"
        lease.refused_room = None
        if lease.granted_at is not None and now > lease.granted_at:
            lease.rate = (lease.used + need) / (now - lease.granted_at)
        lease.left += got
        lease.size, lease.granted_at, lease.used = got, now, 0
        if lease.left < take:
            return "short"
        lease.left -= take
        lease.used = take
        return "taken"

    def _slice(self, lease: _Lease, limit: int, need: int, now: float) -> int:
        """What the next grant asks for: about `horizon` seconds of this process's use, at most 1/`share` of
        the window's room as last seen, never less than the call needs nor more than the limit."""
        rate = lease.rate
        if lease.granted_at is not None and now > lease.granted_at:
            rate = (lease.used + need) / (now - lease.granted_at)
        room = max(limit - lease.seen, 0)
        return min(max(need, min(math.ceil(rate * self.horizon), math.ceil(room / self.share))), limit)

    def _grant(self, key_id: str, lease: _Lease, limit: int, need: int, ask: int, kind: Kind) -> tuple[int, int]:
        """Lease `ask` units (or, when fewer are left, what is left if it covers `need`) from the table: what was
        granted (0: refused) and the window's `granted` as last read."""
        key = {"pk": rate_key(key_id), "period": lease.bucket}
        seen = lease.seen
        for _ in range(_ATTEMPTS):
            try:
                row = self.table.update(key, "SET expires_at = if_not_exists(expires_at, :e) ADD granted :a",
                                        condition="attribute_not_exists(granted) OR granted <= :most",
                                        values={":a": ask, ":most": limit - ask,
                                                ":e": int(lease.end) + _KEEP[kind]}, old_on_failure=True)
                return ask, int(row["granted"])
            except ConditionFailedError as e:
                seen = int((e.item or {}).get("granted", 0))
                if limit - seen < need:
                    return 0, seen
                ask = limit - seen  # less than a slice is left: take what is left
        return 0, seen  # others kept taking what was left: as good as spent

    def _return(self, key_id: str, lease: _Lease, amount: int) -> None:
        """Give `amount` unused units back to the window's row (in the returns thread)."""
        try:
            row = self.table.update({"pk": rate_key(key_id), "period": lease.bucket}, "ADD granted :m",
                                    condition="granted >= :a", values={":m": -amount, ":a": amount})
        except Exception:  # noqa: BLE001 — a unit not returned is only stranded until the window ends
            return
        with self._lock:
            lease.seen = int(row["granted"])


def refusal(kind: Kind, limit: int, amount: int, remaining: int, reset: float, now: float) -> KeyRateLimitedError:
    """The 429 for a spent window: Retry-After to its end, X-RateLimit-Reset in epoch milliseconds (OpenRouter's
    convention)."""
    wait = max(math.ceil(reset - now), 1)
    if amount > limit:
        message = (f"This call could use up to {amount} tokens, more than this key's limit of {limit} "
                   f"{_WHAT[kind]}: lower max_tokens or the prompt")
    else:
        message = (f"This key's rate limit of {limit} {_WHAT[kind]} is reached"
                   + (f" (this call needs {amount} tokens, {remaining} are left)" if kind == "tpm" else "")
                   + f"; try again in {wait} s")
    error = KeyRateLimitedError(message, metadata={
        "reason": kind, "limit": limit, "remaining": remaining, "reset": int(reset * 1000), "retry_after": wait,
        **({"requested": amount} if kind == "tpm" else {})})
    error.headers = {"Retry-After": str(wait), **headers_of(limit, remaining, reset)}
    return error


def headers(taken: Taken) -> dict[str, str]:
    return headers_of(taken.limit, taken.remaining, taken.reset)


def headers_of(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset * 1000))}
