"""A salted fingerprint of a call's prompt, recorded at metering time so that repeated identical prompts can
be recognised (rankings' anti-gaming) without the prompt ever being stored.

HMAC-SHA256 under a key derived from the pepper, of the messages' roles and texts (names and images left
out), truncated to 128 bits. Equal prompts give equal fingerprints; without the pepper a fingerprint cannot be
checked against a guessed prompt. The key is derived on first use, never at import (the pepper may be a
Secrets Manager read)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Iterable

_LABEL = b"switchyard usage: prompt fingerprint v1"


class PromptFingerprint:
    def __init__(self, pepper: Callable[[], bytes]) -> None:
        self._pepper = pepper
        self._key: bytes | None = None

    def of_texts(self, parts: Iterable[tuple[str, str]]) -> str:
        if self._key is None:
            self._key = hmac.new(self._pepper(), _LABEL, hashlib.sha256).digest()
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for role, text in parts:
            mac.update(role.encode())
            mac.update(b"\x1f")
            mac.update(text.encode("utf-8", "surrogatepass"))
            mac.update(b"\x1e")
        return mac.hexdigest()[:32]

    def __call__(self, request: Any) -> str | None:
        messages = getattr(request, "messages", None)
        if not messages:
            return None
        return self.of_texts((m.role, m.text()) for m in messages)
