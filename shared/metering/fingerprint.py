"""A salted fingerprint of a call's prompt, recorded at metering time so that repeated identical prompts can
be recognised (rankings' anti-gaming) without the prompt ever being stored.

HMAC-SHA256 under a key derived from the pepper, of the messages' roles and texts (names and images left
out), truncated to 128 bits: `role 0x1f text 0x1e` for each message, in order, UTF-8 (lone surrogates passed
through). Equal prompts give equal fingerprints; without the pepper a fingerprint cannot be checked against a
guessed prompt. The key is derived on first use, never at import (the pepper may be a Secrets Manager read)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Iterable

_LABEL = b"switchyard usage: prompt fingerprint v1"


class PromptFingerprint:
    def __init__(self, pepper: Callable[[], bytes]) -> None:
        self._pepper = pepper
        self._keyed: hmac.HMAC | None = None  # keyed once; each call continues a copy (no re-keying: ~0.4 µs)

    def of_texts(self, parts: Iterable[tuple[str, str]]) -> str:
        if self._keyed is None:
            key = hmac.new(self._pepper(), _LABEL, hashlib.sha256).digest()
            self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        mac = self._keyed.copy()
        mac.update("".join([f"{role}\x1f{text}\x1e" for role, text in parts]).encode("utf-8", "surrogatepass"))
        return mac.hexdigest()[:32]

    def __call__(self, request: Any) -> str | None:
        messages = getattr(request, "messages", None)
        if not messages:
            return None
        return self.of_texts([(m.role, m.text()) for m in messages])
