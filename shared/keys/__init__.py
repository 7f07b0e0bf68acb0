"""API keys: the token format (tokens.py), the stored key, the `KeyStore` interface and its DynamoDB
implementation (store.py), authentication (auth.py), the counters layout (counters.py) and spend holds (spend.py)."""

from shared.keys.auth import Authenticator, KeyLookup
from shared.keys.counters import counter_key, periods, periods_of_day
from shared.keys.store import ApiKey, DynamoKeyStore, KeyStore

__all__ = ["ApiKey", "Authenticator", "DynamoKeyStore", "KeyLookup", "KeyStore", "counter_key", "periods",
           "periods_of_day"]
