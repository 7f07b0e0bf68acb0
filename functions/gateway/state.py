"""The gateway's long-lived parts, built once per process (at import on Lambda, at start under uvicorn)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from shared.aws.secrets import pepper
from shared.catalog import Catalog
from shared.catalog.source import CatalogSource
from shared.catalog.store import DynamoCatalogStore
from shared.chat.service import ChatService
from shared.config import Settings, get_settings
from shared.keys import Authenticator, DynamoKeyStore, KeyStore
from shared.keys.spend import SpendGuard
from shared.metering import Meter, UsageWriter


@dataclass(frozen=True, slots=True)
class Gateway:
    settings: Settings
    catalogs: CatalogSource
    keys: KeyStore
    auth: Authenticator
    meter: Meter
    chat: ChatService

    @property
    def catalog(self) -> Catalog:
        return self.catalogs.current


@lru_cache(maxsize=1)
def gateway() -> Gateway:
    settings = get_settings()
    catalogs = CatalogSource(settings.config, DynamoCatalogStore(settings.catalog_table))
    # A hold older than any call can last (plus time to meter it) belongs to a call that died unsettled.
    spend = SpendGuard(settings.counters_table, stale_after=settings.total_timeout_seconds + 300)
    keys = DynamoKeyStore(settings.keys_table, settings.counters_table, pepper, spend)
    auth = Authenticator(keys, ttl=settings.key_cache_seconds)
    writer = UsageWriter(settings.usage_table, settings.counters_table, settings.usage_retention_days)
    meter = Meter(writer, interval=settings.meter_flush_seconds, on_record=lambda e: auth.add_spend(e.key_id, e.cost))
    return Gateway(settings, catalogs, keys, auth, meter, ChatService(catalogs, meter, settings, spend))
