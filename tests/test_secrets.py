"""On AWS the pepper and vendor keys come from Secrets Manager (through Powertools parameters, cached)."""

import boto3
import pytest

from shared.aws import secrets


@pytest.fixture
def secret(aws):
    client = boto3.client("secretsmanager")
    client.create_secret(Name="switchyard/vendors/openai", SecretString="sk-vendor-from-secrets-manager")
    client.create_secret(Name="switchyard/pepper", SecretString="pepper-from-secrets-manager")
    return client


def test_vendor_key_prefers_the_env_var_then_the_secret(secret, monkeypatch):
    assert secrets.vendor_key(None, "switchyard/vendors/openai") == "sk-vendor-from-secrets-manager"
    monkeypatch.setenv("OPENAI_KEY", "sk-from-env")
    assert secrets.vendor_key("OPENAI_KEY", "switchyard/vendors/openai") == "sk-from-env"
    assert secrets.vendor_key("UNSET_VAR", None) is None


def test_the_pepper_comes_from_secrets_manager_when_named(secret, monkeypatch):
    from shared.config import get_settings

    monkeypatch.delenv("SWITCHYARD_PEPPER")
    monkeypatch.setenv("PEPPER_SECRET_ID", "switchyard/pepper")
    get_settings.cache_clear()
    secrets.pepper.cache_clear()
    assert secrets.pepper() == b"pepper-from-secrets-manager"
    secrets.pepper.cache_clear()


def test_a_missing_secret_is_a_clear_storage_error(aws):
    from shared.errors import StorageError

    with pytest.raises(StorageError) as e:
        secrets.vendor_key(None, "switchyard/vendors/nope")
    assert "nope" in str(e.value.metadata) and "sk-" not in e.value.message
