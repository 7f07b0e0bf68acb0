"""The key format: `sk-sy-v1-<key id>-<secret><checksum>`.

- a recognisable prefix (`sk-sy-v1-` inference, `sk-sy-mgmt-v1-` management) so secret scanners find leaks;
- a 12-hex public key id, the lookup handle (the `hash` of the keys API);
- a 32-character base62 secret (~190 bits) from `secrets`;
- a 6-character base62 CRC32 of everything before it, so a typo is rejected without a lookup.
Only HMAC-SHA256(pepper, secret) is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Literal

KeyKind = Literal["inference", "management"]
PREFIX: dict[KeyKind, str] = {"inference": "sk-sy-v1-", "management": "sk-sy-mgmt-v1-"}
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(r"^(sk-sy-(?:mgmt-)?v1-)([0-9a-f]{12})-([0-9A-Za-z]{32})([0-9A-Za-z]{6})$")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    kind: KeyKind
    key_id: str
    secret: str


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), 6)


def new_key(kind: KeyKind = "inference", *, key_id: str | None = None) -> tuple[str, ParsedKey]:
    """A fresh key: the full token (show it once) and its parts (`key_id`: a new secret for that key)."""
    key_id = key_id or secrets.token_hex(6)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    body = f"{PREFIX[kind]}{key_id}-{secret}"
    return body + _checksum(body), ParsedKey(kind, key_id, secret)


def derived_key(pepper: bytes, purpose: str) -> tuple[str, ParsedKey]:
    """An inference key computed from the pepper and a purpose (e.g. a synthetic job's id), not drawn at random:
    whatever holds the pepper (every function of the stack) can make it again, so the key itself is never
    stored or passed on. Its record is made and disabled like any key's."""
    digest = hmac.new(pepper, f"derived-key|{purpose}".encode(), hashlib.sha256).digest()
    key_id = digest[:6].hex()
    secret = _base62(int.from_bytes(digest[6:], "big"), 32)
    body = f"{PREFIX['inference']}{key_id}-{secret}"
    return body + _checksum(body), ParsedKey("inference", key_id, secret)


def parse_key(token: str) -> ParsedKey | None:
    """The parts of a well-formed key with a valid checksum, else None (no lookup needed to reject it)."""
    m = _TOKEN.match(token)
    if m is None:
        return None
    prefix, key_id, secret, check = m.groups()
    if not hmac.compare_digest(_checksum(f"{prefix}{key_id}-{secret}"), check):
        return None
    return ParsedKey("management" if "mgmt" in prefix else "inference", key_id, secret)


def secret_hash(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def label(token: str) -> str:
    """A display form that identifies a key without revealing it: `sk-sy-v1-3fa…x9Q`."""
    prefix = _TOKEN.match(token).group(1)  # type: ignore[union-attr]
    return f"{prefix}{token[len(prefix):len(prefix) + 3]}…{token[-3:]}"
