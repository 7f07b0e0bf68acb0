"""Metering: one usage record per call, written together with the key's spend counters, off the request path.

    events.py        UsageEvent (what a call records: never prompt or completion) and cost_of
    store.py         UsageStore: where records are written and read; DynamoUsageStore, its DynamoDB one
    writer.py        UsageWriter: one idempotent DynamoDB transaction per batch (records, counters, holds)
    meter.py         Meter: collects events, flushes them in batches, isolates what DynamoDB will not take
    dead_letters.py  DeadLetters: the records set aside, kept in the counters table
    stats.py         EndpointStats: per-endpoint health from a model's recent records
"""

from shared.metering.dead_letters import DeadLetters
from shared.metering.events import Status, UsageEvent, cost_of
from shared.metering.meter import Meter
from shared.metering.store import DynamoUsageStore, UsageStore
from shared.metering.writer import UsageWriter

__all__ = ["DeadLetters", "DynamoUsageStore", "Meter", "Status", "UsageEvent", "UsageStore", "UsageWriter",
           "cost_of"]
