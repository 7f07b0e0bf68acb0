"""Who is calling and from where: everything a call's usage record needs besides the answer."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any


def new_request_id() -> str:
    """Unique and time-ordered. From os.urandom, not a seeded PRNG: a Lambda SnapStart snapshot would give
    every restored instance the same PRNG state (and the same ids)."""
    return f"gen-{int(time.time()):x}{os.urandom(10).hex()}"


@dataclass(slots=True)
class CallContext:
    key_id: str
    key_tags: tuple[str, ...] = ()
    request_id: str = field(default_factory=new_request_id)
    app_title: str | None = None
    app_referer: str | None = None
    categories: tuple[str, ...] = ()  # X-OpenRouter-Categories
    client_ip: str | None = None
    user_agent: str | None = None
    limit: float | None = None  # the key's spend limit (USD); None: unlimited, and no hold is made
    usage: float = 0.0  # the key's spend the limit applies to, as last read
    limit_period: str = "total"  # the counter row the limit applies to (shared/keys/counters.py)
    allowed_models: tuple[str, ...] | None = None  # the key's model allowlist (shared/keys/restrictions.py)
    residency: tuple[str, ...] | None = None  # regions the call may be served from
    zero_log: bool = False  # the usage record keeps no IP, user agent, app or fingerprint
    prompt_bounds: dict[str, int] | None = None  # a limited key's prompt bound per tokenizer, computed once each
    tpm: int | None = None  # the key's tokens-per-minute limit (shared/keys/rates.py); None: not counted
    tokens_taken: list[Any] | None = None  # what the call took of its tpm windows (rates.Taken), settled at its end
    transforms: list[dict] | None = None  # what middle-out did to the prompt for the candidate tried last
    rate_headers: dict[str, str] | None = None  # X-RateLimit-* of a key with rpm/rpd, for the answer
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)

    @property
    def app(self) -> str | None:
        return self.app_title or self.app_referer

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)
