"""What each catalog model's terms say about using its outputs: a small curated table, with sources.

`licenses.yaml` (next to this file) holds the table: `policy_version`, then `licenses:`, entries whose `match`
globs (fnmatch, case-sensitive) are tried in order against catalog model ids; the first entry that matches wins,
so specific entries come before general ones. A model that no entry matches has no license entry, and the
synthetic-data license gate (shared/synthetic/licensing.py) refuses it.

Operators add entries of their own with a `licenses:` list (same shape) in the SWITCHYARD_CONFIG catalog file;
they are tried before the built-in table, so an operator can cover a model the table leaves out or record a
separate agreement with a lab. The catalog API (shared/catalog/store.py) does not carry licenses.

The table is loaded once per process (on first use, never at import: Lambda SnapStart snapshots the import).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["LICENSES", "LicenseTable", "LicenseTableError", "ModelLicense", "POLICY_VERSION", "license_for",
           "load_table", "operator_licenses"]

LICENSES = Path(__file__).with_name("licenses.yaml")
_OWN = "LicenseRef-switchyard-"  # our own terms (the sim models): their source is a file of this repository


class LicenseTableError(ValueError):
    """The license table (or an operator's `licenses:` list) is unreadable or invalid."""


def _https(value: str) -> str:
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        raise ValueError("a source may not contain whitespace or control characters")
    return value


Source = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_https)]
# An SPDX license expression of ids and LicenseRefs joined by AND / OR (no parentheses): "MIT",
# "LicenseRef-Gemma", "MIT AND LicenseRef-Llama-3.3-Community-License"
Spdx = Annotated[str, Field(pattern=r"^[A-Za-z0-9.+-]+( (AND|OR) [A-Za-z0-9.+-]+)*$", max_length=256)]
Glob = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:*?/\[\]-]+$")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class ModelLicense(BaseModel):
    """The license (or terms of use) that governs a model's outputs, and what it allows us to do with them.

    `commercial_use`: outputs may be used commercially. `train_other_models`: outputs may be used to create, train,
    fine-tune, distil or otherwise improve other models (the purpose of synthetic data here). When either is false,
    the matching `*_restriction` says, in words, what the terms forbid: that sentence becomes the gate's reason.
    `obligations`: what using the outputs commits the user to (naming, attribution, inherited terms...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: Annotated[tuple[Glob, ...], Field(min_length=1)]
    license: Text  # the SPDX id where one exists, else the license's name ("Llama 3.1 Community License")
    spdx: Spdx  # the SPDX id, or a LicenseRef-... for licenses SPDX does not list
    commercial_use: bool
    train_other_models: bool
    commercial_restriction: Text | None = None
    train_restriction: Text | None = None
    obligations: tuple[Text, ...] = ()
    source: Source  # https URL of the license / terms text (our own terms: a file of this repository)
    notes: str | None = None  # what could not be confirmed, dates read, caveats

    @model_validator(mode="after")
    def _coherent(self) -> "ModelLicense":
        if self.spdx.startswith(_OWN):
            if self.source.startswith(("http://", "https://")) or ".." in self.source or self.source.startswith("/"):
                raise ValueError(f"{self.spdx}: our own terms name a file of this repository as source")
        elif not self.source.startswith("https://"):
            raise ValueError(f"{self.license}: source must be an https URL, not {self.source!r}")
        if not self.commercial_use and not self.commercial_restriction:
            raise ValueError(f"{self.license}: commercial_use is false, so commercial_restriction must say why")
        if not self.train_other_models and not self.train_restriction:
            raise ValueError(f"{self.license}: train_other_models is false, so train_restriction must say why")
        return self

    def matches(self, model_id: str) -> bool:
        return any(fnmatch.fnmatchcase(model_id, glob) for glob in self.match)


class LicenseTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    licenses: tuple[ModelLicense, ...]

    def license_for(self, model_id: str, extra: Iterable[ModelLicense] = ()) -> ModelLicense | None:
        return _first(model_id, (*extra, *self.licenses))


def _first(model_id: str, entries: Sequence[ModelLicense]) -> ModelLicense | None:
    """The first entry matching the id, else (for a variant such as `…:free`) the first matching its base id."""
    candidates = [model_id]
    if ":" in model_id.partition("/")[2]:
        candidates.append(model_id.rpartition(":")[0])
    for candidate in candidates:
        for entry in entries:
            if entry.matches(candidate):
                return entry
    return None


@lru_cache(maxsize=4)
def load_table(path: Path = LICENSES) -> LicenseTable:
    """The curated table (validated; read once per process and path)."""
    try:
        return LicenseTable.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise LicenseTableError(f"license table {path}: {e}") from e


@lru_cache(maxsize=4)
def _operator_licenses(config: Path | None) -> tuple[ModelLicense, ...]:
    if config is None:
        return ()
    from shared.catalog import CatalogError, _read  # here, not at import: the package imports the schema

    try:
        return tuple(_read(config).licenses)
    except CatalogError as e:
        raise LicenseTableError(str(e)) from e


def operator_licenses(config: Path | None = None) -> tuple[ModelLicense, ...]:
    """The `licenses:` entries of the operator's catalog file (SWITCHYARD_CONFIG unless `config` is given)."""
    if config is None:
        from shared.config import get_settings

        config = get_settings().config
    return _operator_licenses(config)


def license_for(model_id: str, extra: Iterable[ModelLicense] | None = None) -> ModelLicense | None:
    """The entry governing a catalog model id: `extra` entries first (by default the operator's, from
    SWITCHYARD_CONFIG), then the built-in table; None when nothing matches (the gate refuses such a model)."""
    return load_table().license_for(model_id, operator_licenses() if extra is None else extra)


def __getattr__(name: str) -> str:  # POLICY_VERSION, read from the table on first use (PEP 562)
    if name == "POLICY_VERSION":
        return load_table().policy_version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
