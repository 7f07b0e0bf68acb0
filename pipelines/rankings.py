"""The daily rankings flow (Prefect 3): thin tasks over shared/rankings/daily.py.

    python -m pipelines.rankings --date 2026-12-01 [--lake URI] [--out URI]
    python -m pipelines.rankings --start 2026-11-01 --end 2026-11-30        (a backfill, days in parallel)
    ... [--quiet | --progress]          (a progress bar when stdout is a terminal: pipelines/progress.py)

A day: aggregate the lake's partition (anti-gaming filters applied in the SQL), score, build the files,
publish. Re-running a day gives byte-identical files. A backfill submits one day per task to the flow's task
runner, seven days at a time: threads by default; `SWITCHYARD_TASK_RUNNER=dask` (prefect-dask) or `ray` (prefect-ray) picks
another without a code change. The lake and the output default to the data bucket (`SWITCHYARD_LAKE_URI`,
`SWITCHYARD_RANKINGS_URI`); any `s3://` URI or directory works.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.progress import Progress, add_arguments, wanted
from shared.lake.query import LakeQuery
from shared.lake.store import LakeStore, open_store
from shared.rankings import daily


def _stores(lake: str | None, out: str | None) -> tuple[LakeStore, LakeStore]:
    from shared.config import get_settings

    s = get_settings()
    default = f"s3://{s.data_bucket}"
    return open_store(lake or s.lake_uri or default), open_store(out or s.rankings_uri or default)


def yesterday() -> str:
    return (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()


@task(name="aggregate", retries=2, retry_delay_seconds=5)
def aggregate(lake: LakeStore, day: str, settings: daily.RankingSettings) -> daily.Aggregates:
    return daily.aggregate(LakeQuery(lake), day, settings)


@task(name="score")
def score(agg: daily.Aggregates, settings: daily.RankingSettings, out: LakeStore) -> list[dict[str, Any]]:
    last_week = daily.read_models(out, (date.fromisoformat(agg.day) - timedelta(days=7)).isoformat())
    return daily.score(agg, settings, last_week)


@task(name="build files")
def build(agg: daily.Aggregates, models: list[dict[str, Any]], settings: daily.RankingSettings) -> dict[str, bytes]:
    return daily.files(agg.day, models, daily.labs(models), daily.apps(agg, settings), agg, settings)


@task(name="publish", retries=2, retry_delay_seconds=5)
def publish(out: LakeStore, day: str, outputs: dict[str, bytes]) -> list[str]:
    return daily.publish(out, day, outputs)


Step = Callable[[str], None]  # told each step's name as it ends (a progress bar)


@flow(name="daily-rankings", log_prints=True)
def rankings(day: str | None = None, lake: str | None = None, out: str | None = None,
             on_step: Step | None = None) -> dict[str, Any]:
    """One UTC day (default: yesterday) from the lake to published rankings, in four steps (STEPS)."""
    day = date.fromisoformat(day or yesterday()).isoformat()
    step = on_step or (lambda name: None)
    lake_store, out_store = _stores(lake, out)
    settings = daily.RankingSettings.from_env()
    agg = aggregate(lake_store, day, settings)
    step("aggregate")
    models = score(agg, settings, out_store)
    step("score")
    outputs = build(agg, models, settings)
    step("build")
    files = publish(out_store, day, outputs)
    step("publish")
    return {"date": day, "files": files, "models": len(models), "ranked": sum(m["rank"] is not None for m in models)}


@task(name="day")
def _one_day(day: str, lake: str | None, out: str | None) -> dict[str, Any]:
    lake_store, out_store = _stores(lake, out)
    return daily.run_day(day, lake_store, out_store, daily.RankingSettings.from_env(), latest=False)


def _task_runner() -> Any:
    kind = os.environ.get("SWITCHYARD_TASK_RUNNER", "threads")
    if kind == "dask":
        from prefect_dask import DaskTaskRunner  # type: ignore[import-not-found]

        return DaskTaskRunner()
    if kind == "ray":
        from prefect_ray import RayTaskRunner  # type: ignore[import-not-found]

        return RayTaskRunner()
    return ThreadPoolTaskRunner(max_workers=int(os.environ.get("SWITCHYARD_BACKFILL_WORKERS", "4")))


STEPS = 4  # of a day (`rankings`)


@flow(name="rankings-backfill", task_runner=_task_runner())
def backfill(start: str, end: str, lake: str | None = None, out: str | None = None,
             on_day: Step | None = None) -> list[dict[str, Any]]:
    """Every day from start to end (inclusive), seven at a time in parallel: a day's week-over-week change reads
    the day a week before it, which the previous wave has published, so a backfill gives the same files as
    running the days one by one."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if last < first:
        raise ValueError("end is before start")
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    results: list[dict[str, Any]] = []
    for wave in range(0, len(days), 7):
        futures = [_one_day.submit(d, lake, out) for d in days[wave:wave + 7]]
        for day, future in zip(days[wave:wave + 7], futures):
            results.append(future.result())
            if on_day is not None:
                on_day(day)
    daily.point_latest(_stores(lake, out)[1])
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", help="a UTC day, YYYY-MM-DD (default: yesterday)")
    parser.add_argument("--start", help="backfill from this day")
    parser.add_argument("--end", help="backfill to this day (inclusive)")
    parser.add_argument("--lake", help="the lake: s3://bucket[/prefix] or a directory (default: the data bucket)")
    parser.add_argument("--out", help="where to publish (default: the data bucket)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.start or args.end:
        start, end = args.start or args.end, args.end or args.start
        days = (date.fromisoformat(end) - date.fromisoformat(start)).days + 1
        with Progress(max(days, 0), desc="rankings backfill", unit="day", show=wanted(args)) as bar:
            result: Any = backfill(start, end, args.lake, args.out, on_day=lambda day: bar.advance(day=day))
    else:
        with Progress(STEPS, desc="rankings", unit="step", show=wanted(args)) as bar:
            result = rankings(args.date, args.lake, args.out, on_step=lambda name: bar.advance(step=name))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
