import time

import pytest

from shared.aws.dynamodb import Table
from shared.errors import StorageError
from shared.metering import DeadLetters, DynamoUsageStore, Meter, UsageEvent, cost_of
from shared.catalog import Pricing


def event(i: int, key: str = "k1", cost: float = 0.25) -> UsageEvent:
    return UsageEvent(id=f"gen-{i}", key_id=key, created_at=time.time(), model="sim/fast", lab="sim",
                      provider="sim", prompt_tokens=10, completion_tokens=5, cost=cost)


def counters(gateway, key: str = "k1") -> dict:
    return Table(gateway.settings.counters_table).get({"pk": f"key#{key}", "period": "total"}) or {}


def meter_over(gateway, store) -> Meter:
    """A meter writing to `store`, its dead letters in the gateway's counters table."""
    return Meter(store, interval=0.01, dead_letters=DeadLetters(gateway.settings.counters_table, 30))


def test_cost_is_per_million_tokens_and_zero_for_zero_tokens():
    assert cost_of(Pricing(prompt=2.5, completion=10), 1000, 500) == pytest.approx(0.0075)
    assert cost_of(Pricing(prompt=2.5, completion=10), 0, 0) == 0


def test_record_and_counters_are_written_together(gateway):
    writer = gateway.usage
    writer.write([event(1), event(2, cost=0.5), event(3, key="k2")])
    assert Table(gateway.settings.usage_table).get({"id": "gen-2"})["cost"] == 0.5
    c = counters(gateway)
    assert c["cost"] == pytest.approx(0.75) and c["requests"] == 2 and c["prompt_tokens"] == 20
    assert counters(gateway, "k2")["requests"] == 1


def test_a_retried_write_never_double_counts(gateway):
    writer = gateway.usage
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
    class Broken(DynamoUsageStore):
        fail = True

        def write(self, events):
            if self.fail:
                raise StorageError("down")
            return super().write(events)

    writer = Broken(gateway.settings.usage_table, gateway.settings.counters_table, 30)
    meter = meter_over(gateway, writer)
    meter.record(event(1))
    assert meter.flush() == 0 and meter.backlog == 1 and meter.failures == 1
    writer.fail = False
    assert meter.flush() == 1 and counters(gateway)["requests"] == 1


def test_one_event_dynamodb_refuses_cannot_hold_back_the_others(gateway, caplog):
    class Picky(DynamoUsageStore):
        def write(self, events):
            if any(e.id == "gen-bad" for e in events):
                raise StorageError("refused", metadata={"aws_code": "ValidationException"})
            return super().write(events)

    meter = meter_over(gateway, Picky(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    for i in (1, 2):
        meter.record(event(i))
    meter.record(UsageEvent(id="gen-bad", key_id="k1", created_at=time.time(), model="m", lab="l"))
    meter.record(event(3))
    with caplog.at_level("ERROR", logger="switchyard.metering"):
        assert meter.flush() == 4
    assert meter.backlog == 0 and meter.dead_letters.count == 1 and "gen-bad" in caplog.text
    assert counters(gateway)["requests"] == 3  # the three good events, each once
    assert [d["record"]["id"] for d in meter.dead_letters.list()] == ["gen-bad"]  # kept, not dropped


def test_passing_failures_keep_the_rest_pending_during_a_one_by_one_pass(gateway):
    class Flaky(DynamoUsageStore):
        def write(self, events):
            if len(events) > 1:
                raise StorageError("refused", metadata={"reasons": ["ValidationError"]})
            if events[0].id == "gen-2":
                raise StorageError("throttled", metadata={"aws_code": "ThrottlingException"})
            return super().write(events)

    meter = meter_over(gateway, Flaky(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    for i in (1, 2, 3):
        meter.record(event(i))
    assert meter.flush() == 1 and meter.backlog == 2 and meter.dead_letters.count == 0


def test_a_cost_in_exponent_notation_is_written_as_a_plain_decimal(gateway):
    """repr(7e-06) is '7e-06': moto's ADD ran int() on it and every later batch queued behind it."""
    meter = gateway.meter
    meter.record(event(1, cost=0.25))
    assert meter.flush() == 1
    meter.record(event(2, cost=7e-06))  # ADDed to an existing counter
    assert meter.flush() == 1
    meter.record(event(3, cost=1e-07))
    meter.record(event(4))
    assert meter.flush() == 2 and meter.backlog == 0 and meter.dead_letters.count == 0
    assert counters(gateway)["cost"] == pytest.approx(0.500007 + 1e-07)
    assert Table(gateway.settings.usage_table).get({"id": "gen-2"})["cost"] == pytest.approx(7e-06)


class Poisoned(DynamoUsageStore):
    """Fails any batch holding `gen-bad` the way a crashed server does: an error with no name."""

    calls = 0

    def write(self, events):
        self.calls += 1
        if any(e.id == "gen-bad" for e in events):
            raise StorageError("Storage is unavailable (TransactWriteItems: 500)", metadata={"http_status": 500})
        return super().write(events)


def test_a_poison_event_is_set_aside_and_every_other_event_lands(gateway, caplog):
    writer = Poisoned(gateway.settings.usage_table, gateway.settings.counters_table, 30)
    meter = meter_over(gateway, writer)
    meter.record(event(0))
    meter.record(UsageEvent(id="gen-bad", key_id="k1", created_at=time.time(), model="m", lab="l", cost=1.0))
    for i in range(1, 40):
        meter.record(event(i))
    with caplog.at_level("ERROR", logger="switchyard.metering"):
        assert meter.flush() == 41
    assert meter.backlog == 0 and meter.dead_letters.count == 1 and "gen-bad" in caplog.text
    assert counters(gateway)["requests"] == 40
    assert writer.calls < 20  # found by halving, not one write per event
    letter, = meter.dead_letters.list()
    assert letter["record"]["id"] == "gen-bad" and letter["record"]["cost"] == 1.0 and "500" in letter["error"]


def test_a_poison_event_alone_is_set_aside_after_a_few_passes(gateway):
    meter = meter_over(gateway, Poisoned(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    meter.record(UsageEvent(id="gen-bad", key_id="k1", created_at=time.time(), model="m", lab="l"))
    flushes = 0
    while meter.backlog and flushes < 10:
        meter.flush()
        flushes += 1
    assert meter.backlog == 0 and meter.dead_letters.count == 1 and flushes <= 3


def test_an_outage_sets_nothing_aside_however_long_it_lasts(gateway):
    class Down(DynamoUsageStore):
        def write(self, events):
            raise StorageError("Storage is unavailable (TransactWriteItems: NewConnectionError)",
                               metadata={"aws_code": "", "transport": True})

    meter = meter_over(gateway, Down(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    for i in range(5):
        meter.record(event(i))
    for _ in range(10):
        assert meter.flush() == 0
    assert meter.backlog == 5 and meter.dead_letters.count == 0


def test_a_transaction_conflict_is_retried_not_isolated(gateway):
    class Contended(DynamoUsageStore):
        conflicts = 1

        def write(self, events):
            if self.conflicts:
                self.conflicts -= 1
                raise StorageError("usage transaction cancelled", metadata={"reasons": ["None", "TransactionConflict"]})
            return super().write(events)

    meter = meter_over(gateway, Contended(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    meter.record(event(1))
    meter.record(event(2))
    assert meter.flush() == 0 and meter.backlog == 2
    assert meter.flush() == 2 and meter.dead_letters.count == 0


def test_stop_drains_what_a_passing_failure_held_back(gateway):
    import asyncio

    class Once(DynamoUsageStore):
        down = 2

        def write(self, events):
            if self.down:
                self.down -= 1
                raise StorageError("throttled", metadata={"aws_code": "ThrottlingException"})
            return super().write(events)

    meter = meter_over(gateway, Once(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    for i in range(3):
        meter.record(event(i))
    asyncio.run(meter.stop(drain_seconds=5))
    assert meter.backlog == 0 and counters(gateway)["requests"] == 3


def test_dead_letters_are_replayed_once_their_cause_is_gone(gateway, capsys):
    from infra.dead_letters import main

    meter = meter_over(gateway, Poisoned(gateway.settings.usage_table, gateway.settings.counters_table, 30))
    meter.record(event(1))
    meter.record(UsageEvent(id="gen-bad", key_id="k1", created_at=time.time(), model="m", lab="l", cost=1.0))
    assert meter.flush() == 2 and meter.dead_letters.count == 1
    tables = ["--usage-table", gateway.settings.usage_table, "--counters-table", gateway.settings.counters_table]
    assert main(tables) == 0 and '"gen-bad"' in capsys.readouterr().out
    assert main([*tables, "--replay"]) == 0 and "1 replayed, 0 still refused" in capsys.readouterr().out
    assert Table(gateway.settings.usage_table).get({"id": "gen-bad"})["cost"] == 1.0
    assert counters(gateway)["requests"] == 2 and counters(gateway)["cost"] == pytest.approx(1.25)
    assert main([*tables, "--replay"]) == 0 and "0 replayed" in capsys.readouterr().out  # nothing left


def test_an_event_that_cannot_be_written_at_all_is_set_aside_not_left_at_the_head(gateway):
    """A cost that is not finite cannot be expressed in DynamoDB: it must not stall every record behind it."""
    meter = gateway.meter
    meter.record(event(1))
    meter.record(event(2, cost=float("inf")))
    meter.record(event(3))
    assert meter.flush() == 3 and meter.backlog == 0 and meter.dead_letters.count == 1
    assert counters(gateway)["requests"] == 2


def test_prices_are_finite_and_bounded():
    from pydantic import ValidationError

    for bad in (1e308, float("inf"), float("nan"), -1):
        with pytest.raises(ValidationError):
            Pricing(prompt=bad)


def test_a_dead_letter_without_a_model_is_replayed_too(gateway):
    from shared.metering import DeadLetters

    letters = DeadLetters(gateway.settings.counters_table, 30)
    refused = UsageEvent(id="gen-nomodel", key_id="k1", created_at=time.time(), model="", lab="", status="failed")
    letters.add(refused.to_record(30), "refused")
    assert letters.replay(gateway.usage) == (1, [])
    assert Table(gateway.settings.usage_table).get({"id": "gen-nomodel"})["status"] == "failed"


@pytest.fixture(params=["dynamodb", "memory"])
def usage(request):
    """The gateway's UsageStore, and the in-memory one: both keep the same contract."""
    from tests.stores import MemoryUsageStore

    return request.getfixturevalue("gateway").usage if request.param == "dynamodb" else MemoryUsageStore()


def test_a_usage_store_records_once_and_reads_by_id_and_by_model(usage):
    now = time.time()
    older, newer, other = event(1), event(2), event(3)
    older.created_at, newer.created_at, other.model = now - 60, now - 1, "sim/chat"
    assert usage.write([older, newer, other]) == []
    assert [e.id for e in usage.write([newer])] == ["gen-2"]  # written already: not again
    assert usage.get("gen-2")["cost"] == 0.25 and usage.get("gen-9") is None
    newest_first = [r["created_at"] for r in usage.for_model("sim/fast", since=now - 3600, limit=10)]
    assert newest_first == [round(now - 1, 3), round(now - 60, 3)]
    assert [r["created_at"] for r in usage.for_model("sim/fast", since=now - 3600, limit=1)] == [round(now - 1, 3)]
    assert [r["provider"] for r in usage.for_model("sim/fast", since=now - 30, limit=10)] == ["sim"]


def test_the_meter_writes_to_whatever_usage_store_it_is_given():
    from tests.stores import MemoryUsageStore

    store = MemoryUsageStore()
    meter = Meter(store, interval=0.01, dead_letters=DeadLetters("never-written", 30))
    for i in range(3):
        meter.record(event(i))
    assert meter.flush() == 3 and meter.backlog == 0 and sorted(store.records) == ["gen-0", "gen-1", "gen-2"]


def test_a_prompt_fingerprint_is_a_keyed_hmac_of_the_roles_and_texts_only():
    """HMAC-SHA256 under HMAC(pepper, label) of `role 0x1f text 0x1e` per message, 128 bits: the rankings
    compare fingerprints across days and releases, so the construction must not drift."""
    import hashlib
    import hmac

    from shared.chat.schema import parse_chat_request
    from shared.metering.fingerprint import PromptFingerprint

    def chat(messages: str) -> object:
        return parse_chat_request(('{"model": "sim/fast", "messages": %s}' % messages).encode())

    fingerprint = PromptFingerprint(lambda: b"a pepper")
    key = hmac.new(b"a pepper", b"switchyard usage: prompt fingerprint v1", hashlib.sha256).digest()
    expected = hmac.new(key, "system\x1fbe brief\x1euser\x1fa\nb\u00e9\x1e".encode(), hashlib.sha256).hexdigest()[:32]
    parts = '[{"role": "system", "content": "be brief"}, {"role": "user", "name": "x", "content": [' \
            '{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "https://e.com/i.png"}}, ' \
            '{"type": "text", "text": "b\u00e9"}]}]'
    assert fingerprint(chat(parts)) == expected
    assert fingerprint(chat(parts)) == PromptFingerprint(lambda: b"a pepper")(chat(parts))  # keyed once, reused
    assert fingerprint(chat(parts.replace('"system"', '"developer"'))) != expected
    assert PromptFingerprint(lambda: b"another")(chat(parts)) != expected
    assert fingerprint.of_texts([("user", "a\ud800")]) == hmac.new(key, "user\x1fa\ud800\x1e".encode(
        "utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]
