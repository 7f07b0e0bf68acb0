"""Progress bars of the CLI commands that run flows (rankings, synthetic jobs, catalog loads): tqdm, on stderr.

A bar is drawn only when stdout is a terminal (so `... | jq` and CI logs get none), never with `--quiet`,
always with `--progress`. Whether drawn or not, every step reaches `on_update` (what tests watch: the count,
not the drawing). tqdm is in the `flows` and `local` extras, never in the gateway's runtime.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bars = parser.add_mutually_exclusive_group()
    bars.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    bars.add_argument("--progress", action="store_true", help="a progress bar even when stdout is not a terminal")


def wanted(args: argparse.Namespace) -> bool | None:
    """--quiet: False; --progress: True; neither: None (a bar if stdout is a terminal)."""
    return False if getattr(args, "quiet", False) else True if getattr(args, "progress", False) else None


class Progress:
    """`done` of `total` steps (None: unknown), drawn as a tqdm bar when `show` says so (None: stdout is a TTY)."""

    def __init__(self, total: int | None, *, desc: str, unit: str = "it", show: bool | None = None,
                 on_update: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        self.total, self.done, self.on_update = total, 0, on_update
        self.shown = sys.stdout.isatty() if show is None else show
        self.bar: Any = None
        if self.shown:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)

    def advance(self, n: int = 1, **postfix: Any) -> None:
        self.to(self.done + n, **postfix)

    def to(self, done: int, **postfix: Any) -> None:
        """Set how many steps are done (never backwards), with figures to show beside the bar."""
        step = max(done - self.done, 0)
        self.done += step
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(step)
        if self.on_update is not None:
            self.on_update(self.done, postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
