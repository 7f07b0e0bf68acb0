"""The local stack's flows: `make run` starts this in a child process, which runs the daily rankings flow on
the schedule `prefect.yaml` gives its deployment (00:30 UTC, for the day before).

    python -m pipelines.serve STATE_DIR

Each run is the Prefect flow itself (pipelines/rankings.py), in Prefect's ephemeral mode: a temporary API in
this process, its database under STATE_DIR/prefect; Prefect's output goes to STATE_DIR/prefect/serve.log.
Why not `flow.serve(cron=...)`: scheduling needs a Prefect server's scheduler (the ephemeral mode has none),
and Prefect 3.9.1's scheduler fails on cron schedules under Python 3.11 and 3.12 (`tzinfo must be of type
ZoneInfo`, a pendulum time zone where `whenever` wants zoneinfo). With a Prefect server of your own, point
PREFECT_API_URL at it and `prefect deploy --all` (prefect.yaml) instead. A missed day (the stack was down at
00:30) is run when the stack starts, if its rankings are not published yet. Stops on SIGINT or SIGTERM, or
when its stdin closes (the stack stopped or died).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

AT = time(0, 30, tzinfo=timezone.utc)
CRON = "30 0 * * *"  # the same as prefect.yaml's


def next_run(now: datetime) -> datetime:
    today = datetime.combine(now.date(), AT)
    return today if today > now else today + timedelta(days=1)


def _published(day: str) -> bool:
    from pipelines.rankings import _stores

    _, out = _stores(None, None)
    return any(o.key.endswith("/summary.json") for o in out.list(f"rankings/dt={day}/"))


def main() -> None:
    state = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".switchyard")
    home = state / "prefect"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # the stack holds our stdin: it closes when the stack stops or dies (even by SIGKILL), and we go with it
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), name="stop-on-stdin-eof", daemon=True).start()
    print(f"switchyard: flows: daily-rankings at '{CRON}' UTC (log: {home / 'serve.log'})", flush=True)
    log = open(home / "serve.log", "a", buffering=1)  # noqa: SIM115 (for the process's life)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    from pipelines.rankings import rankings, yesterday

    def run(day: str) -> None:
        try:
            print(f"{datetime.now(timezone.utc).isoformat()} daily-rankings {day}: {rankings(day)}", flush=True)
        except Exception as e:  # logged; the next day runs regardless
            print(f"daily-rankings {day} failed: {e!r}", flush=True)

    try:
        if not _published(yesterday()):
            run(yesterday())
    except Exception as e:
        print(f"catch-up check failed: {e!r}", flush=True)
    while not stop.is_set():
        due = next_run(datetime.now(timezone.utc))
        if stop.wait(max(0.0, (due - datetime.now(timezone.utc)).total_seconds())):
            break
        run((due.date() - timedelta(days=1)).isoformat())


if __name__ == "__main__":
    main()
