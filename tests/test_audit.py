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


# -- through the API ------------------------------------------------------------------------------

def _admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


def _entries(client, keys, **params):
    r = client.get("/api/v1/audit", headers=_admin(keys), params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_key_actions_are_audited_with_actor_address_request_and_no_secret(client, keys, gateway):
    admin = _admin(keys)
    made = client.post("/api/v1/keys", headers=admin, json={"name": "app", "limit": 2})
    token, key = made.json()["key"], made.json()["data"]["hash"]
    patched = client.patch(f"/api/v1/keys/{key}", headers=admin, json={"limit": 3, "allowed_models": ["sim/*"]})
    rotated = client.post(f"/api/v1/keys/{key}/rotate", headers=admin, json={"grace_seconds": 60})
    deleted = client.delete(f"/api/v1/keys/{key}", headers=admin)
    entries = _entries(client, keys, target=key)
    assert [e["action"] for e in entries] == ["key.delete", "key.rotate", "key.update", "key.create"]
    create, update, rotate, delete = entries[::-1]
    admin_key = next(k for k in gateway.keys.list(kind="management"))
    assert create["actor"] == {"id": admin_key.key_id, "label": admin_key.label, "name": "admin"}
    assert create["source_ip"] == "testclient"  # the ASGI client's address, as client_address reads it
    ids = [e["request_id"] for e in (create, update, rotate, delete)]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 4  # each request's generation id
    assert all(r.status_code == 200 for r in (patched, rotated, deleted)) and made.status_code == 201
    assert create["before"] is None and create["after"]["limit"] == 2
    assert (update["before"]["limit"], update["after"]["limit"]) == (2, 3)
    assert update["after"]["allowed_models"] == ["sim/*"]
    assert rotate["after"]["grace_seconds"] == 60 and delete["after"] is None and delete["before"]["hash"] == key
    everything = client.get("/api/v1/audit/export?format=jsonl", headers=admin).text
    stored = gateway.keys.keys.scan()
    for secret in (token, rotated.json()["key"], *(i["secret_hash"] for i in stored)):
        assert secret not in everything
    assert "secret_hash" not in everything


def test_a_refused_action_leaves_no_entry(client, keys):
    admin = _admin(keys)
    assert client.patch("/api/v1/keys/000000000000", headers=admin, json={"name": "x"}).status_code == 404
    assert client.post("/api/v1/keys", headers=admin, json={"name": "x", "limit": -1}).status_code == 400
    assert _entries(client, keys) == []


def test_catalog_and_route_changes_are_audited(client, keys):
    admin = _admin(keys)
    provider = {"id": "acme", "kind": "sim"}
    assert client.put("/api/v1/catalog/providers", headers=admin, json=provider).status_code == 200
    model = {"id": "acme/small", "provider": "acme", "upstream_model": "small", "context_length": 1000,
             "pricing": {"prompt": 1, "completion": 2}}
    assert client.put("/api/v1/catalog/models", headers=admin, json=model).status_code == 200, "model"
    model["pricing"] = {"prompt": 3, "completion": 4}
    assert client.put("/api/v1/catalog/models", headers=admin, json=model).status_code == 200
    assert client.patch("/api/v1/catalog/models/acme/small", headers=admin, json={"hidden": True}).status_code == 200
    assert client.patch("/api/v1/catalog/models/acme/small", headers=admin, json={"hidden": False}).status_code == 200
    route = {"id": "acme/default", "default": {"model": "acme/small"}}
    assert client.put("/api/v1/routes", headers=admin, json=route).status_code == 200
    assert client.delete("/api/v1/routes/acme/default", headers=admin).status_code == 200
    assert client.delete("/api/v1/catalog/models/acme/small?provider=acme", headers=admin).status_code == 200
    assert client.delete("/api/v1/catalog/providers/acme", headers=admin).status_code == 200
    entries = _entries(client, keys)[::-1]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("catalog.provider.put", "acme"), ("catalog.model.put", "acme/small"), ("catalog.model.put", "acme/small"),
        ("catalog.model.hide", "acme/small"), ("catalog.model.show", "acme/small"), ("route.put", "acme/default"),
        ("route.delete", "acme/default"), ("catalog.model.delete", "acme/small"),
        ("catalog.provider.delete", "acme")]
    first, second = entries[1], entries[2]
    assert first["before"] is None and second["before"]["pricing"]["prompt"] == 1
    assert second["after"]["pricing"]["prompt"] == 3
    assert (entries[3]["before"], entries[3]["after"]) == ({"id": "acme/small", "hidden": False},
                                                           {"id": "acme/small", "hidden": True})
    assert entries[6]["before"]["default"]["model"] == "acme/small" and entries[8]["before"]["id"] == "acme"
    assert client.get("/api/v1/audit/verify", headers=admin).json()["valid"] is True


def test_a_rankings_run_is_audited(client, keys, monkeypatch):
    from functions.gateway.routes import rankings as route

    monkeypatch.setenv("SWITCHYARD_RANKINGS_FUNCTION", "switchyard-RankingsFunction")
    monkeypatch.setattr(route, "_invoke", lambda function, run: None)
    r = client.post("/api/v1/rankings/runs", json={"date": "2025-12-02"}, headers=_admin(keys))
    assert r.status_code == 202
    (entry,) = _entries(client, keys, action="rankings.*")
    assert entry["target"] == r.json()["data"]["id"] and entry["after"]["date"] == "2025-12-02"


def test_the_audit_api_filters_pages_exports_and_verifies(client, keys, gateway):
    admin = _admin(keys)
    for i in range(5):
        client.post("/api/v1/keys", headers=admin, json={"name": f"k{i}"})
    page = client.get("/api/v1/audit?limit=2", headers=admin).json()
    assert [e["seq"] for e in page["data"]] == [5, 4] and page["next_cursor"] == "4"
    rest = client.get(f"/api/v1/audit?limit=10&cursor={page['next_cursor']}", headers=admin).json()
    assert [e["seq"] for e in rest["data"]] == [3, 2, 1] and rest["next_cursor"] is None
    at = page["data"][1]["at"]
    since = _entries(client, keys, **{"from": at})  # times are to the millisecond: seq 3 may share 4's
    assert [e["seq"] for e in since][:2] == [5, 4] and all(e["at"] >= at for e in since)
    assert _entries(client, keys, to="2000-01-01") == []
    assert len(_entries(client, keys, **{"from": at[:10]})) == 5  # a date: from its start
    actor = page["data"][0]["actor"]["id"]
    assert len(_entries(client, keys, actor=actor)) == 5 and _entries(client, keys, actor="ffffffffffff") == []
    lines = client.get("/api/v1/audit/export?format=jsonl", headers=admin).text.splitlines()
    assert [__import__("json").loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    csv_text = client.get("/api/v1/audit/export?format=csv", headers=admin)
    assert csv_text.headers["content-type"].startswith("text/csv")
    rows = list(__import__("csv").DictReader(csv_text.text.splitlines()))
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5"] and rows[0]["actor"] == actor
    verdict = client.get("/api/v1/audit/verify", headers=admin).json()
    assert verdict["valid"] and verdict["entries"] == 5 and verdict["head"]["seq"] == 5
    anchor = f"{verdict['head']['seq']}:{verdict['head']['hash']}"
    assert client.get(f"/api/v1/audit/verify?anchor={anchor}", headers=admin).json()["valid"]


@pytest.mark.parametrize("query", ["from=yesterday", "to=2026-13-01", "limit=0", "limit=501", "cursor=-1",
                                   "cursor=abc", "nope=1", "action=a&action=b", "from=2026-02-01&to=2026-01-01"])
def test_bad_audit_queries_are_a_400(client, keys, query):
    r = client.get(f"/api/v1/audit?{query}", headers=_admin(keys))
    assert r.status_code == 400 and r.json()["error"]["code"] == 400, r.text


@pytest.mark.parametrize("path", ["/api/v1/audit/export?format=xml", "/api/v1/audit/verify?anchor=5",
                                  "/api/v1/audit/verify?anchor=0:" + "0" * 64, "/api/v1/audit/calls",
                                  "/api/v1/audit/calls?key=XYZ", "/api/v1/audit/calls?key=0123456789ab&format=xml",
                                  "/api/v1/audit/calls?key=0123456789ab&cursor=%%%",
                                  "/api/v1/audit/calls?key=0123456789ab&cursor=eyJ4IjoxfQ"])
def test_bad_export_verify_and_calls_queries_are_a_400(client, keys, path):
    r = client.get(path, headers=_admin(keys))
    assert r.status_code == 400 and r.json()["error"]["code"] == 400, r.text


def test_a_keys_calls_are_read_back_with_ip_and_user_agent_and_exported(client, keys, gateway):
    from shared.metering import UsageEvent

    admin = _admin(keys)
    _, key = gateway.keys.create("caller")
    _, other = gateway.keys.create("other")
    base = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    events = [UsageEvent(id=f"gen-{i}", key_id=key.key_id, created_at=base + 60 * i, model="sim/fast", lab="sim",
                         provider="sim", prompt_tokens=10 + i, completion_tokens=5, cost=0.001 * i,
                         client_ip="203.0.113.7", user_agent="=HYPERLINK(\"x\")" if i == 0 else "curl/8",
                         status="completed") for i in range(5)]
    events.append(UsageEvent(id="gen-other", key_id=other.key_id, created_at=base, model="sim/fast", lab="sim"))
    gateway.usage.write(events)
    url = f"/api/v1/audit/calls?key={key.key_id}"
    page = client.get(url + "&limit=2", headers=admin).json()
    assert [c["id"] for c in page["data"]] == ["gen-4", "gen-3"] and page["next_cursor"]
    call = page["data"][0]
    assert (call["client_ip"], call["user_agent"], call["model"], call["prompt_tokens"], call["status"]) == \
        ("203.0.113.7", "curl/8", "sim/fast", 14, "completed")
    assert call["created_at"] == "2026-01-01T00:04:00.000Z"
    rest = client.get(url + f"&cursor={page['next_cursor']}", headers=admin).json()
    assert [c["id"] for c in rest["data"]] == ["gen-2", "gen-1", "gen-0"] and rest["next_cursor"] is None
    ranged = client.get(url + "&from=2026-01-01T00:01:00Z&to=2026-01-01T00:03:00Z", headers=admin).json()
    assert [c["id"] for c in ranged["data"]] == ["gen-3", "gen-2", "gen-1"]
    exported = client.get(url + "&format=csv", headers=admin)
    rows = list(__import__("csv").DictReader(exported.text.splitlines()))
    assert [r["id"] for r in rows] == ["gen-4", "gen-3", "gen-2", "gen-1", "gen-0"]
    assert rows[-1]["user_agent"].startswith("'=")  # never run as a spreadsheet formula
    assert client.get(f"/api/v1/audit/calls?key={other.key_id}", headers=admin).json()["data"][0]["id"] == "gen-other"
