"""The model approval workflow: off by default; on, no key may call a model not approved (its requests listed,
in bounded writes); approve, reject, revoke; policies and fallbacks screened too; every process follows within
the refresh interval; bad input a 4xx."""

import threading

import pytest

from shared.errors import StorageError
from shared.governance.source import GovernanceSource
from shared.governance.store import DynamoGovernanceStore
from tests.stores import MemoryGovernanceStore

CHAT = "/api/v1/chat/completions"


def chat(model="sim/fast", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def admin(keys):
    return {"Authorization": f"Bearer {keys['admin']}"}


@pytest.fixture
def dev(keys):
    return {"Authorization": f"Bearer {keys['dev']}"}


def approval_on(client, admin):
    response = client.put("/api/v1/governance", headers=admin, json={"model_approval": "on"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["model_approval"] == "on"


def decide(client, admin, model, decision, note=None):
    response = client.post(f"/api/v1/approvals/{model}", headers=admin,
                           json={"decision": decision, **({"note": note} if note else {})})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def listed(client, admin, **query):
    response = client.get("/api/v1/approvals", headers=admin, params=query)
    assert response.status_code == 200, response.text
    return {a["model"]: a for a in response.json()["data"]}


def test_approval_is_off_by_default_and_any_model_is_callable(client, admin, dev):
    settings = client.get("/api/v1/governance", headers=admin).json()["data"]
    assert settings["model_approval"] == "off" and settings["residency"] is None
    assert client.post(CHAT, headers=dev, json=chat()).status_code == 200
    assert listed(client, admin) == {}  # nothing refused, nothing listed


def test_on_a_model_not_approved_is_refused_for_every_key_and_listed(client, admin, gateway):
    approval_on(client, admin)
    (one, first), (two, second) = gateway.keys.create("one"), gateway.keys.create("two")
    for token in (one, one, two):
        refused = client.post(CHAT, headers={"Authorization": f"Bearer {token}"}, json=chat())
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["metadata"]["reason"] == "model_not_approved" and error["metadata"]["models"] == ["sim/fast"]
        assert error["metadata"]["error_type"] == "forbidden" and "approval" in error["message"]
    pending = listed(client, admin, status="pending")["sim/fast"]
    assert pending["requests"] == 3 and pending["status"] == "pending"
    assert sorted(pending["key_ids"]) == sorted([first.key_id, second.key_id])
    assert pending["first_requested"] <= pending["last_requested"] and pending["first_requested"].endswith("Z")
    gateway.meter.flush()
    records = gateway.usage.for_model("sim/fast", since=0, limit=10)
    assert [(r["status"], r["error_code"]) for r in records] == [("failed", 403)] * 3  # each refusal is metered


def test_approve_makes_it_callable_reject_and_revoke_refuse_it(client, admin, dev):
    approval_on(client, admin)
    assert client.post(CHAT, headers=dev, json=chat()).status_code == 403
    approved = decide(client, admin, "sim/fast", "approve", note="ticket GOV-1")
    assert approved["status"] == "approved" and approved["note"] == "ticket GOV-1" and approved["requests"] == 1
    assert client.post(CHAT, headers=dev, json=chat()).status_code == 200
    assert client.post(CHAT, headers=dev, json=chat("sim/fast:floor")).status_code == 200  # a variant is its model
    revoked = client.post("/api/v1/approvals/sim/fast/revoke", headers=admin, json={"note": "vendor review"})
    assert revoked.status_code == 200 and revoked.json()["data"]["status"] == "revoked"
    assert client.post(CHAT, headers=dev, json=chat()).json()["error"]["metadata"]["reason"] == "model_not_approved"
    again = client.post("/api/v1/approvals/sim/fast/revoke", headers=admin, json={})
    assert again.status_code == 409 and again.json()["error"]["metadata"]["reason"] == "not_approved"
    assert decide(client, admin, "sim/chat", "reject")["status"] == "rejected"  # decided before anyone asked
    assert client.post(CHAT, headers=dev, json=chat("sim/chat")).status_code == 403
    rows = listed(client, admin)
    assert rows["sim/fast"]["status"] == "revoked" and rows["sim/fast"]["requests"] == 2
    assert rows["sim/chat"]["status"] == "rejected" and rows["sim/chat"]["requests"] == 1
    assert set(listed(client, admin, status="rejected")) == {"sim/chat"}


def test_turning_approval_off_lets_every_model_through_again_and_keeps_the_list(client, admin, dev):
    approval_on(client, admin)
    assert client.post(CHAT, headers=dev, json=chat()).status_code == 403
    off = client.put("/api/v1/governance", headers=admin, json={"model_approval": False})
    assert off.json()["data"]["model_approval"] == "off"
    assert client.post(CHAT, headers=dev, json=chat()).status_code == 200
    assert listed(client, admin)["sim/fast"]["status"] == "pending"


def test_fallbacks_in_the_request_are_checked_before_anything_is_tried(client, admin, dev):
    approval_on(client, admin)
    decide(client, admin, "sim/fast", "approve")
    refused = client.post(CHAT, headers=dev, json=chat(models=["sim/fast", "sim/chat", "sim/long-context"]))
    assert refused.status_code == 403
    assert refused.json()["error"]["metadata"]["models"] == ["sim/chat", "sim/long-context"]
    assert {"sim/chat", "sim/long-context"} <= set(listed(client, admin, status="pending"))


def test_a_policy_is_screened_through_the_models_it_routes_to(client, admin, dev):
    approval_on(client, admin)
    # switchyard/fallback-demo: sim/down (fails with 503), then sim/fast. Neither approved: refused, both listed
    refused = client.post(CHAT, headers=dev, json=chat("switchyard/fallback-demo"))
    assert refused.status_code == 403 and refused.json()["error"]["metadata"]["reason"] == "model_not_approved"
    assert set(listed(client, admin)) == {"sim/down", "sim/fast"}
    # only the fallback approved: the unapproved head is skipped, never tried, and the fallback answers
    decide(client, admin, "sim/fast", "approve")
    served = client.post(CHAT, headers=dev, json=chat("switchyard/fallback-demo"))
    assert served.status_code == 200 and served.json()["model"] == "sim/fast"
    assert listed(client, admin)["sim/down"]["requests"] == 2  # screened out (and asked for again), not tried
    # only the head approved: it fails, the unapproved fallback is not used, and the upstream's failure is answered
    client.post("/api/v1/approvals/sim/fast/revoke", headers=admin, json={})
    decide(client, admin, "sim/down", "approve")
    failed = client.post(CHAT, headers=dev, json=chat("switchyard/fallback-demo"))
    assert failed.status_code in (502, 503) and failed.json()["error"]["metadata"].get("reason") != "model_not_approved"


def test_bad_governance_input_is_a_clear_4xx(client, admin, dev):
    for body, field in (({"model_approval": "maybe"}, "model_approval"), ({"residency": ["mars"]}, "residency"),
                        ({"residency": []}, "residency"), ({"surprise": 1}, "surprise")):
        response = client.put("/api/v1/governance", headers=admin, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["metadata"]["field"].startswith(field)
    bad = client.post("/api/v1/approvals/sim/fast", headers=admin, json={"decision": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["metadata"]["field"] == "decision"
    unknown = client.post("/api/v1/approvals/nobody/nothing", headers=admin, json={"decision": "approve"})
    assert unknown.status_code == 404 and unknown.json()["error"]["metadata"]["model"] == "nobody/nothing"
    assert client.get("/api/v1/approvals", headers=admin, params={"status": "odd"}).status_code == 400
    assert client.put("/api/v1/governance", headers=dev, json={"model_approval": "on"}).status_code == 403
    assert client.get("/api/v1/approvals").status_code == 401


# -- the process's view: from memory, refreshed within the bound, refusals written in batches --

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def wait_for(condition, tries=500):
    """Until a background refresh or batch has landed (a bound on tries, never on time)."""
    event = threading.Event()
    for _ in range(tries):
        if condition():
            return True
        event.wait(0.01)
    return condition()


def test_refused_calls_are_written_in_bounded_batches():
    store, clock = MemoryGovernanceStore(), Clock()
    source = GovernanceSource(store, flush_every=10.0, clock=clock)
    for i in range(1000):
        source.requested(["acme/new"], f"key-{i % 30}")
    source.flush()
    assert store.writes == 2  # the first refusal at once, the other 999 in one more batch
    row = store.rows["acme/new"]
    assert row.requests == 1000 and row.status == "pending" and len(row.key_ids) == 20  # keys listed: bounded
    clock.now += 10.0  # an interval later, the next refusal starts a batch by itself
    source.requested(["acme/new"], "key-late")
    source.flush()
    assert store.writes == 3 and store.rows["acme/new"].requests == 1001


def test_a_batch_that_fails_is_counted_again_with_the_next():
    store = MemoryGovernanceStore()
    failing = {"on": True}
    write = store.add_requests

    def flaky(*args):
        if failing["on"]:
            raise StorageError("down")
        write(*args)
    store.add_requests = flaky
    source = GovernanceSource(store)
    source.requested(["acme/new"], "k1")
    source.requested(["acme/new"], "k2")
    source.flush()
    assert "acme/new" not in store.rows
    failing["on"] = False
    source.flush()
    assert store.rows["acme/new"].requests == 2 and set(store.rows["acme/new"].key_ids) == {"k1", "k2"}


def test_every_process_follows_an_approval_within_the_refresh_interval(aws):
    """Two gateway processes' views of one catalog table: a decision made in one reaches the other once its
    refresh interval has passed (30 s here, on an injected clock), and not before."""
    table = aws["CatalogTable"]
    clock = Clock()
    here, there = (GovernanceSource(DynamoGovernanceStore(table), ttl=30.0, clock=clock) for _ in range(2))
    store = here.store
    store.put_settings(type(here.settings)(model_approval=True))
    assert here.latest().model_approval and there.latest().approved == frozenset()
    store.decide("sim/fast", "approved", by="admin", at=1.0, note=None)
    assert "sim/fast" in here.refresh_now().approved  # the deciding process applies it at once
    clock.now += 29.0
    assert "sim/fast" not in there.latest().approved  # within the interval: what it last read
    clock.now += 1.0
    there.latest()  # due: refreshed in the background
    assert wait_for(lambda: "sim/fast" in there.current.approved)


def test_a_process_that_never_read_the_settings_refuses_rather_than_guess():
    store = MemoryGovernanceStore()
    store.load = lambda: (_ for _ in ()).throw(StorageError("down"))
    source = GovernanceSource(store)
    with pytest.raises(StorageError):
        source.latest()


def test_approvals_and_settings_changes_are_audited(client, admin, gateway):
    from shared.audit.log import AuditQuery

    approval_on(client, admin)
    decide(client, admin, "sim/fast", "approve", note="ok by legal")
    client.post("/api/v1/approvals/sim/fast/revoke", headers=admin, json={})
    entries, _ = gateway.audit.search(AuditQuery(), limit=10)
    assert [e["action"] for e in entries] == ["approval.revoke", "approval.approve", "governance.update"]
    revoke, approve, update = entries
    assert approve["target"] == "sim/fast" and approve["before"] is None
    assert approve["after"]["status"] == "approved" and approve["after"]["note"] == "ok by legal"
    assert revoke["before"]["status"] == "approved" and revoke["after"]["status"] == "revoked"
    assert update["before"]["model_approval"] == "off" and update["after"]["model_approval"] == "on"
    assert approve["actor"]["id"] and approve["request_id"].startswith("gen-")
    assert gateway.audit.verify().valid
