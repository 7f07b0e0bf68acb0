"""The dataset card: `README.md` with Hugging Face's YAML front matter, written when a job ends and again when
a reviewer sets the review block. It says where every part of the data came from, under which terms, what it
cost, and whether a person has looked at it."""

from __future__ import annotations

from typing import Any

import yaml

LABEL = "License-Safe"


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def card(job: Any, meta: dict[str, Any], *, config: dict[str, Any] | None = None) -> str:
    """The card of a job (`job`, or only its config.json when re-written for a review)."""
    spec = job.spec.model_dump(mode="json") if job is not None else config["spec"]  # type: ignore[index]
    lic = meta["license"]
    safe = meta["status"] == "completed"
    restricted = _restrictions(lic, spec)
    front = {
        "license": "other" if restricted else lic["dataset_license"],
        **({"license_name": f"{lic['dataset_license']} with the use restrictions below"} if restricted else {}),
        "tags": ["synthetic", "license-safe"] if safe else ["synthetic"],
        "pretty_name": spec["name"],
        "size_categories": [_size_category(meta.get("rows_done") or 0)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
        "switchyard": {"job_id": meta["job_id"], "fingerprint": meta["fingerprint"], "engine": meta["engine"],
                       "license_policy_version": lic["policy_version"], "label": LABEL if safe else None,
                       "reviewed": meta["review"]["reviewed"]},
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {spec['name']}", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    status = (f"**{LABEL}.** Every model and seed that made this data passed Switchyard's license gate "
              f"(policy `{lic['policy_version']}`) for {_purpose(spec)}; the dataset's license is "
              f"`{lic['dataset_license']}`." if safe else
              f"**Incomplete: not labelled {LABEL}.** The job ended `{meta['status']}`: {meta.get('stopped_reason')}.")
    lines += [status, ""]
    if restricted:
        lines += ["**Use restrictions.** The job was declared for " + _purpose(spec) + " only, which these models' "
                  "terms allow; they forbid other uses of their output:", ""]
        lines += [f"- {r}" for r in restricted] + [""]
    lines += ["## Rows", "",
              f"- {meta.get('rows_done', 0)} accepted rows of {meta['num_records']} asked for, in "
              f"{meta.get('groups_done', 0)} of {meta['groups_total']} row groups (`data/*.parquet`).",
              f"- {meta.get('rows_failed', 0)} failed attempts, each kept with its reason (`failures/*.parquet`); "
              f"budget: {meta['budget']['max_attempts_per_row']} attempts a row, "
              f"{meta['budget']['max_failed_rows']} failed attempts a job.",
              "- Provenance columns: `_job_id`, `_config_hash`, `_row`, `_attempt`, `_seed_row`, and for each LLM "
              "column `_<column>_model`, `_<column>_provider`, `_<column>_request_id` (the gateway's generation id).",
              ""]
    lines += ["## Sources", "", "### Models", "", "| alias | model | license | commercial use | training other models "
              "| obligations | source |", "|---|---|---|---|---|---|---|"]
    models = lic.get("model_licenses", {})
    for alias in spec.get("model_configs", []):
        entry = models.get(alias["model"], {})
        lines.append(f"| {alias['alias']} | `{alias['model']}` | {entry.get('license', '?')} | "
                     f"{_yes(entry.get('commercial_use'))} | {_yes(entry.get('train_other_models'))} | "
                     f"{'; '.join(entry.get('obligations') or []) or 'none'} | {entry.get('source', '')} |")
    lines += ["", "### Seed data", ""]
    seeds = lic.get("seed_licenses") or {}
    if seeds:
        lines += ["| seed | license |", "|---|---|"]
        lines += [f"| {name} | {spdx} |" for name, spdx in seeds.items()]
        if lic.get("share_alike"):
            lines += ["", "A share-alike seed: the data is shared under the same license."]
    else:
        lines.append("None: every value not written by a model was drawn by a sampler.")
    obligations = lic.get("obligations") or []
    attributions = lic.get("attributions") or []
    if obligations or attributions:
        lines += ["", "### Obligations of whoever uses this data", ""]
        lines += [f"- {o}" for o in [*attributions, *obligations]]
    lines += ["", "## Cost and tokens", "", "| model | calls | prompt tokens | completion tokens | cost (USD) | "
              "tokens a row |", "|---|---|---|---|---|---|"]
    for model, u in (meta.get("usage") or {}).items():
        lines.append(f"| `{model}` | {u['calls']} | {u['prompt_tokens']} | {u['completion_tokens']} | "
                     f"{u['cost_usd']:.6f} | {u['tokens_per_row']} |")
    lines += ["", f"Total: ${meta.get('cost_usd', 0):.6f}; per accepted row: "
              f"${(meta.get('cost_per_row_usd') or 0):.8f} (every call counted, failed attempts included).", ""]
    review = meta["review"]
    lines += ["## Human review", "",
              f"- reviewed: {'yes' if review['reviewed'] else 'no'}",
              f"- reviewer: {_inline(review['reviewer']) if review['reviewer'] else '-'}",
              f"- reviewed at: {review['reviewed_at'] or '-'}",
              "- notes:" + ("" if review["notes"] else " -"), ""]
    if review["notes"]:  # the reviewer's own words, as text: they cannot add headings or labels to the card
        lines += ["~~~~text", review["notes"].replace("~~~~", "~ ~ ~ ~"), "~~~~", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """A value shown as code: no markdown of its own."""
    return "`" + text.replace("`", "'") + "`"


def _restrictions(lic: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """What the models' terms forbid that the job's purpose left out (e.g. training other models)."""
    policy = spec.get("license_policy") or {}
    out = []
    for model, entry in (lic.get("model_licenses") or {}).items():
        if not policy.get("train_models", True) and entry.get("train_other_models") is False:
            out.append(f"`{model}`: not for training other models: {entry.get('train_restriction') or entry.get('license')}")
        if not policy.get("commercial", True) and entry.get("commercial_use") is False:
            out.append(f"`{model}`: not for commercial use: {entry.get('commercial_restriction') or entry.get('license')}")
    return out


def _purpose(spec: dict[str, Any]) -> str:
    p = spec.get("license_policy") or {}
    uses = (["commercial use"] if p.get("commercial", True) else []) + \
           (["training other models"] if p.get("train_models", True) else [])
    return " and ".join(uses) or "non-commercial use without training"


def _yes(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "?")
