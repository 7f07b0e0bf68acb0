"""One day's rankings, as plain functions (the Prefect flow in pipelines/rankings.py runs each as a task):

    aggregate(day) → score(models, last week) → labs(models) → files(...) → publish(files)

Outputs, all deterministic (re-running a day over the same lake gives byte-identical files):
    rankings/dt=D/models.parquet, labs.parquet, apps.parquet, summary.json, manifest.json (SHA-256 of each)
    rankings/latest/…                     the same files, for the newest day published
    datasets/rankings-daily/dt=D/data.parquet and datasets/rankings-daily/README.md (the card, CC BY 4.0)
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.lake.query import LakeQuery
from shared.lake.store import LakeStore
from shared.rankings import formula, sql

PREFIX = "rankings/"
DATASET = "datasets/rankings-daily/"
LICENSE = "CC-BY-4.0"


@dataclass(frozen=True, slots=True)
class RankingSettings:
    min_calls: int = 10  # answerable calls after the filters, to be ranked
    source_share: float = 0.5  # at most this share of a model's calls from one source
    source_floor: int = 20  # a source keeps at least this many calls (a model used by one source stays rankable)
    repeat_threshold: int = 50  # one prompt fingerprint from one source to one model, per hour, beyond: counts once
    concentration_share: float = 0.95  # a key or app sending this share of its calls to one model is flagged
    concentration_min_calls: int = 100  # … once it made this many calls
    app_min_calls: int = 10  # an app is named in the published rankings with at least this many calls a day

    @classmethod
    def from_env(cls) -> "RankingSettings":
        from shared.config import get_settings

        s = get_settings()
        return cls(s.rankings_min_calls, s.rankings_source_share, s.rankings_source_floor,
                   s.rankings_repeat_threshold, s.rankings_concentration_share, s.rankings_concentration_min_calls,
                   s.rankings_app_min_calls)


@dataclass(slots=True)
class Aggregates:
    day: str
    models: list[dict[str, Any]]
    apps: list[dict[str, Any]]
    flags: list[dict[str, Any]] = field(default_factory=list)


def _bounds(day: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), time(), timezone.utc)
    return start, start + timedelta(days=1)


def aggregate(engine: LakeQuery, day: str, settings: RankingSettings) -> Aggregates:
    """The day's traffic per model (before and after the filters) and per app, and the concentration flags."""
    start, end = _bounds(day)
    d = start.date()
    con = engine.connect(d, d)
    try:
        params = {"from": start, "to": end, "share": settings.source_share, "floor": settings.source_floor,
                  "repeat": settings.repeat_threshold}
        models = con.sql(sql.MODELS, params=params).to_arrow_table().to_pylist()
        apps = con.sql(sql.APPS, params={"from": start, "to": end}).to_arrow_table().to_pylist()
        flags = con.sql(sql.CONCENTRATION, params={"from": start, "to": end, "min_calls": settings.concentration_min_calls,
                                                   "concentration": settings.concentration_share}
                        ).to_arrow_table().to_pylist()
    finally:
        con.close()
    return Aggregates(day, models, apps, flags)


def _round(value: Any, digits: int = 6) -> Any:
    return round(float(value), digits) if value is not None else None


def score(agg: Aggregates, settings: RankingSettings, last_week: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    rows = []
    for m in agg.models:
        tokens = int(m["prompt_tokens"] or 0) + int(m["completion_tokens"] or 0)
        kept_tokens = int(m["tokens_after_filters"] or 0)
        rows.append({
            "date": agg.day, "model": m["model"], "lab": m["lab"] or m["model"].split("/", 1)[0],
            "calls": int(m["calls"]), "calls_after_filters": int(m["calls_after_filters"]),
            "removed_source_cap": int(m["removed_source_cap"]),
            "removed_repeated_prompt": int(m["removed_repeated_prompt"]),
            "completed": int(m["completed"]), "failed": int(m["failed"]),
            "success_rate": _round(m["completed"] / (m["completed"] + m["failed"]))
            if m["completed"] + m["failed"] else None,
            "p50_latency_ms": _round(m["p50_latency_ms"], 3), "p95_latency_ms": _round(m["p95_latency_ms"], 3),
            "cost_per_1k_tokens": _round(m["cost_after_filters"] / kept_tokens * 1000, 9) if kept_tokens else None,
            "prompt_tokens": int(m["prompt_tokens"] or 0), "completion_tokens": int(m["completion_tokens"] or 0),
            "total_tokens": tokens, "tokens_after_filters": kept_tokens, "cost": _round(m["cost"], 9),
        })
    formula.score_cohort(rows, min_calls=settings.min_calls)
    previous = {r["model"]: r for r in last_week or []}
    for r in rows:
        before = previous.get(r["model"])
        r["rank_change_wow"] = (before["rank"] - r["rank"]) if before and before.get("rank") and r["rank"] else None
        r["score_change_wow"] = (_round(r["score"] - before["score"]) if before and before.get("score") is not None
                                 and r["score"] is not None else None)
        r["formula_version"] = formula.VERSION
    return sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, -r["total_tokens"], r["model"]))


def labs(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per lab: traffic and cost shares, and the call-weighted mean score of its ranked models."""
    total_tokens = sum(m["total_tokens"] for m in models) or 1
    total_cost = sum(m["cost"] or 0 for m in models) or 1.0
    out = []
    for lab in sorted({m["lab"] for m in models}):
        mine = [m for m in models if m["lab"] == lab]
        ranked = [m for m in mine if m["rank"] is not None]
        weight = sum(m["calls_after_filters"] for m in ranked)
        out.append({
            "date": mine[0]["date"], "lab": lab, "models": len(mine), "ranked_models": len(ranked),
            "calls": sum(m["calls"] for m in mine), "total_tokens": sum(m["total_tokens"] for m in mine),
            "cost": _round(sum(m["cost"] or 0 for m in mine), 9),
            "token_share": _round(sum(m["total_tokens"] for m in mine) / total_tokens),
            "cost_share": _round(sum(m["cost"] or 0 for m in mine) / total_cost),
            "score": _round(sum(m["score"] * m["calls_after_filters"] for m in ranked) / weight) if weight else None,
            "best_model": min(ranked, key=lambda m: m["rank"])["model"] if ranked else None,
        })
    ordered = sorted([r for r in out if r["score"] is not None], key=lambda r: (-r["score"], -r["calls"], r["lab"]))
    for r in out:
        r["rank"] = ordered.index(r) + 1 if r in ordered else None
    return sorted(out, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["lab"]))


def apps(agg: Aggregates, settings: "RankingSettings | None" = None) -> list[dict[str, Any]]:
    """Apps by tokens (OpenRouter's app ranking). Published, so an app is named only with at least
    `app_min_calls` calls that day; smaller apps and unattributed traffic are summed in one unnamed row."""
    least = (settings or RankingSettings()).app_min_calls
    rows = [{"date": agg.day, "app": a["app"], "calls": int(a["calls"]),
             "total_tokens": int(a["prompt_tokens"] or 0) + int(a["completion_tokens"] or 0),
             "cost": _round(a["cost"], 9), "models": int(a["models"]), "top_model": a["top_model"]}
            for a in agg.apps]
    named = sorted((r for r in rows if r["app"] and r["calls"] >= least), key=lambda r: (-r["total_tokens"], r["app"]))
    for i, r in enumerate(named, 1):
        r["rank"] = i
    rest = [r for r in rows if not r["app"] or r["calls"] < least]
    if rest:
        named.append({"date": agg.day, "app": "", "rank": None, "calls": sum(r["calls"] for r in rest),
                      "total_tokens": sum(r["total_tokens"] for r in rest),
                      "cost": _round(sum(r["cost"] or 0 for r in rest), 9), "models": None, "top_model": None})
    return named


def _parquet(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, compression="zstd")
    return sink.getvalue()


MODEL_SCHEMA = pa.schema([
    ("date", pa.string()), ("rank", pa.int32()), ("model", pa.string()), ("lab", pa.string()),
    ("status", pa.string()), ("score", pa.float64()), ("term_success", pa.float64()), ("term_speed", pa.float64()),
    ("term_price", pa.float64()), ("success_rate", pa.float64()), ("success_lower_bound", pa.float64()),
    ("p50_latency_ms", pa.float64()), ("p95_latency_ms", pa.float64()), ("cost_per_1k_tokens", pa.float64()),
    ("calls", pa.int64()), ("calls_after_filters", pa.int64()), ("completed", pa.int64()), ("failed", pa.int64()),
    ("removed_source_cap", pa.int64()), ("removed_repeated_prompt", pa.int64()), ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()), ("total_tokens", pa.int64()), ("tokens_after_filters", pa.int64()),
    ("cost", pa.float64()), ("rank_change_wow", pa.int32()), ("score_change_wow", pa.float64()),
    ("formula_version", pa.string()),
])
LAB_SCHEMA = pa.schema([
    ("date", pa.string()), ("rank", pa.int32()), ("lab", pa.string()), ("score", pa.float64()),
    ("best_model", pa.string()), ("models", pa.int32()), ("ranked_models", pa.int32()), ("calls", pa.int64()),
    ("total_tokens", pa.int64()), ("token_share", pa.float64()), ("cost", pa.float64()), ("cost_share", pa.float64()),
])
APP_SCHEMA = pa.schema([
    ("date", pa.string()), ("rank", pa.int32()), ("app", pa.string()), ("calls", pa.int64()),
    ("total_tokens", pa.int64()), ("cost", pa.float64()), ("models", pa.int32()), ("top_model", pa.string()),
])
DATASET_SCHEMA = pa.schema([
    ("date", pa.string()), ("model_permaslug", pa.string()), ("lab", pa.string()), ("rank", pa.int32()),
    ("score", pa.float64()), ("calls", pa.int64()), ("total_tokens", pa.int64()), ("tokens_after_filters", pa.int64()),
    ("success_rate", pa.float64()), ("p95_latency_ms", pa.float64()), ("cost_per_1k_tokens", pa.float64()),
])

CARD = """---
license: cc-by-4.0
pretty_name: Switchyard daily model rankings
tags: [llm, rankings, usage]
configs:
  - config_name: default
    data_files: "dt=*/data.parquet"
---
# Switchyard daily model rankings

One row per model and UTC day: the traffic a Switchyard gateway metered (calls and tokens, before and after
the anti-gaming filters), and the day's rank and score under formula `{version}` (README: "Rankings").
Aggregates only: no prompt, completion, key, IP or per-call row of any caller.

Load it: `datasets.load_dataset("parquet", data_files="dt=*/data.parquet")`.

License: Creative Commons Attribution 4.0 (CC BY 4.0). Cite as "Switchyard rankings, as of <as_of>".
"""


def files(day: str, models: list[dict], lab_rows: list[dict], app_rows: list[dict], agg: Aggregates,
          settings: RankingSettings) -> dict[str, bytes]:
    """Every output of the day, {key: bytes}; the manifest names each with its SHA-256. `as_of` is the end of
    the day, or the time of the run for a day not over yet (its rankings are partial)."""
    end = min(_bounds(day)[1], datetime.now(timezone.utc).replace(microsecond=0))
    as_of = end.isoformat().replace("+00:00", "Z")
    ranked = [m for m in models if m["rank"] is not None]
    summary = {
        "date": day, "as_of": as_of, "formula": {
            "version": formula.VERSION, "weights": formula.WEIGHTS, "success": f"Wilson lower bound, z = {formula.Z}",
            "normalisation": formula.NORMALISATION, "price_blend": formula.BLEND, "min_calls": settings.min_calls},
        "filters": {"source_share": settings.source_share, "source_floor": settings.source_floor,
                    "repeat_threshold_per_hour": settings.repeat_threshold,
                    "removed_source_cap": sum(m["removed_source_cap"] for m in models),
                    "removed_repeated_prompt": sum(m["removed_repeated_prompt"] for m in models),
                    "concentration_share": settings.concentration_share,
                    "flagged_keys": len({f["who"] for f in agg.flags if f["kind"] == "key"}),
                    "flagged_apps": len({f["who"] for f in agg.flags if f["kind"] == "app"})},
        "models": {"listed": len(models), "ranked": len(ranked)},
        "calls": sum(m["calls"] for m in models), "total_tokens": sum(m["total_tokens"] for m in models),
        "top": [{"rank": m["rank"], "model": m["model"], "score": m["score"]} for m in ranked[:10]],
    }
    dataset = [{"date": day, "model_permaslug": m["model"], "lab": m["lab"], "rank": m["rank"], "score": m["score"],
                "calls": m["calls"], "total_tokens": m["total_tokens"], "tokens_after_filters": m["tokens_after_filters"],
                "success_rate": m["success_rate"], "p95_latency_ms": m["p95_latency_ms"],
                "cost_per_1k_tokens": m["cost_per_1k_tokens"]} for m in models]
    base = f"{PREFIX}dt={day}/"
    out = {
        base + "models.parquet": _parquet(models, MODEL_SCHEMA),
        base + "labs.parquet": _parquet(lab_rows, LAB_SCHEMA),
        base + "apps.parquet": _parquet(app_rows, APP_SCHEMA),
        base + "summary.json": json.dumps(summary, indent=2, sort_keys=True).encode(),
        f"{DATASET}dt={day}/data.parquet": _parquet(dataset, DATASET_SCHEMA),
        f"{DATASET}README.md": CARD.format(version=formula.VERSION).encode(),
    }
    manifest = {"date": day, "as_of": as_of, "formula_version": formula.VERSION, "license": LICENSE,
                "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v)} for k, v in sorted(out.items())}}
    out[base + "manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    return out


def publish(store: LakeStore, day: str, outputs: dict[str, bytes], *, latest: bool = True) -> list[str]:
    """Write the day's files; with `latest`, the `latest/` alias follows when this day is the newest published
    (a backfill points it once, at its end: days published in parallel could otherwise mix in it)."""
    for key, data in sorted(outputs.items()):
        store.put(key, data)
    if latest:
        point_latest(store)
    return sorted(outputs)


def point_latest(store: LakeStore) -> str | None:
    """`rankings/latest/` ← the newest day published (its files copied, the manifest last); returns the day."""
    days = sorted({o.key.split("/")[1][3:] for o in store.list(PREFIX) if o.key.split("/")[1].startswith("dt=")})
    if not days:
        return None
    base = f"{PREFIX}dt={days[-1]}/"
    names = sorted(o.key[len(base):] for o in store.list(base))
    for name in sorted(names, key=lambda n: n == "manifest.json"):
        store.put(f"{PREFIX}latest/{name}", store.get(base + name))
    return days[-1]


def read_models(store: LakeStore, day: str) -> list[dict[str, Any]] | None:
    try:
        data = store.get(f"{PREFIX}dt={day}/models.parquet")
    except FileNotFoundError:
        return None
    return pq.read_table(pa.BufferReader(data)).to_pylist()


def run_day(day: str, lake: LakeStore, out: LakeStore, settings: RankingSettings | None = None, *,
            latest: bool = True) -> dict[str, Any]:
    """The whole day, without Prefect (the flow runs the same functions as tasks)."""
    settings = settings or RankingSettings()
    agg = aggregate(LakeQuery(lake), day, settings)
    last_week = read_models(out, (date.fromisoformat(day) - timedelta(days=7)).isoformat())
    models = score(agg, settings, last_week)
    outputs = files(day, models, labs(models), apps(agg, settings), agg, settings)
    written = publish(out, day, outputs, latest=latest)
    return {"date": day, "files": written, "models": len(models), "ranked": sum(m["rank"] is not None for m in models)}
