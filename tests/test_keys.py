import asyncio
import time

import pytest

from shared.errors import AuthenticationError, ForbiddenError, NotFoundError
from shared.keys import Authenticator
from shared.keys.tokens import PREFIX, _checksum, new_key
from tests.stores import MemoryKeyStore


@pytest.fixture(params=["dynamodb", "memory"])
def store(request):
    """The gateway's KeyStore, and the in-memory one: both keep the same contract."""
    return request.getfixturevalue("gateway").keys if request.param == "dynamodb" else MemoryKeyStore()


def auth(store, ttl=0.0):
    return Authenticator(store, ttl=ttl)


def run(coro):
    return asyncio.run(coro)


def test_only_the_hmac_of_the_secret_is_stored(gateway):
    token, key = gateway.keys.create("app")
    item = gateway.keys.keys.get({"key_id": key.key_id})
    secret = token.split("-")[-1][:32]
    assert secret not in str(item) and token not in str(item)
    assert len(item["secret_hash"]) == 64


def test_unknown_key_and_wrong_secret_get_the_same_401(store):
    token, key = store.create("app")
    unknown, _ = new_key()
    body = f"{PREFIX['inference']}{key.key_id}-{'A' * 32}"
    wrong = body + _checksum(body)  # the right key id, a wrong secret, a valid checksum
    errors = []
    for t in (unknown, wrong):
        with pytest.raises(AuthenticationError) as e:
            run(auth(store).authenticate(f"Bearer {t}", kind="inference"))
        errors.append(e.value.body())
    assert errors[0] == errors[1]
    assert run(auth(store).authenticate(f"Bearer {token}", kind="inference")).key_id == key.key_id


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer sk-nope", "Bearer sk-sy-v1-xyz"])
def test_missing_or_malformed_keys_are_401(gateway, header):
    with pytest.raises(AuthenticationError):
        run(auth(gateway.keys).authenticate(header, kind="inference"))


def test_disabled_key_is_401_and_a_spent_key_still_authenticates(gateway):
    token, key = gateway.keys.create("app", limit=0.5)
    gateway.keys.update(key.key_id, disabled=True)
    with pytest.raises(AuthenticationError, match="disabled"):
        run(auth(gateway.keys).authenticate(f"Bearer {token}", kind="inference"))
    gateway.keys.update(key.key_id, disabled=False)
    a = auth(gateway.keys, ttl=30)
    run(a.authenticate(f"Bearer {token}", kind="inference"))
    a.add_spend(key.key_id, 0.5)
    spent = run(a.authenticate(f"Bearer {token}", kind="inference"))  # to read its usage: calls get the 402
    assert spent.limit_remaining == 0


def test_management_keys_cannot_call_models_and_inference_keys_cannot_manage(store):
    admin, _ = store.create("admin", kind="management")
    dev, _ = store.create("dev")
    with pytest.raises(ForbiddenError):
        run(auth(store).authenticate(f"Bearer {admin}", kind="inference"))
    with pytest.raises(ForbiddenError):
        run(auth(store).authenticate(f"Bearer {dev}", kind="management"))


def test_revocation_takes_effect_after_the_cache_ttl(store):
    token, key = store.create("app")
    a = auth(store, ttl=60)
    run(a.authenticate(f"Bearer {token}", kind="inference"))
    store.update(key.key_id, disabled=True)
    run(a.authenticate(f"Bearer {token}", kind="inference"))  # still cached: the documented delay
    a.forget(key.key_id)
    with pytest.raises(AuthenticationError):
        run(a.authenticate(f"Bearer {token}", kind="inference"))


def test_update_and_delete(store):
    _, key = store.create("app", limit=3)
    updated = store.update(key.key_id, name="renamed", limit=None)
    assert updated.name == "renamed" and updated.limit is None and updated.updated_at
    store.delete(key.key_id)
    assert store.get(key.key_id) is None
    with pytest.raises(NotFoundError):
        store.delete(key.key_id)
    with pytest.raises(NotFoundError):
        store.update("000000000000", name="x")


def test_management_keys_are_not_managed_through_the_keys_api(store):
    _, admin = store.create("admin", kind="management")
    with pytest.raises(NotFoundError):
        store.update(admin.key_id, disabled=True)
    with pytest.raises(NotFoundError):
        store.delete(admin.key_id)


def test_listing_keys_shows_each_keys_spend(client, gateway, keys):
    """GET /keys once showed every key's usage as 0: the list read no counters."""
    from shared.metering import UsageEvent

    _, spender = gateway.keys.create("spender")
    _, idle = gateway.keys.create("idle")
    event = UsageEvent(id="gen-list-1", key_id=spender.key_id, created_at=time.time(), model="sim/fast", lab="sim",
                       cost=0.25)
    gateway.usage.write([event])
    listed = client.get("/api/v1/keys", headers={"Authorization": f"Bearer {keys['admin']}"}).json()["data"]
    usage = {k["hash"]: (k["usage"], k["usage_daily"], k["usage_monthly"]) for k in listed}
    assert usage[spender.key_id] == (0.25, 0.25, 0.25) and usage[idle.key_id] == (0.0, 0.0, 0.0)
