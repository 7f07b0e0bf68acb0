"""The live catalog: files (built-in, generated, SWITCHYARD_CONFIG) plus operator overrides from a `CatalogStore`
(shared/catalog/store.py: the catalog table).

Overrides add or replace providers and model endpoints, and hide models, without a deploy. A process loads
them on its first request (nothing is fetched at import: Lambda SnapStart snapshots the import), then again in
the background every `ttl` seconds; the process that makes a change through the API applies it at once. So a
change reaches every process within `ttl` seconds (30 by default).

Providers added through the catalog API (`added_by_api`) are restricted (`api_provider_problem`): the API
refuses what breaks the rules, and a stored one that the current settings no longer allow is skipped at load.
Their origins are guarded in the HTTP client, which checks every address it connects them to.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from shared.catalog import BUILTIN, Catalog, CatalogError, load_catalog
from shared.catalog.schema import CatalogFile, ProviderConfig
from shared.catalog.store import CatalogStore
from shared.config import Settings, get_settings
from shared.errors import StorageError
from shared.providers import http

log = logging.getLogger("switchyard.catalog")
_NEVER_ENVS = ("SWITCHYARD_", "AWS_")  # the gateway's own secrets (pepper, credentials): never a vendor key


@lru_cache(maxsize=1)
def builtin_key_envs() -> frozenset[str]:
    """The key env vars of the built-in catalog's vendors (OPENAI_API_KEY, …): the API's default allowlist."""
    providers = CatalogFile.model_validate(yaml.safe_load(BUILTIN.read_text())).providers
    return frozenset(p.api_key_env for p in providers if p.api_key_env)


def key_env_allowed(name: str, settings: Settings) -> bool:
    if name.upper().startswith(_NEVER_ENVS):
        return False
    if settings.catalog_api_key_envs is None:
        return name in builtin_key_envs()
    for pattern in (p.strip() for p in settings.catalog_api_key_envs.split(",")):
        if pattern and (name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1]))):
            return True
    return False


def _secret_name(secret_id: str) -> str:
    """A secret's name, from a name or an ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX)."""
    if secret_id.startswith("arn:"):
        parts = secret_id.split(":", 6)
        return parts[6] if len(parts) == 7 and parts[5] == "secret" else ""
    return secret_id


def api_provider_problem(provider: ProviderConfig, settings: Settings) -> tuple[str, str] | None:
    """(field, why) when a provider added through the catalog API may not be used as it is; None when it may.
    Host names are not resolved here (the API resolves them, the HTTP client checks what it connects to)."""
    if provider.api_key_env and not key_env_allowed(provider.api_key_env, settings):
        allowed = "SWITCHYARD_CATALOG_API_KEY_ENVS" if settings.catalog_api_key_envs is not None else \
            f"the built-in vendors' ({', '.join(sorted(builtin_key_envs()))}; SWITCHYARD_CATALOG_API_KEY_ENVS widens it)"
        return "api_key_env", f"api_key_env {provider.api_key_env!r} is not one the catalog API may use: " \
                              f"allowed are {allowed}, never SWITCHYARD_* or AWS_*"
    if provider.api_key_secret:
        name, prefix = _secret_name(provider.api_key_secret), settings.vendor_secret_prefix
        if not prefix or not name.startswith(prefix) or ".." in name:
            return "api_key_secret", f"api_key_secret must name a secret under {prefix!r}"
    if provider.base_url:
        if provider.kind == "bedrock":
            return "base_url", ("a bedrock provider's endpoint cannot be set through the catalog API (its "
                                "requests are signed with the gateway's AWS credentials): use SWITCHYARD_CONFIG")
        parts = urlsplit(provider.base_url)
        if "@" in parts.netloc:
            return "base_url", "base_url may not carry user information (user@host)"
        host = parts.hostname or ""
        address = http.literal_address(host)
        if host == "localhost" or host.endswith(".localhost"):
            address = http.literal_address("127.0.0.1")
        why = http.refused_address(address, settings.catalog_api_allow_private) if address else None
        if why:
            return "base_url", url_refusal(host, address, why, settings)
    return None


def url_refusal(host: str, address, why: str, settings: Settings) -> str:
    text = f"base_url's host {host} is {address}, {why}"
    if why in ("a loopback address", "a private address") and not settings.catalog_api_allow_private:
        text += " (SWITCHYARD_CATALOG_API_ALLOW_PRIVATE=true allows those)"
    return text + ": the catalog API does not add providers there"


class CatalogSource:
    def __init__(self, config: Path | None, store: CatalogStore, *, ttl: float = 30.0) -> None:
        self.config, self.store, self.ttl = config, store, ttl
        self.current: Catalog = load_catalog(config)  # the files only, until the first refresh
        self._file_providers = frozenset(self.current.providers)
        self._loaded = False
        self._next = 0.0
        self._busy = threading.Lock()
        self._order = threading.Lock()
        self._started = self._applied = 0  # refreshes started / the newest one applied

    def latest(self) -> Catalog:
        """The current catalog, refreshed first if it is due (what every request path should read)."""
        self.maybe_refresh()
        return self.current

    def maybe_refresh(self) -> None:
        """Cheap on the request path: one clock read, except the first call of a process (one table scan)."""
        if time.monotonic() < self._next:
            return
        if not self._loaded:
            self._refresh()
        elif self._busy.acquire(blocking=False):
            self._busy.release()
            threading.Thread(target=self._refresh, name="catalog-refresh", daemon=True).start()
        self._next = time.monotonic() + self.ttl

    def refresh_now(self) -> Catalog:
        """Reload at once (after a change made through this process). An override model whose provider is
        unknown is skipped (and logged), so that one bad entry cannot keep all the others out."""
        with self._order:
            self._started += 1
            ticket = self._started
        overrides, hidden = self.store.load()
        settings = get_settings()
        providers = []
        for p in overrides.providers:
            problem = api_provider_problem(p, settings) if p.added_by_api else None
            if problem is None:
                providers.append(p)
            else:
                log.warning("catalog override provider %s skipped: %s", p.id, problem[1])
        known = self._file_providers | {p.id for p in providers}
        for m in overrides.models:
            if m.provider not in known:
                log.warning("catalog override %s names unknown provider %s: skipped", m.id, m.provider)
        overrides = CatalogFile(providers=providers, models=[m for m in overrides.models if m.provider in known],
                                routes=overrides.routes)
        catalog = load_catalog(self.config, overrides, hidden)
        with self._order:
            if ticket > self._applied:  # an older refresh that ends late must not undo a newer one
                self._applied = ticket
                _guard(catalog, settings)
                self.current = catalog
            self._loaded, self._next = True, time.monotonic() + self.ttl
            return self.current

    def _refresh(self) -> None:
        with self._busy:
            try:
                self.refresh_now()
            except (StorageError, CatalogError) as e:  # keep serving the catalog we have
                log.warning("catalog overrides not loaded: %s", e)
                self._loaded = True


def _guard(catalog: Catalog, settings: Settings) -> None:
    """Guard the origins that only API-added providers use (an origin the operator's own providers use too is
    theirs to trust)."""
    trusted = {http.origin(p.base_url) for p in catalog.providers.values() if p.base_url and not p.added_by_api}
    http.guard_origins([p.base_url for p in catalog.providers.values() if p.base_url and p.added_by_api
                        and http.origin(p.base_url) not in trusted],
                       allow_private=settings.catalog_api_allow_private)
