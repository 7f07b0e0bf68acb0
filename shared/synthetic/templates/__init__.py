"""The built-in job templates: legal contract clauses, medical consultation dialogues, financial risk-control
scripts. Each is a runnable spec on the sim models (no network), with samplers for diversity, a structured
output and a judge column with a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.errors import NotFoundError

DIR = Path(__file__).parent
ALIASES = {"legal-contract-clauses": "legal-clauses", "medical-consultation-dialogues": "medical-dialogues",
           "financial-risk-control-scripts": "financial-risk-scripts"}


def names() -> list[str]:
    return sorted(p.stem for p in DIR.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    """A template's spec as data (a fresh copy: callers may change it)."""
    name = ALIASES.get(name, name)
    if name not in names():
        raise NotFoundError(f"No template {name[:64]!r}", metadata={"templates": names()})
    return yaml.safe_load((DIR / f"{name}.yaml").read_text())
