"""Secrets: the key pepper and vendor API keys. Env or a local file on a laptop; Secrets Manager on AWS,
read through Powertools parameters (cached for `max_age` seconds)."""

from __future__ import annotations

import os
import secrets as _random
from functools import lru_cache
from pathlib import Path

from shared.config import get_settings
from shared.errors import StorageError

_MAX_AGE = 300


def _secret_value(secret_id: str) -> str:
    from aws_lambda_powertools.utilities import parameters  # imported on first use: not on the local path

    try:
        return parameters.get_secret(secret_id, max_age=_MAX_AGE)
    except parameters.exceptions.GetParameterError as e:
        raise StorageError("A configured secret could not be read", metadata={"secret": secret_id}) from e


@lru_cache(maxsize=1)
def pepper() -> bytes:
    """The server-side pepper for key HMACs: SWITCHYARD_PEPPER, or the Secrets Manager secret it names."""
    s = get_settings()
    if s.pepper:
        return s.pepper.encode()
    if s.pepper_secret_id:
        return _secret_value(s.pepper_secret_id).encode()
    raise StorageError("No key pepper is configured (set SWITCHYARD_PEPPER or PEPPER_SECRET_ID)")


def local_pepper(state_dir: Path) -> str:
    """The local stack's pepper, generated once and kept under .switchyard/ (mode 0600)."""
    path = state_dir / "pepper"
    if not path.exists():
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:  # never 0644
            f.write(_random.token_urlsafe(32))
    return path.read_text().strip()


def vendor_key(api_key_env: str | None, api_key_secret: str | None) -> str | None:
    """A provider's API key: the env var first (local, or set on the function), then Secrets Manager."""
    if api_key_env and os.environ.get(api_key_env):
        return os.environ[api_key_env]
    if api_key_secret:
        return _secret_value(api_key_secret)
    return None
