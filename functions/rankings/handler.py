"""The daily rankings on AWS: an EventBridge schedule at 00:30 UTC runs the day before (or `{"date": D}`).

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
    day = (event or {}).get("date") or (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
    default = f"s3://{s.data_bucket}"
    result = run_day(day, open_store(s.lake_uri or default), open_store(s.rankings_uri or default),
                     RankingSettings.from_env())
    log.info("rankings for %s: %s models, %s ranked", day, result["models"], result["ranked"])
    return result
