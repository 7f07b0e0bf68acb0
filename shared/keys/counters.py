"""The counters table's layout, shared by metering (which writes spend) and keys (which read it and hold it).

    pk "key#<key id>"   period "total"            cost, requests, prompt_tokens, completion_tokens,
                                                  committed, holds {request id: {"a": USD, "t": epoch s}}
                        period "month#YYYY-MM"    the same sums for a UTC month
                        period "day#YYYY-MM-DD"   ... and a UTC day (expires after the retention)
    pk "dead-letter"    period "<time>#<request>" a usage record DynamoDB would not take (shared/metering)

`committed` is spend plus what is held for calls in flight: a limit is enforced on it, atomically, by the
reservation (shared/keys/spend.py); the usage record's transaction settles a hold into `cost` (shared/metering).
"""

from __future__ import annotations

from datetime import datetime

TOTAL = "total"


def counter_key(key_id: str) -> str:
    return f"key#{key_id}"


def periods(at: datetime) -> tuple[str, str]:
    """The counter sort keys a call at `at` adds to besides 'total': its UTC month and day."""
    return periods_of_day(f"{at:%Y-%m-%d}")


def periods_of_day(day: str) -> tuple[str, str]:
    """The month and day counter sort keys of a UTC day written YYYY-MM-DD (metering writes, DynamoKeyStore reads)."""
    return f"month#{day[:7]}", f"day#{day}"
