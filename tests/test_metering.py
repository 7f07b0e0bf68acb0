import time

import pytest

from shared.aws.dynamodb import Table
from shared.errors import StorageError
from shared.metering import Meter, UsageEvent, UsageWriter, cost_of
from shared.catalog import Pricing


def event(i: int, key: str = "k1", cost: float = 0.25) -> UsageEvent:
    return UsageEvent(id=f"gen-{i}", key_id=key, created_at=time.time(), model="sim/fast", lab="sim",
                      provider="sim", prompt_tokens=10, completion_tokens=5, cost=cost)


def counters(gateway, key: str = "k1") -> dict:
    return Table(gateway.settings.counters_table).get({"pk": f"key#{key}", "period": "total"}) or {}


def test_cost_is_per_million_tokens_and_zero_for_zero_tokens():
    assert cost_of(Pricing(prompt=2.5, completion=10), 1000, 500) == pytest.approx(0.0075)
    assert cost_of(Pricing(prompt=2.5, completion=10), 0, 0) == 0


def test_record_and_counters_are_written_together(gateway):
    writer = gateway.meter.writer
    writer.write([event(1), event(2, cost=0.5), event(3, key="k2")])
    assert Table(gateway.settings.usage_table).get({"id": "gen-2"})["cost"] == 0.5
    c = counters(gateway)
    assert c["cost"] == pytest.approx(0.75) and c["requests"] == 2 and c["prompt_tokens"] == 20
    assert counters(gateway, "k2")["requests"] == 1


def test_a_retried_write_never_double_counts(gateway):
    writer = gateway.meter.writer
    writer.write([event(1), event(2)])
    skipped = writer.write([event(1), event(2)])  # the same batch again (a retry after a lost answer)
    assert {e.id for e in skipped} == {"gen-1", "gen-2"}
    assert counters(gateway)["requests"] == 2
    skipped = writer.write([event(2), event(3)])  # a batch mixing a duplicate with a new call
    assert [e.id for e in skipped] == ["gen-2"]
    assert counters(gateway)["requests"] == 3 and counters(gateway)["cost"] == pytest.approx(0.75)


def test_the_record_never_holds_prompt_or_completion_text():
    fields = set(UsageEvent.__dataclass_fields__)
    assert not fields & {"messages", "prompt", "completion", "content", "text"}


def test_meter_batches_all_pending_events(gateway):
    meter = gateway.meter
    for i in range(60):
        meter.record(event(i, cost=0.01))
    meter.record(event(0, cost=0.01))  # the same request id twice is recorded once
    assert meter.backlog == 60
    assert meter.flush() == 60 and meter.backlog == 0
    assert counters(gateway)["requests"] == 60


def test_failed_writes_keep_events_for_the_next_flush(gateway):
    class Broken(UsageWriter):
        fail = True

        def write(self, events):
            if self.fail:
                raise StorageError("down")
            return super().write(events)

    writer = Broken(gateway.settings.usage_table, gateway.settings.counters_table, 30)
    meter = Meter(writer, interval=0.01)
    meter.record(event(1))
    assert meter.flush() == 0 and meter.backlog == 1 and meter.failures == 1
    writer.fail = False
    assert meter.flush() == 1 and counters(gateway)["requests"] == 1


def test_one_event_dynamodb_refuses_cannot_hold_back_the_others(gateway, caplog):
    class Picky(UsageWriter):
        def write(self, events):
            if any(e.id == "gen-bad" for e in events):
                raise StorageError("refused", metadata={"aws_code": "ValidationException"})
            return super().write(events)

    meter = Meter(Picky(gateway.settings.usage_table, gateway.settings.counters_table, 30), interval=0.01)
    for i in (1, 2):
        meter.record(event(i))
    meter.record(UsageEvent(id="gen-bad", key_id="k1", created_at=time.time(), model="m", lab="l"))
    meter.record(event(3))
    with caplog.at_level("ERROR", logger="switchyard.metering"):
        assert meter.flush() == 4
    assert meter.backlog == 0 and meter.dropped == 1 and "gen-bad" in caplog.text
    assert counters(gateway)["requests"] == 3  # the three good events, each once


def test_passing_failures_keep_the_rest_pending_during_a_one_by_one_pass(gateway):
    class Flaky(UsageWriter):
        def write(self, events):
            if len(events) > 1:
                raise StorageError("refused", metadata={"reasons": ["ValidationError"]})
            if events[0].id == "gen-2":
                raise StorageError("throttled", metadata={"aws_code": "ThrottlingException"})
            return super().write(events)

    meter = Meter(Flaky(gateway.settings.usage_table, gateway.settings.counters_table, 30), interval=0.01)
    for i in (1, 2, 3):
        meter.record(event(i))
    assert meter.flush() == 1 and meter.backlog == 2 and meter.dropped == 0
