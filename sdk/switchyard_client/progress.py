"""Progress bars on stderr for the long commands, through tqdm when it is installed (the `progress` extra:
`pip install ./sdk[progress]`); without it, or when stderr is not a terminal, the commands run silently."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class _Silent:
    total: int | None = None

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


@contextmanager
def bar(total: int | None, desc: str) -> Iterator[Any]:
    try:
        from tqdm import tqdm
    except ImportError:
        yield _Silent()
        return
    with tqdm(total=total, desc=desc, unit="", leave=False, disable=None) as progress:  # None: off unless a TTY
        yield progress
