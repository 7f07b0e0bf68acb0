"""Progress bars on stderr for the long commands, through tqdm when it is installed (the `progress` extra:
`pip install ./sdk[progress]`); without it the commands run silently. `enabled`: None shows bars when stderr is a
terminal (the CLI's default), True always (`--progress`), False never (`--no-progress`)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator


class _Silent:
    total: int | None = None

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass


@contextmanager
def bar(total: int | None, desc: str, enabled: bool | None = None) -> Iterator[Any]:
    try:
        from tqdm import tqdm
    except ImportError:
        enabled = False
    if enabled is False:
        yield _Silent()
        return
    with tqdm(total=total, desc=desc, leave=enabled is True, disable=None if enabled is None else False,
              file=sys.stderr) as progress:
        yield progress
