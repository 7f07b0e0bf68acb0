"""API keys: the token format (tokens.py), the stored key and its store (store.py), authentication (auth.py),
the counters layout (counters.py) and spend holds (spend.py)."""

from shared.keys.auth import Authenticator, KeyLookup
from shared.keys.counters import counter_key, periods, periods_of_day
from shared.keys.store import ApiKey, KeyStore

__all__ = ["ApiKey", "Authenticator", "KeyLookup", "KeyStore", "counter_key", "periods", "periods_of_day"]
