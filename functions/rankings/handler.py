"""The daily rankings on AWS: an EventBridge schedule at 00:30 UTC runs the day before (or `{"date": D}`);
`POST /rankings/runs` invokes it with `{"run": {...}}` and follows the run in its record (shared/rankings/runs.py).

The Prefect flow's own functions (shared/rankings/daily.py) run in-process: the same files the flow
publishes (tests/test_rankings.py checks the two agree byte for byte), without Prefect's runtime."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger("switchyard.rankings")


def handler(event: dict[str, Any] | None = None, _context: Any = None) -> dict[str, Any]:
    from shared.config import get_settings
    from shared.lake.store import open_store
    from shared.rankings.daily import RankingSettings, run_day

    s = get_settings()
    default = f"s3://{s.data_bucket}"
    lake, out = open_store(s.lake_uri or default), open_store(s.rankings_uri or default)
    if (event or {}).get("run"):  # POST /rankings/runs handed us this run: follow it in its record
        from shared.keys.store import DynamoKeyStore
        from shared.rankings import runs
        from shared.aws.secrets import pepper

        run = event["run"]
        keys = [k.key_id for k in DynamoKeyStore(s.keys_table, s.counters_table, pepper).list()]
        return runs.execute(run, lake, out, lambda: runs.metered_calls(run["date"], keys, s.counters_table))
    day = (event or {}).get("date") or (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    result = run_day(day, lake, out, RankingSettings.from_env())
    log.info("rankings for %s: %s models, %s ranked", day, result["models"], result["ranked"])
    return result
