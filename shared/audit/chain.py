"""The audit log's hash chain: pure functions over stored entries (no AWS).

Each entry is kept as its canonical JSON (`body`: sorted keys, no spaces, UTF-8), which names the entry's own
sequence number and the previous entry's hash; its hash is an HMAC of that body under a key derived from the
pepper, so that someone who can write the table but not read the pepper cannot forge an entry or re-link the
chain around one they removed:

    K      = HMAC-SHA256(pepper, "audit-chain")
    body_n = canonical({"seq": n, "prev": hash_{n-1}, "at", "action", "actor", "target", ...})   hash_0 = GENESIS
    hash_n = HMAC-SHA256(K, body_n)
    head   = {"last_seq": n, "hash": hash_n}   (one row, moved in the same transaction as each append)

`verify` walks the entries in sequence order and names the first that does not hold:

    problem        first_invalid      what was done to the table
    edited         n                  entry n's body, hash or an indexed copy of a field changed
    missing        n                  entry n removed (the next one's number skips it)
    broken_link    n                  entry n does not name n-1's hash (entries swapped, or one re-sealed elsewhere)
    tail_removed   last + 1           the head names entries past the last one found
    head_mismatch  head or last       the head's hash is not the last entry's, or the head is gone / behind
    anchor         the anchor's seq   an entry recorded earlier (`anchor`: seq and hash) has another hash now

A tail removed together with the head rolled back to a copy taken earlier is invisible from inside the table;
an anchor (a head recorded elsewhere, e.g. the `head` of an earlier verify) detects it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

GENESIS = "0" * 64
INDEXED = ("at", "action", "actor_id", "target")  # copied out of the body for queries; checked against it


def chain_key(pepper: bytes) -> bytes:
    """The chain's own key: the pepper itself never signs anything but key hashes."""
    return hmac.new(pepper, b"audit-chain", hashlib.sha256).digest()


def canonical(fields: dict[str, Any]) -> str:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


def digest(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def indexed(fields: dict[str, Any]) -> dict[str, Any]:
    """The copies of a body's fields that queries filter on."""
    return {"at": fields["at"], "action": fields["action"], "actor_id": (fields.get("actor") or {}).get("id"),
            "target": fields.get("target")}


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    entries: int  # how many entries were read
    first_invalid: int | None
    problem: str | None
    head: dict[str, Any] | None  # {"seq", "hash"} as the head row has it

    def to_api(self) -> dict[str, Any]:
        return {"valid": self.valid, "entries": self.entries, "first_invalid": self.first_invalid,
                "problem": self.problem, "head": self.head}


def verify(key: bytes, items: Iterable[dict[str, Any]], head: dict[str, Any] | None,
           anchor: tuple[int, str] | None = None) -> Verdict:
    """Check stored entries (`items`, ascending by seq) and the head row against the chain (see the table above)."""
    expected, prev, count, last_at = 1, GENESIS, 0, None
    first: tuple[int, str] | None = None
    anchor_seen = False
    for item in items:
        count += 1
        if first is not None:
            continue  # counted, no longer checked: the chain is broken already
        first = _check(key, item, expected, prev)
        seq = as_seq(item.get("seq"))
        if anchor and first is None and seq == anchor[0]:
            anchor_seen = True
            if item.get("hash") != anchor[1]:
                first = (seq, "anchor")
        expected, prev, last_at = seq + 1, str(item.get("hash")), item.get("at")
    last = expected - 1
    shown = {"seq": as_seq(head.get("last_seq")), "hash": head.get("hash")} if head else None
    if first is None:
        first = _check_head(shown, last, prev)
    if first is None and head and last and head.get("at") != last_at:  # the time the next entry starts from
        first = (last, "head_mismatch")
    if first is None and anchor and not anchor_seen:
        first = (anchor[0], "anchor") if anchor[0] > last else None
    if first is None:
        return Verdict(True, count, None, None, shown)
    return Verdict(False, count, first[0], first[1], shown)


def as_seq(value: Any) -> int:
    """A stored sequence number, or -1 for anything that is not one (an edited row must not stop a read)."""
    try:
        return int(value) if not isinstance(value, bool) and float(value) == int(value) else -1
    except (TypeError, ValueError, OverflowError):
        return -1


def _check(key: bytes, item: dict[str, Any], expected: int, prev: str) -> tuple[int, str] | None:
    seq = as_seq(item.get("seq"))
    if seq != expected:
        return expected, "missing"
    body = item.get("body")
    if not isinstance(body, str) or not hmac.compare_digest(digest(key, body), str(item.get("hash"))):
        return seq, "edited"
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        return seq, "edited"
    if not isinstance(fields, dict):
        return seq, "edited"
    if fields.get("seq") != seq:
        return seq, "broken_link"  # a sealed body moved to another place in the chain
    if fields.get("prev") != prev:
        return seq, "broken_link"
    copies = indexed(fields)
    if any(item.get(name) != copies[name] for name in INDEXED):
        return seq, "edited"
    return None


def _check_head(head: dict[str, Any] | None, last: int, last_hash: str) -> tuple[int, str] | None:
    if head is None:
        return (1, "head_mismatch") if last else None
    if head["seq"] < 0:
        return max(last, 1), "head_mismatch"
    if head["seq"] > last:
        return last + 1, "tail_removed"
    if head["seq"] < last:
        return head["seq"] + 1, "head_mismatch"
    if last and head.get("hash") != last_hash:
        return last, "head_mismatch"
    return None
