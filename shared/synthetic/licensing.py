"""The license gate: a synthetic-data job runs only when every model and every seed data set it names is
license-safe for the job's purpose. It runs before the first call and lists every offending item, not the first.

Models: each alias must name a catalog model that has a license entry (shared/catalog/licenses.yaml, plus the
operator's `licenses:` in SWITCHYARD_CONFIG), and that entry must allow the purpose: commercial use of outputs,
and (the default purpose of synthetic data here: fine-tuning and distillation) training other models on them.
The obligations of the models used (naming, attribution, inherited terms) are collected for the dataset card.

Seeds: each must declare a license (from its dataset card or the job), normalised to an SPDX id and found in the
allow list: by default CC0-1.0, CC-BY-4.0, CC-BY-SA-4.0 (allowed, flagged share-alike), Apache-2.0 and MIT.
Anything non-commercial (NC) or no-derivatives (ND) is refused whatever the list says (the output is a derivative,
labelled commercially usable); an unknown or missing license is refused.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.catalog.licenses import LicenseTable, ModelLicense, load_table, operator_licenses

__all__ = ["DEFAULT_ALLOWED", "GateResult", "LicenseRefused", "Problem", "Purpose", "Seed", "SeedLicensePolicy",
           "card_license", "check", "normalize_license"]

DEFAULT_ALLOWED = ("CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "Apache-2.0", "MIT")
SHARE_ALIKE = frozenset({"CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC-BY-SA-2.0", "ODbL-1.0"})
ATTRIBUTION = frozenset({"CC-BY-4.0", "CC-BY-3.0", "CC-BY-2.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC-BY-SA-2.0",
                         "ODC-By-1.0", "ODbL-1.0", "CDLA-Permissive-2.0"})
NOTICE = frozenset({"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause"})  # keep the license/copyright notice

# SPDX ids a seed card commonly names (canonical spelling); anything else is "unknown" unless a policy lists it
KNOWN_SPDX = ("CC0-1.0", "CC-BY-4.0", "CC-BY-3.0", "CC-BY-2.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC-BY-SA-2.0",
              "CC-BY-NC-4.0", "CC-BY-NC-3.0", "CC-BY-NC-SA-4.0", "CC-BY-NC-SA-3.0", "CC-BY-NC-ND-4.0",
              "CC-BY-NC-ND-3.0", "CC-BY-ND-4.0", "CC-BY-ND-3.0", "Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause",
              "ODC-By-1.0", "ODbL-1.0", "PDDL-1.0", "CDLA-Permissive-2.0", "CDLA-Permissive-1.0", "CDLA-Sharing-1.0",
              "Unlicense", "GPL-3.0-only", "GPL-2.0-only", "LGPL-3.0-only", "AGPL-3.0-only", "MPL-2.0", "OpenRAIL")
_CANONICAL = {i.lower(): i for i in KNOWN_SPDX}
# What an allow list may name: licenses that permit commercial use and derived works of the data (with
# attribution or share-alike at most). Copyleft software licenses and use-restricted ones are not among them.
OPEN = frozenset({"CC0-1.0", "CC-BY-4.0", "CC-BY-3.0", "CC-BY-2.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0", "CC-BY-SA-2.0",
                  "Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ODC-By-1.0", "ODbL-1.0", "PDDL-1.0",
                  "CDLA-Permissive-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0", "Unlicense"})
# Hugging Face `license:` ids that are not their SPDX id lowercased
_HF_ALIASES = {"odc-by": "ODC-By-1.0", "odbl": "ODbL-1.0", "pddl": "PDDL-1.0",
               "cdla-permissive-2.0": "CDLA-Permissive-2.0", "gpl-3.0": "GPL-3.0-only", "gpl-2.0": "GPL-2.0-only",
               "lgpl-3.0": "LGPL-3.0-only", "agpl-3.0": "AGPL-3.0-only", "unlicense": "Unlicense",
               "openrail": "OpenRAIL"}
# Spelled-out words → the short forms of SPDX ids; then filler words dropped
_WORDS = ((r"creative\s*commons", "cc"), (r"attribution", "by"), (r"share[\s-]*alike", "sa"),
          (r"non[\s-]*commercial", "nc"), (r"no[\s-]*deriv(ative)?s?", "nd"),
          (r"\b(the|license|licence|version|international|generic|unported)\b", " "))


def normalize_license(text: str | None, extra: Iterable[str] = ()) -> str | None:
    """The SPDX id a declared license means ("cc-by-4.0", "CC BY 4.0", "cc0", "apache 2.0" → CC-BY-4.0, CC-BY-4.0,
    CC0-1.0, Apache-2.0), matched case-insensitively against the common ids and `extra`; None when it is unknown."""
    if text is None or not text.strip():
        return None
    known = {**_CANONICAL, **{i.lower(): i for i in extra}}
    raw = text.strip()
    if raw.lower() in known:
        return known[raw.lower()]
    s = raw.lower()
    for pattern, repl in _WORDS:
        s = re.sub(pattern, repl, s)
    s = re.sub(r"\bv(?=\d)", "", s)  # "v2.0" → "2.0"
    s = re.sub(r"([a-z])(\d)", r"\1 \2", s.replace("cc0", "cc-zero"))  # "apache2" → "apache 2"
    tokens = [t for t in re.split(r"[^a-z0-9.]+", s.replace("cc-zero", "cc0")) if t and t != "."]
    versioned = {"by", "sa", "nc", "nd", "apache", "gpl", "lgpl", "agpl", "mpl"}  # "by 4" → "by 4.0"
    tokens = [f"{t}.0" if t.isdigit() and i and tokens[i - 1] in versioned else t for i, t in enumerate(tokens)]
    if tokens == ["cc0"] or tokens[:2] == ["cc0", "1.0"]:
        tokens = ["cc0", "1.0"]
    candidate = "-".join(tokens)
    if candidate in _HF_ALIASES:
        return _HF_ALIASES[candidate]
    return known.get(candidate)


def _restriction(text: str) -> str | None:
    """Why a declared license can never be License-Safe (NC / ND), whatever a policy lists; else None."""
    s = text.lower()
    for pattern, repl in _WORDS[:5]:
        s = re.sub(pattern, repl, s)
    tokens = set(re.split(r"[^a-z0-9]+", s))
    if "nc" in tokens:
        return "non-commercial (NC): the output is labelled commercially usable"
    if "nd" in tokens:
        return "no-derivatives (ND): synthetic data built on a seed is a derivative of it"
    return None


class SeedLicensePolicy(BaseModel):
    """Which seed licenses a job accepts: SPDX ids, case-insensitive. The default list can be narrowed (jobs,
    operators) and widened explicitly with a list; NC and ND licenses are never accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: tuple[str, ...] = DEFAULT_ALLOWED
    share_alike: tuple[str, ...] = tuple(sorted(SHARE_ALIKE))  # allowed, but flagged (the output inherits it)

    @field_validator("allowed")
    @classmethod
    def _spdx_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for item in value:
            if _restriction(item):
                raise ValueError(f"{item!r} can not be allowed: {_restriction(item)}")
            spdx = normalize_license(item) or item.strip()
            if spdx not in OPEN:
                raise ValueError(f"{item!r} is not one of the open licenses a seed may have here "
                                 f"({', '.join(sorted(OPEN))})")
            if spdx.lower() not in {o.lower() for o in out}:
                out.append(spdx)
        return tuple(out)

    def narrowed(self, to: Iterable[str]) -> "SeedLicensePolicy":
        """Only the licenses of `to` that this policy allows."""
        keep = {self.resolve(i) for i in to} - {None}
        return self.model_copy(update={"allowed": tuple(a for a in self.allowed if a in keep)})

    def widened(self, extra: Iterable[str]) -> "SeedLicensePolicy":
        """This policy plus the licenses of `extra` (SPDX ids; NC and ND are refused)."""
        return SeedLicensePolicy(allowed=(*self.allowed, *extra), share_alike=self.share_alike)

    def resolve(self, declared: str | None) -> str | None:
        """The SPDX id a declared license means, recognising this policy's own ids too."""
        return normalize_license(declared, self.allowed)

    def is_share_alike(self, spdx: str) -> bool:
        return spdx.lower() in {s.lower() for s in self.share_alike}


class Purpose(BaseModel):
    """What the job's output is for. Synthetic data here is for fine-tuning and distillation: training is the
    default purpose, and commercial use too (the data sets are labelled commercially usable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commercial: bool = True
    train_models: bool = True


class Seed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    license: str | None = None  # as declared by the dataset card (`license:`) or the job
    attribution: str | None = None  # e.g. "Wikipedia contributors"; the name is used when absent
    source: str | None = None  # where the seed comes from (URL, dataset id)


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["model", "seed"]
    name: str  # the model alias, or the seed's name
    model_or_license: str | None  # the catalog model id, or the seed's declared license (None: none declared)
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {self.reason}"


class GateResult(BaseModel):
    """The gate's verdict, and what the dataset card needs from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    problems: list[Problem] = Field(default_factory=list)
    dataset_license: str  # the Hugging Face `license:` id of the output (see `dataset_license_for`)
    share_alike: bool = False
    attributions: list[str] = Field(default_factory=list)  # what the seeds' licenses require us to credit
    obligations: list[str] = Field(default_factory=list)  # "<license>: <obligation>" of the models used, deduplicated
    warnings: list[str] = Field(default_factory=list)  # allowed, but worth saying (share-alike seeds...)
    model_licenses: dict[str, ModelLicense] = Field(default_factory=dict)  # by catalog model id
    seed_licenses: dict[str, str] = Field(default_factory=dict)  # seed name → SPDX id (accepted seeds)
    purpose: Purpose = Purpose()
    allowed_seed_licenses: list[str] = Field(default_factory=list)
    policy_version: str

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def raise_for_problems(self) -> "GateResult":
        if not self.ok:
            raise LicenseRefused(self)
        return self


class LicenseRefused(ValueError):
    """A job whose combination of models and seeds is not license-safe; `.result` lists every problem."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        lines = "\n".join(f"  - {p}" for p in result.problems)
        super().__init__(f"the job is not license-safe ({len(result.problems)} problem(s)):\n{lines}")


# The output's license, from its seeds' (Hugging Face ids), most demanding first
_DATASET_LICENSE = (("CC-BY-SA-4.0", "cc-by-sa-4.0"), ("CC-BY-SA-3.0", "cc-by-sa-3.0"), ("ODbL-1.0", "odbl"),
                    ("CC-BY-4.0", "cc-by-4.0"), ("CC-BY-3.0", "cc-by-3.0"), ("ODC-By-1.0", "odc-by"),
                    ("CDLA-Permissive-2.0", "cdla-permissive-2.0"), ("Apache-2.0", "apache-2.0"), ("MIT", "mit"),
                    ("BSD-3-Clause", "bsd-3-clause"), ("BSD-2-Clause", "bsd-2-clause"), ("CC0-1.0", "cc0-1.0"),
                    ("PDDL-1.0", "pddl"), ("Unlicense", "unlicense"))


def dataset_license_for(seed_licenses: Iterable[str]) -> str:
    """The Hugging Face `license:` id of a job's output, set from the (accepted) licenses of its seeds:

    any CC-BY-SA seed → `cc-by-sa-4.0` (share-alike: the output must carry it); else any CC-BY seed →
    `cc-by-4.0`; else any Apache-2.0 seed → `apache-2.0`; else any MIT seed → `mit`; no seeds, or CC0 only →
    `cc0-1.0`. The first of that order present wins (licenses a policy widened to slot in by the same logic:
    share-alike, then attribution, then notice-keeping, then public domain); a seed license outside the order →
    `other`. Model outputs add no license: the labs' terms above either assign outputs to the user or claim no
    rights in them, and their conditions are carried as obligations, not as a license.
    """
    present = {s.lower() for s in seed_licenses}
    rank = [spdx.lower() for spdx, _ in _DATASET_LICENSE]
    if present - set(rank):
        return "other"
    for spdx, hf in _DATASET_LICENSE:
        if spdx.lower() in present:
            return hf
    return "cc0-1.0"


def card_license(readme: str) -> str | None:
    """The `license:` of a Hugging Face dataset card (its YAML front matter); None when it declares none.
    A list of licenses is returned joined with " AND " (all apply), which the gate refuses as unknown."""
    match = re.match(r"\A\ufeff?---\s*\n(.*?)\n---\s*(\n|\Z)", readme, re.S)
    if not match:
        return None
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return None
    value = meta.get("license") if isinstance(meta, dict) else None
    if isinstance(value, list):
        value = " AND ".join(str(v) for v in value) if value else None
    if value in (None, ""):
        return None
    if str(value).lower() == "other" and isinstance(meta, dict) and meta.get("license_name"):
        return f"other ({meta['license_name']})"
    return str(value)


def _check_model(alias: str, model_id: str, entry: ModelLicense | None, purpose: Purpose,
                 known: Collection[str] | None) -> list[Problem]:
    def problem(reason: str) -> Problem:
        return Problem(kind="model", name=alias, model_or_license=model_id, reason=f"{model_id}: {reason}")

    if known is not None and model_id not in known and model_id.rpartition(":")[0] not in known:
        return [problem("not in the catalog")]
    if entry is None:
        return [problem("no license entry in the catalog's license table (shared/catalog/licenses.yaml), so "
                        "the terms for using its outputs are not established; an operator may add one in the "
                        "`licenses:` of SWITCHYARD_CONFIG")]
    found = []
    if purpose.commercial and not entry.commercial_use:
        found.append(problem(f"{entry.commercial_restriction} (commercial use requested)"))
    if purpose.train_models and not entry.train_other_models:
        found.append(problem(f"{entry.train_restriction} (train_models requested)"))
    return found


def _check_seed(seed: Seed, policy: SeedLicensePolicy) -> tuple[str | None, Problem | None]:
    def problem(reason: str) -> tuple[None, Problem]:
        return None, Problem(kind="seed", name=seed.name, model_or_license=seed.license, reason=reason)

    declared = seed.license
    if declared is None or not declared.strip():
        return problem("no license declared (set `license:` in its dataset card or in the job)")
    if why := _restriction(declared):
        return problem(f"{declared!r} is {why}")
    spdx = policy.resolve(declared)
    if spdx is None:
        return problem(f"{declared!r} is not a license the gate recognises (declare an SPDX id, e.g. CC-BY-4.0)")
    if spdx.lower() not in {a.lower() for a in policy.allowed}:
        return problem(f"{spdx} is not in the allowed seed licenses ({', '.join(policy.allowed)})")
    return spdx, None


def check(models: Mapping[str, str], seeds: Sequence[Seed] = (), purpose: Purpose = Purpose(),
          policy: SeedLicensePolicy = SeedLicensePolicy(), known_models: Collection[str] | None = None, *,
          table: LicenseTable | None = None, extra_licenses: Iterable[ModelLicense] | None = None) -> GateResult:
    """The gate: `models` maps each alias to a catalog model id; `seeds` are the job's seed data sets;
    `known_models` (the catalog's ids), when given, makes an id outside it a problem too. License entries come
    from `extra_licenses` (default: the operator's, from SWITCHYARD_CONFIG), then `table` (default: the built-in
    one). Every offending model and seed is listed; `ok` is true only when there are none."""
    table = table or load_table()
    extra = tuple(operator_licenses() if extra_licenses is None else extra_licenses)
    problems: list[Problem] = []
    model_licenses: dict[str, ModelLicense] = {}
    obligations: list[str] = []
    for alias, model_id in models.items():
        entry = table.license_for(model_id, extra)
        found = _check_model(alias, model_id, entry, purpose, known_models)
        problems.extend(found)
        if entry is not None and not found:
            model_licenses[model_id] = entry
            obligations.extend(f"{entry.license}: {o}" for o in entry.obligations)

    seed_licenses: dict[str, str] = {}
    attributions: list[str] = []
    warnings: list[str] = []
    for seed in seeds:
        spdx, problem = _check_seed(seed, policy)
        if problem:
            problems.append(problem)
            continue
        assert spdx is not None
        seed_licenses[seed.name] = spdx
        credit = f"{seed.name}: {seed.attribution or seed.name}" + (f" ({seed.source})" if seed.source else "")
        if spdx in ATTRIBUTION:
            attributions.append(f"{credit}, licensed {spdx}: credit the source, link the license, say if changed")
        elif spdx in NOTICE:
            attributions.append(f"{credit}, licensed {spdx}: keep its copyright and license notice")
        if policy.is_share_alike(spdx):
            warnings.append(f"seed {seed.name!r} is {spdx} (share-alike): the data set must be shared under the "
                            f"same license")

    dataset_license = dataset_license_for(seed_licenses.values())
    return GateResult(
        ok=not problems, problems=problems, dataset_license=dataset_license,
        share_alike=any(policy.is_share_alike(s) for s in seed_licenses.values()),
        attributions=attributions, obligations=_dedupe(obligations), warnings=warnings,
        model_licenses=model_licenses, seed_licenses=seed_licenses, purpose=purpose,
        allowed_seed_licenses=list(policy.allowed), policy_version=table.policy_version,
    )


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
