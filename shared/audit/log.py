"""The audit log in DynamoDB (`AuditLog`): append an entry, page through entries, export them, verify the chain.

Layout (template.yaml `AuditTable`, no TTL: entries are kept):

    pk = "log",  seq = n    one entry: body (its canonical JSON), hash, and copies of at/action/actor_id/target
    pk = "head", seq = 0    last_seq, hash and at of the newest entry

One partition holds the log, in sequence order, so that newest first is one Query and the chain is read in
order. Management actions are a few a second at most, far below a partition's 1,000 writes a second.

An append is one TransactWriteItems: the entry put if its number is free, and the head put on the condition that
it still names the entry before. Two appenders that read the same head cannot both win: the loser re-reads the
head and seals its entry again on top of the winner's (jittered backoff), so the chain holds across processes.
Times are ISO 8601 UTC to the millisecond and never go backwards along the chain (an entry's time is at least
the head's), so a time range is a contiguous run of sequence numbers and a newest-first read can stop early.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

from shared.audit import chain
from shared.aws.codec import item as to_item
from shared.aws.dynamodb import Table, TransactionConflictError
from shared.aws.dynamodb_json import transact_write
from shared.errors import StorageError

LOG, HEAD = "log", "head"
MAX_BODY = 300_000  # bytes of canonical JSON; DynamoDB's items stop at 400 KB (before/after are digested above it)
SECRET_FIELDS = frozenset(("secret", "secret_hash", "previous_secret_hash", "token", "api_key", "password",
                           "authorization", "x-api-key", "api-key", "access_token", "client_secret"))
REDACTED = "[redacted]"
PAGE = 200  # entries read a DynamoDB round trip


class Actor(Protocol):
    """Who acted: a management key (shared/keys/store.py ApiKey), by its public id and label only."""

    key_id: str
    label: str
    name: str


def now_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def public(value: Any, name: str = "") -> Any:
    """`value` without anything that could hold a secret, whatever a caller passed: fields named like one are
    dropped, header maps keep their names only (`Authorization: [redacted]`), and URLs their query values."""
    if isinstance(value, dict):
        if name.endswith("headers"):
            return {k: REDACTED for k in value}
        return {k: public(v, str(k).lower()) for k, v in value.items() if str(k).lower() not in SECRET_FIELDS}
    if isinstance(value, (list, tuple)):
        return [public(v, name) for v in value]
    if isinstance(value, str) and "://" in value and ("?" in value or "@" in value):
        return _bare_url(value)
    return value


def _bare_url(url: str) -> str:
    """A URL without credentials in it: `user:pass@` and every query value redacted."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        query = "&".join(f"{k}={REDACTED}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
        return urlunsplit((parts.scheme, host if "@" not in parts.netloc else f"{REDACTED}@{host}", parts.path,
                           query, ""))
    except ValueError:
        return REDACTED


def _head_time(at: Any, now: float) -> str:
    """The head's time, which the next entry's may not precede; one that is not a time, or is more than a
    hour ahead of the clock (an edited head row: verify says so), is not carried forward."""
    if not isinstance(at, str) or len(at) != 24 or at > now_iso(now + 3600):
        return ""
    return at


def _omitted(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return {"omitted": "too large to keep", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of a read: a time range (ISO 8601 UTC, both ends inclusive), an action (exact, or a prefix
    ending in `.*` such as `key.*`), an actor's key id and a target."""

    start: str | None = None
    end: str | None = None
    action: str | None = None
    actor: str | None = None
    target: str | None = None

    def matches(self, item: dict[str, Any]) -> bool:
        at = str(item.get("at", ""))  # str(): an edited row is still compared, never a TypeError
        if (self.start and at < self.start) or (self.end and at > self.end):
            return False
        if self.action:
            action = str(item.get("action", ""))
            if self.action.endswith(".*"):
                if not action.startswith(self.action[:-1]):
                    return False
            elif action != self.action:
                return False
        if self.actor and item.get("actor_id") != self.actor:
            return False
        return not (self.target and item.get("target") != self.target)


def entry(item: dict[str, Any]) -> dict[str, Any]:
    """A stored entry in the API's shape: its body's fields, with its hash. A row whose body is no longer an
    entry (edited in the table) is shown as what it is, `unreadable`, with what the row still says: a read
    never fails on it, and `verify` names it."""
    try:
        fields = orjson.loads(item["body"])
        if not isinstance(fields, dict) or "prev" not in fields:
            raise ValueError("not an entry")
    except (KeyError, TypeError, ValueError):
        return {"seq": chain.as_seq(item.get("seq")), "at": str(item.get("at", "")), "unreadable": True,
                "hash": str(item.get("hash", "")), "prev_hash": None}
    prev = fields.pop("prev")
    return {**fields, "hash": str(item.get("hash", "")), "prev_hash": prev}


class AuditLog:
    """Management actions, appended to a hash chain in the audit table."""

    def __init__(self, table: str, pepper: Callable[[], bytes], *, clock: Callable[[], float] = time.time,
                 attempts: int = 30) -> None:
        self.table = Table(table)
        self.pepper = pepper  # read when first needed (Secrets Manager on AWS), never at import
        self.clock = clock
        self.attempts = attempts
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            self._key = chain.chain_key(self.pepper())
        return self._key

    # -- writing -------------------------------------------------------------------------------------
    def append(self, *, action: str, actor: Actor, target: str, before: dict[str, Any] | None = None,
               after: dict[str, Any] | None = None, source_ip: str | None = None,
               request_id: str | None = None) -> dict[str, Any]:
        """Add one entry at the end of the chain; returns it as the API shows it. Before and after are the
        public shapes (e.g. `ApiKey.to_api()`); fields that could hold secrets are dropped whatever is passed."""
        fields: dict[str, Any] = {
            "action": action, "actor": {"id": actor.key_id, "label": actor.label, "name": actor.name},
            "target": target, "before": public(before), "after": public(after), "source_ip": source_ip,
            "request_id": request_id}
        if len(chain.canonical(fields)) > MAX_BODY:
            fields["before"], fields["after"] = _omitted(fields["before"]), _omitted(fields["after"])
        for attempt in range(self.attempts):
            head = self.head() or {}
            prev_seq = chain.as_seq(head.get("last_seq", 0))
            if prev_seq < 0:
                raise StorageError("The audit log's head row is not readable (edited?): GET /api/v1/audit/verify",
                                   metadata={"reason": "audit_head_unreadable"})
            now = self.clock()
            sealed = {**fields, "seq": prev_seq + 1, "prev": head.get("hash", chain.GENESIS),
                      "at": max(now_iso(now), _head_time(head.get("at"), now))}
            body = chain.canonical(sealed)
            digest = chain.digest(self.key(), body)
            try:
                transact_write(self._actions(sealed, body, digest, prev_seq))
            except TransactionConflictError as e:
                if any(r not in ("None", "ConditionalCheckFailed", "TransactionConflict") for r in e.reasons):
                    raise StorageError("The audit log could not be written", metadata={"reasons": e.reasons}) from e
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** attempt)))  # another appender won: go again
                continue
            return entry({"body": body, "hash": digest})
        raise StorageError("The audit log is busy: the entry could not be appended; try again",
                           metadata={"reason": "audit_contention"})

    def _actions(self, sealed: dict[str, Any], body: str, digest: str, prev_seq: int) -> list[dict[str, Any]]:
        row = {"pk": LOG, "seq": sealed["seq"], "body": body, "hash": digest, **chain.indexed(sealed)}
        head = {"pk": HEAD, "seq": 0, "last_seq": sealed["seq"], "hash": digest, "at": sealed["at"]}
        head_put: dict[str, Any] = {"TableName": self.table.name, "Item": to_item(head)}
        if prev_seq:
            head_put.update(ConditionExpression="last_seq = :prev",
                            ExpressionAttributeValues=to_item({":prev": prev_seq}))
        else:
            head_put["ConditionExpression"] = "attribute_not_exists(pk)"
        return [{"Put": {"TableName": self.table.name, "Item": to_item(row),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": head_put}]

    # -- reading -------------------------------------------------------------------------------------
    def head(self) -> dict[str, Any] | None:
        return self.table.get({"pk": HEAD, "seq": 0}, consistent=True)

    def items(self, *, newest_first: bool, below: int | None = None, above: int = 0,
              consistent: bool = False) -> Iterator[dict[str, Any]]:
        """Stored entries with `above` < seq < `below`, page by page."""
        condition, values = "pk = :p AND seq > :a", {":p": LOG, ":a": above}
        if below is not None:
            condition, values = "pk = :p AND seq BETWEEN :a AND :b", {":p": LOG, ":a": above + 1, ":b": below - 1}
            if below - 1 < above + 1:
                return
        start = None
        while True:
            found, start = self.table.page(condition, names={}, values=values, forward=not newest_first,
                                           limit=PAGE, start=start, consistent=consistent)
            yield from found
            if start is None:
                return

    def search(self, query: AuditQuery, *, limit: int, cursor: int | None = None,
               max_read: int = 5000) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `limit` matching entries, newest first, below `cursor` (a seq); and the cursor of the next page
        (None: no more). At most `max_read` entries are read a call: a sparse filter may answer fewer than
        `limit` with a cursor to go on from."""
        found: list[dict[str, Any]] = []
        read = 0
        for item in self.items(newest_first=True, below=cursor):
            read += 1
            if query.start and str(item.get("at", "")) < query.start:
                return found, None  # times only fall along the chain: nothing older can match
            if query.matches(item):
                found.append(entry(item))
                if len(found) == limit:
                    return found, chain.as_seq(item["seq"])
            if read >= max_read:
                return found, chain.as_seq(item["seq"])
        return found, None

    def export(self, query: AuditQuery) -> Iterator[dict[str, Any]]:
        """Every matching entry, oldest first."""
        for item in self.items(newest_first=False):
            if query.end and str(item.get("at", "")) > query.end:
                return
            if query.matches(item):
                yield entry(item)

    def verify(self, anchor: tuple[int, str] | None = None) -> chain.Verdict:
        """Walk the chain up to the head (strongly consistent reads); see shared/audit/chain.py. An entry found
        past the head is one appended meanwhile when a second read of the head covers it, else a forgery."""
        head = self.head()
        last = max(chain.as_seq(head.get("last_seq")), 0) if head else 0
        verdict = chain.verify(self.key(), self.items(newest_first=False, below=last + 1, consistent=True),
                               head, anchor)
        beyond = next(self.items(newest_first=False, above=last, consistent=True), None)
        if verdict.valid and beyond is not None:
            now = self.head()
            if now is None or chain.as_seq(now.get("last_seq")) < chain.as_seq(beyond.get("seq")):
                return chain.Verdict(False, verdict.entries, chain.as_seq(beyond.get("seq")), "head_mismatch",
                                     verdict.head)
        return verdict
