"""The counters table's layout, shared by metering (which writes spend) and keys (which read it and hold it).

    pk "key#<key id>"   period "total"            cost, requests, prompt_tokens, completion_tokens,
                                                  committed, holds {request id: {"a": USD, "t": epoch s}}
                        period "month#YYYY-MM"    the same sums for a UTC month
                        period "week#YYYY-MM-DD"  ... a UTC week, Monday to Sunday, named by its Monday
                        period "day#YYYY-MM-DD"   ... and a UTC day (week and day rows expire after the retention)
    pk "dead-letter"    period "<time>#<request>" a usage record DynamoDB would not take (shared/metering)
    pk "rate#<key id>"  period "rpm#…" "rpd#…" "tpm#…"  rate-limit windows (shared/keys/rates.py)

`committed` is spend plus what is held for calls in flight, on every row: a limit is enforced on the row of the
period it applies to (`total`, or the current day, week or month for a key with `limit_reset`), atomically, by
the reservation (shared/keys/spend.py); the usage record's transaction settles a hold into `cost` on the row
that held it (shared/metering).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

TOTAL = "total"


class Periods(NamedTuple):
    month: str
    week: str
    day: str


def counter_key(key_id: str) -> str:
    return f"key#{key_id}"


def periods(at: datetime) -> Periods:
    """The counter sort keys a call at `at` (UTC) adds to besides 'total': its month, week and day."""
    return periods_of_day(f"{at:%Y-%m-%d}")


@lru_cache(maxsize=16)
def periods_of_day(day: str) -> Periods:
    """The month, week and day counter sort keys of a UTC day written YYYY-MM-DD (metering writes,
    DynamoKeyStore reads)."""
    monday = date.fromisoformat(day) - timedelta(days=date.fromisoformat(day).weekday())
    return Periods(f"month#{day[:7]}", f"week#{monday.isoformat()}", f"day#{day}")


def limit_period(limit_reset: str | None, at: datetime) -> str:
    """The counter row a key's limit applies to at `at`: 'total', or the day, week or month it falls in."""
    if limit_reset is None:
        return TOTAL
    return getattr(periods(at), {"daily": "day", "weekly": "week", "monthly": "month"}[limit_reset])
