"""The audit trail: the hash chain against moto (edit, delete, truncate, reorder, forge), concurrent appends
from two stores, the log's reads, and an entry for each management action through the API."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from shared.audit import AuditLog, AuditQuery
from shared.audit import chain
from shared.aws.codec import item as to_item
from shared.aws import client


@dataclass
class Actor:
    key_id: str = "a1b2c3d4e5f6"
    label: str = "sk-sy-mgmt-v1-abc…xyz"
    name: str = "ops"


ACTOR = Actor()


@pytest.fixture
def log(aws):
    return AuditLog(aws["AuditTable"], lambda: b"test-pepper-not-secret")


def fill(log: AuditLog, n: int) -> list[dict]:
    return [log.append(action="key.update", actor=ACTOR, target=f"{i:012x}", before={"limit": i},
                       after={"limit": i + 1}, source_ip="10.0.0.1", request_id=f"gen-{i}") for i in range(n)]


def raw(aws) -> tuple[object, str]:
    return client("dynamodb"), aws["AuditTable"]


def stored(aws, seq: int) -> dict:
    from shared.aws.codec import plain
    ddb, table = raw(aws)
    return plain(ddb.get_item(TableName=table, Key=to_item({"pk": "log", "seq": seq}))["Item"])


def put(aws, item: dict) -> None:
    ddb, table = raw(aws)
    ddb.put_item(TableName=table, Item=to_item(item))


def delete(aws, pk: str, seq: int) -> None:
    ddb, table = raw(aws)
    ddb.delete_item(TableName=table, Key=to_item({"pk": pk, "seq": seq}))


# -- the chain ------------------------------------------------------------------------------------

def test_entries_are_numbered_linked_and_verify(log):
    entries = fill(log, 5)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == chain.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(entries, entries[1:]))
    assert entries[2]["actor"] == {"id": ACTOR.key_id, "label": ACTOR.label, "name": "ops"}
    assert entries[2]["at"].endswith("Z") and "T" in entries[2]["at"]
    verdict = log.verify()
    assert verdict.to_api() == {"valid": True, "entries": 5, "first_invalid": None, "problem": None,
                                "head": {"seq": 5, "hash": entries[-1]["hash"]}}


def test_an_empty_log_is_valid(log):
    assert log.verify().to_api() == {"valid": True, "entries": 0, "first_invalid": None, "problem": None,
                                     "head": None}


def test_an_edited_entry_is_found(aws, log):
    fill(log, 5)
    item = stored(aws, 3)
    item["body"] = item["body"].replace('"limit":3', '"limit":300')
    put(aws, item)
    verdict = log.verify()
    assert (verdict.valid, verdict.first_invalid, verdict.problem, verdict.entries) == (False, 3, "edited", 5)


def test_an_edited_index_copy_is_found(aws, log):
    """The fields queries filter on are copies of the body's: changing one (to hide an entry from a filter)
    is an edit too."""
    fill(log, 3)
    item = stored(aws, 2)
    item["actor_id"] = "ffffffffffff"
    put(aws, item)
    assert (log.verify().first_invalid, log.verify().problem) == (2, "edited")


def test_an_entry_resealed_without_the_pepper_is_found(aws, log):
    """Someone with the table but not the pepper re-hashes an edited entry with a key of their own."""
    fill(log, 4)
    item = stored(aws, 2)
    fields = __import__("orjson").loads(item["body"])
    fields["after"] = {"limit": 1_000_000}
    item["body"] = chain.canonical(fields)
    item["hash"] = chain.digest(chain.chain_key(b"a guess"), item["body"])
    put(aws, item)
    assert (log.verify().first_invalid, log.verify().problem) == (2, "edited")


def test_a_removed_entry_in_the_middle_is_found(aws, log):
    fill(log, 6)
    delete(aws, "log", 4)
    verdict = log.verify()
    assert (verdict.valid, verdict.first_invalid, verdict.problem, verdict.entries) == (False, 4, "missing", 5)


def test_a_removed_entry_renumbered_over_is_found(aws, log):
    """Entry 3 removed and the later ones moved down a number (each keeps its seal): the links break."""
    fill(log, 5)
    moved = [stored(aws, n) for n in (4, 5)]
    for n in (3, 4, 5):
        delete(aws, "log", n)
    for item, n in zip(moved, (3, 4)):
        put(aws, {**item, "seq": n})
    assert (log.verify().first_invalid, log.verify().problem) == (3, "broken_link")


def test_a_removed_tail_is_found(aws, log):
    fill(log, 5)
    delete(aws, "log", 5)
    delete(aws, "log", 4)
    verdict = log.verify()
    assert (verdict.valid, verdict.first_invalid, verdict.problem, verdict.entries) == (False, 4, "tail_removed", 3)


def test_a_removed_tail_with_the_head_rolled_back_is_found_by_an_anchor(aws, log):
    entries = fill(log, 5)
    anchor = (5, entries[-1]["hash"])
    delete(aws, "log", 5)
    put(aws, {"pk": "head", "seq": 0, "last_seq": 4, "hash": entries[3]["hash"], "at": entries[3]["at"]})
    assert log.verify().valid  # invisible from inside the table...
    verdict = log.verify(anchor)  # ...but not to whoever kept an earlier head
    assert (verdict.valid, verdict.first_invalid, verdict.problem) == (False, 5, "anchor")
    assert log.verify((3, entries[2]["hash"])).valid
    assert log.verify((3, entries[1]["hash"])).problem == "anchor"


def test_a_removed_head_is_found(aws, log):
    fill(log, 2)
    delete(aws, "head", 0)
    assert (log.verify().first_invalid, log.verify().problem) == (1, "head_mismatch")


def test_reordered_entries_are_found(aws, log):
    fill(log, 5)
    second, third = stored(aws, 2), stored(aws, 3)
    put(aws, {**third, "seq": 2})
    put(aws, {**second, "seq": 3})
    verdict = log.verify()
    assert (verdict.valid, verdict.first_invalid, verdict.problem) == (False, 2, "broken_link")


def test_an_entry_forged_past_the_head_is_found(aws, log):
    entries = fill(log, 2)
    put(aws, {"pk": "log", "seq": 3, "body": "{}", "hash": "0" * 64, "at": entries[-1]["at"], "action": "x",
              "actor_id": "x", "target": "x"})
    assert (log.verify().first_invalid, log.verify().problem) == (3, "head_mismatch")


def test_appends_continue_the_chain_after_verify_and_a_new_store(aws, log):
    fill(log, 2)
    other = AuditLog(aws["AuditTable"], lambda: b"test-pepper-not-secret")
    fill(other, 2)
    assert log.verify().entries == 4 and log.verify().valid


def test_a_store_with_another_pepper_breaks_verification(aws, log):
    fill(log, 2)
    other = AuditLog(aws["AuditTable"], lambda: b"another-pepper")
    assert other.verify().to_api()["first_invalid"] == 1


def test_concurrent_appends_from_two_stores_keep_the_chain(aws):
    stores = [AuditLog(aws["AuditTable"], lambda: b"test-pepper-not-secret") for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(store: AuditLog, who: int) -> None:
        barrier.wait()
        try:
            for i in range(15):
                store.append(action="key.create", actor=ACTOR, target=f"{who}-{i}")
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    verdict = stores[0].verify()
    assert verdict.valid and verdict.entries == 30 and verdict.head["seq"] == 30
    targets = [e["target"] for e in stores[0].export(AuditQuery())]
    assert sorted(targets) == sorted(f"{w}-{i}" for w in range(2) for i in range(15))  # each once, none lost


def test_secrets_are_never_kept_whatever_a_caller_passes(log):
    e = log.append(action="key.rotate", actor=ACTOR, target="k", before={"secret_hash": "0badc0ffee99", "name": "x"},
                   after={"name": "x", "nested": [{"token": "sk-sy-v1-secret", "ok": 1}]})
    assert e["before"] == {"name": "x"} and e["after"] == {"name": "x", "nested": [{"ok": 1}]}
    assert "0badc0ffee99" not in str(e) and "sk-sy-v1-secret" not in str(e)


def test_a_huge_before_after_is_kept_as_a_digest(log):
    e = log.append(action="route.put", actor=ACTOR, target="r", after={"blob": "x" * 400_000})
    assert e["after"]["omitted"] and len(e["after"]["sha256"]) == 64
    assert log.verify().valid


def test_times_never_go_backwards_along_the_chain(aws):
    clock = iter([1000.0, 900.0, 1100.0])
    log = AuditLog(aws["AuditTable"], lambda: b"p", clock=lambda: next(clock))
    ats = [log.append(action="a", actor=ACTOR, target="t")["at"] for _ in range(3)]
    assert ats == sorted(ats) and ats[0] == ats[1]


# -- reads ----------------------------------------------------------------------------------------

def test_search_is_newest_first_with_filters_and_a_cursor(aws):
    clock = iter(float(1_700_000_000 + 60 * i) for i in range(100))
    log = AuditLog(aws["AuditTable"], lambda: b"p", clock=lambda: next(clock))
    for i in range(10):
        log.append(action="key.create" if i % 2 else "route.put", actor=Actor(key_id=f"actor{i % 3:07d}"),
                   target=f"t{i}")
    page, cursor = log.search(AuditQuery(), limit=4)
    assert [e["seq"] for e in page] == [10, 9, 8, 7] and cursor == 7
    page, cursor = log.search(AuditQuery(), limit=4, cursor=cursor)
    assert [e["seq"] for e in page] == [6, 5, 4, 3]
    page, cursor = log.search(AuditQuery(), limit=4, cursor=cursor)
    assert [e["seq"] for e in page] == [2, 1] and cursor is None
    assert [e["seq"] for e in log.search(AuditQuery(action="key.create"), limit=50)[0]] == [10, 8, 6, 4, 2]
    assert [e["seq"] for e in log.search(AuditQuery(action="key.*"), limit=50)[0]] == [10, 8, 6, 4, 2]
    assert [e["seq"] for e in log.search(AuditQuery(actor="actor0000000"), limit=50)[0]] == [10, 7, 4, 1]
    assert [e["seq"] for e in log.search(AuditQuery(target="t3"), limit=50)[0]] == [4]
    all_ = log.search(AuditQuery(), limit=50)[0]
    start, end = all_[7]["at"], all_[2]["at"]  # seq 3 .. 8
    assert [e["seq"] for e in log.search(AuditQuery(start=start, end=end), limit=50)[0]] == [8, 7, 6, 5, 4, 3]
    assert [e["seq"] for e in log.export(AuditQuery(start=start, end=end))] == [3, 4, 5, 6, 7, 8]


def test_a_sparse_filter_answers_with_a_cursor_to_go_on(log):
    fill(log, 5)
    page, cursor = log.search(AuditQuery(target="nothing"), limit=10, max_read=3)
    assert page == [] and cursor == 3
    assert log.search(AuditQuery(target="nothing"), limit=10, cursor=cursor, max_read=3) == ([], None)


def test_an_append_that_lost_the_race_seals_again_on_top(aws, log):
    """A reads the head, B appends, A's transaction is refused: A seals its entry again after B's."""
    fill(log, 1)
    stale = log.head()
    fill(AuditLog(aws["AuditTable"], lambda: b"test-pepper-not-secret"), 1)
    reads = iter([stale])
    fresh = log.head
    log.head = lambda: next(reads, None) or fresh()  # type: ignore[method-assign]
    e = log.append(action="key.delete", actor=ACTOR, target="late")
    assert e["seq"] == 3 and e["prev_hash"] == stored(aws, 2)["hash"]
    assert log.verify().valid and log.verify().entries == 3
