"""The README's `switchyard --help` is the real one (at COLUMNS=100), so the tour cannot go stale."""

import re

from tests.conftest import ROOT


def test_the_readme_pastes_the_real_help(monkeypatch):
    from switchyard_client.cli import parser

    monkeypatch.setenv("COLUMNS", "100")
    block = re.search(r"<!-- switchyard --help [^\n]*-->\n```text\n(.*?)\n```\n<!-- /switchyard --help -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block, "the README's marked `switchyard --help` block is missing"
    assert block.group(1) == parser().format_help().rstrip(), "paste the output of `COLUMNS=100 switchyard --help`"
