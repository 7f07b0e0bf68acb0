"""Token counts for answers whose upstream sent no usage: tiktoken for OpenAI-family models, an estimate otherwise.

tiktoken downloads its encoding files on first use, which fails offline, in CI and in a locked-down Lambda. The
two encodings OpenAI's chat models use (cl100k_base, o200k_base) ship here, xz-compressed (1.7 MB for 5.3 MB);
on first use one is unpacked into tiktoken's cache directory under the name tiktoken looks for, and tiktoken
checks it against its own pinned SHA-256 before use. Which encoding a model uses is tiktoken's own table
(`encoding_name_for_model`). Other models, and any failure, fall back to the estimate of 4 characters a token.

Counts are marked estimated either way: a tokenizer run by us does not see the vendor's system tokens.
Loading an encoding takes 0.14 s (cl100k) to 0.26 s (o200k) once per process, plus its unpacking the first time
on a machine; nothing is loaded at import.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

__all__ = ["count_messages", "count_text", "encoding_for", "estimate"]

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
URLS = {name: f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        for name in ("cl100k_base", "o200k_base")}
# OpenAI's chat format: each message costs its role and content plus 3 tokens; the reply is primed with 3 more.
PER_MESSAGE, PER_NAME, REPLY_PRIMING = 3, 1, 3

_encodings: dict[str, Any] = {}
_lock = threading.Lock()


def estimate(text: str) -> int:
    """The vendor-neutral estimate: 4 characters a token."""
    return (len(text) + 3) // 4


def encoding_for(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI-family model (`openai/gpt-4o`, `gpt-4.1-mini`), or None."""
    from tiktoken.model import encoding_name_for_model

    name = model.rsplit("/", 1)[-1]
    try:
        encoding = encoding_name_for_model(name)
    except KeyError:
        return None
    return encoding if encoding in URLS else None


def _cache_dir() -> Path:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    path = Path(tempfile.gettempdir()) / "switchyard-tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)  # where tiktoken looks (read per call, so set before loading)
    return path


def _load(name: str) -> Any:
    import tiktoken

    target = _cache_dir() / hashlib.sha1(URLS[name].encode()).hexdigest()  # tiktoken's cache key
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(lzma.decompress((HERE / f"{name}.tiktoken.xz").read_bytes()))
        partial.replace(target)
    return tiktoken.get_encoding(name)  # verifies the file against tiktoken's pinned hash


def _encoding(name: str) -> Any | None:
    if name in _encodings:
        return _encodings[name]
    with _lock:
        if name not in _encodings:
            try:
                _encodings[name] = _load(name)
            except Exception as e:  # never fail a call over a count: fall back to the estimate
                log.warning("tiktoken encoding %s unavailable (%s); estimating token counts", name, e)
                _encodings[name] = None
    return _encodings[name]


def count_text(text: str, model: str) -> int:
    encoding = _encoding(name) if (name := encoding_for(model)) else None
    if encoding is None:
        return estimate(text)
    return len(encoding.encode(text, disallowed_special=()))


def count_messages(messages: Iterable[tuple[str, str, str | None]], model: str) -> int:
    """Prompt tokens of (role, text, name) messages, in OpenAI's chat format for its models."""
    encoding = _encoding(name) if (name := encoding_for(model)) else None
    if encoding is None:
        return sum(estimate(text) for _, text, _ in messages)
    total = REPLY_PRIMING
    for role, text, who in messages:
        total += PER_MESSAGE + len(encoding.encode(role, disallowed_special=())) \
            + len(encoding.encode(text, disallowed_special=()))
        if who:
            total += PER_NAME + len(encoding.encode(who, disallowed_special=()))
    return total
