import re

from shared.keys.tokens import label, new_key, parse_key, secret_hash


def test_inference_key_has_prefix_id_secret_and_checksum():
    token, parts = new_key("inference")
    assert re.fullmatch(r"sk-sy-v1-[0-9a-f]{12}-[0-9A-Za-z]{38}", token)
    assert parse_key(token) == parts
    assert len(parts.secret) == 32  # 32 base62 characters ≈ 190 bits


def test_management_keys_are_recognisably_different():
    token, parts = new_key("management")
    assert token.startswith("sk-sy-mgmt-v1-")
    assert parse_key(token).kind == "management"


def test_any_single_character_typo_is_rejected_without_a_lookup():
    token, _ = new_key()
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    start = len("sk-sy-v1-") + 13
    rejected = 0
    for i in range(start, len(token)):
        for c in "aZ7":
            if c != token[i]:
                typo = token[:i] + c + token[i + 1:]
                rejected += parse_key(typo) is None
    assert rejected == sum(1 for i in range(start, len(token)) for c in "aZ7" if c != token[i])
    assert parse_key(token[:-1]) is None and parse_key(token + "x") is None and parse_key("") is None
    assert all(ch in alphabet for ch in token[start:])


def test_secrets_are_unique_and_stored_hashes_depend_on_the_pepper():
    tokens = {new_key()[0] for _ in range(200)}
    assert len(tokens) == 200
    _, parts = new_key()
    assert secret_hash(b"a", parts.secret) != secret_hash(b"b", parts.secret)
    assert parts.secret not in secret_hash(b"a", parts.secret)


def test_label_reveals_neither_the_id_nor_the_secret():
    token, parts = new_key()
    shown = label(token)
    assert shown.startswith("sk-sy-v1-") and "…" in shown
    assert parts.secret not in shown and parts.key_id not in shown
