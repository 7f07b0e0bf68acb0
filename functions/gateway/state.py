"""The gateway's long-lived parts, built once per process (at import on Lambda, at start under uvicorn).

The one place that chooses where state lives: routes and services see the stores through their interfaces
(`KeyStore`, `UsageStore`, `CatalogStore`) and only this module builds their DynamoDB implementations, as it
builds the DynamoDB parts that have no interface yet: spend holds (`SpendGuard`), rate-limit leases
(`RateLimiter`), `DeadLetters` and the `AuditLog`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from shared.audit import AuditLog
from shared.aws.secrets import pepper
from shared.catalog import Catalog
from shared.catalog.source import CatalogSource
from shared.catalog.store import DynamoCatalogStore
from shared.chat.service import ChatService
from shared.config import Settings, get_settings
from shared.governance.source import GovernanceSource
from shared.governance.store import DynamoGovernanceStore
from shared.keys import Authenticator, DynamoKeyStore, KeyStore
from shared.keys.origins import OriginIndex
from shared.keys.restrictions import network
from shared.keys.rates import RateLimiter
from shared.keys.spend import SpendGuard
from shared.metering import DeadLetters, DynamoUsageStore, Meter, UsageEvent, UsageStore
from shared.metering.fingerprint import PromptFingerprint
from shared.metering.stats import EndpointStats
from shared.metrics import CallMetrics


@dataclass(frozen=True, slots=True)
class Gateway:
    settings: Settings
    catalogs: CatalogSource
    keys: KeyStore
    auth: Authenticator
    usage: UsageStore
    meter: Meter
    endpoint_stats: EndpointStats
    chat: ChatService
    origins: OriginIndex  # what a CORS preflight is answered from
    trusted_proxies: tuple[str, ...]  # CIDRs whose X-Forwarded-For is believed (functions/gateway/deps.py)
    audit: AuditLog  # management actions, hash-chained (shared/audit/log.py); never on the inference path
    governance: GovernanceSource  # model approval and residency, refreshed like the catalog
    metrics: CallMetrics | None  # what /metrics and the Lambda's EMF report; None: SWITCHYARD_METRICS=false

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
    keys.origins.ttl = settings.key_cache_seconds
    auth = Authenticator(keys, ttl=settings.key_cache_seconds)
    usage = DynamoUsageStore(settings.usage_table, settings.counters_table, settings.usage_retention_days)
    metrics = CallMetrics(known_model=lambda m: m in catalogs.current, max_apps=settings.metrics_max_apps,
                          key_labels=settings.metrics_key_labels) if settings.metrics else None

    def recorded(e: UsageEvent) -> None:  # each call's usage event, once, as the meter takes it
        auth.add_spend(e.key_id, e.cost)
        if metrics is not None:
            metrics.observe(e)

    meter = Meter(usage, interval=settings.meter_flush_seconds,
                  dead_letters=DeadLetters(settings.counters_table, settings.usage_retention_days),
                  on_record=recorded)
    proxies = tuple(network(p) for p in (settings.trusted_proxies or "").split(",") if p.strip())
    governance = GovernanceSource(DynamoGovernanceStore(settings.catalog_table), ttl=catalogs.ttl)
    return Gateway(settings, catalogs, keys, auth, usage, meter, EndpointStats(usage),
                   ChatService(catalogs, meter, settings, spend, fingerprint=PromptFingerprint(pepper),
                               governance=governance, rates=RateLimiter(settings.counters_table)),
                   keys.origins, proxies, AuditLog(settings.audit_table, pepper), governance, metrics)
