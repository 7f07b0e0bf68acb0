"""The CLI commands' progress (pipelines/progress.py): every step is reported, whether a bar is drawn or not; a
bar only on a terminal, never with --quiet, always with --progress."""

from __future__ import annotations

import argparse

import pytest

from pipelines import progress
from pipelines.progress import Progress


def test_every_step_is_reported_and_never_backwards():
    seen = []
    with Progress(5, desc="x", show=False, on_update=lambda done, extra: seen.append((done, extra))) as bar:
        bar.advance()
        bar.advance(2, day="2026-12-01")
        bar.to(2)  # a poll that saw less than before moves nothing
        bar.to(5)
    assert seen == [(1, {}), (3, {"day": "2026-12-01"}), (3, {}), (5, {})]
    assert bar.bar is None


def test_no_bar_when_stdout_is_not_a_terminal_unless_forced(capsys):
    assert not Progress(3, desc="x").shown  # pytest's captured stdout is no terminal
    forced = Progress(3, desc="rows", show=True)
    forced.advance(3)
    assert forced.shown and forced.bar.n == 3
    forced.close()
    assert "rows" in capsys.readouterr().err  # drawn on stderr, never on stdout


def test_quiet_and_progress_flags():
    parser = argparse.ArgumentParser()
    progress.add_arguments(parser)
    assert progress.wanted(parser.parse_args([])) is None
    assert progress.wanted(parser.parse_args(["--quiet"])) is False
    assert progress.wanted(parser.parse_args(["-q"])) is False
    assert progress.wanted(parser.parse_args(["--progress"])) is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--quiet", "--progress"])


CATALOG = """
providers: [{id: team-sim, kind: sim}]
models:
  - {id: acme/a, provider: team-sim, context_length: 4096, pricing: {prompt: 0.1, completion: 0.2}, sim: {}}
  - {id: acme/b, provider: team-sim, context_length: 4096, pricing: {prompt: 0.1, completion: 0.2}, sim: {}}
"""


def test_a_catalog_load_reports_each_entry_written(gateway, tmp_path, monkeypatch, capsys):
    import infra.load_catalog as load_catalog

    made = []

    class Watched(Progress):
        def __init__(self, total, **options):
            super().__init__(total, **options)
            self.steps = []
            self.on_update = lambda done, extra: self.steps.append((done, extra.get("entry")))
            made.append(self)

    monkeypatch.setattr(load_catalog, "Progress", Watched)
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    assert load_catalog.main([str(path), "--table", gateway.settings.catalog_table, "--hide", "sim/chat",
                              "--quiet"]) == 0
    (bar,) = made
    assert bar.total == 4 and not bar.shown
    assert bar.steps == [(1, "team-sim"), (2, "acme/a"), (3, "acme/b"), (4, "sim/chat")]
    assert "1 providers, 2 models, 0 routes, 1 hidden" in capsys.readouterr().out
