"""Runs of the daily rankings started through the API (`POST /rankings/runs`), kept as small JSON records
under `rankings/runs/<id>.json` in the rankings store, so a run can be followed (`GET /rankings/runs/{id}`)
wherever it executes: in the request (the local stack) or in RankingsFunction, invoked asynchronously (AWS,
where an HTTP API request ends after 30 s).

Before a run of today or yesterday, the lake is given time to catch up: the number of calls the usage
counters hold for the day (the sum over keys of their `day#D` row, written in the same transaction as each
usage record) is what the lake must hold, up to `timeout` seconds."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from shared.lake.store import LakeStore

PREFIX = "rankings/runs/"


def new_id() -> str:
    return f"run-{uuid.uuid4().hex[:16]}"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def save(out: LakeStore, run: dict[str, Any]) -> None:
    out.put(f"{PREFIX}{run['id']}.json", json.dumps(run, sort_keys=True).encode())


def load(out: LakeStore, run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(out.get(f"{PREFIX}{run_id}.json"))
    except FileNotFoundError:
        return None


def metered_calls(day: str, key_ids: list[str], counters_table: str) -> int:
    """Calls the usage counters hold for the day, over the given keys."""
    from shared.aws.dynamodb import batch_get
    from shared.keys.counters import counter_key, periods_of_day

    period = periods_of_day(day).day
    total = 0
    for start in range(0, len(key_ids), 100):
        found = batch_get({counters_table: [{"pk": counter_key(k), "period": period} for k in key_ids[start:start + 100]]})
        total += sum(int(r.get("requests", 0)) for r in found[counters_table])
    return total


def lake_calls(lake: LakeStore, day: str) -> int:
    from shared.lake.query import LakeQuery

    d = date.fromisoformat(day)
    return LakeQuery(lake).run("SELECT count(*) AS n FROM usage_records", {}, d, d).to_pylist()[0]["n"]


def wait_for_lake(lake: LakeStore, day: str, expected: Callable[[], int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    want = expected()
    while lake_calls(lake, day) < want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def recent(day: str) -> bool:
    return date.fromisoformat(day) >= datetime.now(timezone.utc).date() - timedelta(days=1)


def execute(run: dict[str, Any], lake: LakeStore, out: LakeStore, expected: Callable[[], int] | None) -> dict:
    """Run the day (waiting for the lake first when `expected` is given), recording each step in the run."""
    from shared.rankings.daily import RankingSettings, run_day

    run.update(status="running", started_at=_now())
    save(out, run)
    try:
        if expected is not None and recent(run["date"]):
            run["lake_caught_up"] = wait_for_lake(lake, run["date"], expected)
        run.update(run_day(run["date"], lake, out, RankingSettings.from_env()))
        run.update(status="completed", finished_at=_now())
    except Exception as e:
        run.update(status="failed", finished_at=_now(), error=f"{type(e).__name__}: {str(e)[:300]}")
        save(out, run)
        raise
    save(out, run)
    return run
