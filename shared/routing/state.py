"""What routing knows and learns in one process: the current catalog, each endpoint's circuit breaker, moving
averages of latency and throughput, and the candidates of models whose choice never varies per call.

One owner (ChatService builds it); a call's Plan reads it and reports what happened to it.
"""

from __future__ import annotations

from shared.catalog import Catalog
from shared.catalog.source import CatalogSource
from shared.chat.schema import ChatRequest
from shared.config import Settings
from shared.errors import BadRequestError, ModelNotFoundError, NoProviderError
from shared.governance.source import OFF, Governance, GovernanceSource
from shared.routing import providers as provider_routing
from shared.routing.breaker import BreakerPolicy, Breakers
from shared.routing.providers import Candidate

VARIANTS = ("free", "floor", "nitro")
# OpenRouter's variants this gateway cannot honour: refused with why, never served as the plain model
UNSERVED_VARIANTS = {
    "online": "web search (:online) needs a search provider, and none is configured",
    "thinking": ":thinking is not served: call the model itself with `reasoning: {\"effort\": \"medium\"}`",
    "exacto": ":exacto routes by tool-calling quality measurements this gateway does not keep",
}
_SMOOTHING = 0.2  # weight of the newest measurement in the moving averages


class RoutingState:
    def __init__(self, catalog: Catalog | CatalogSource, settings: Settings,
                 governance: GovernanceSource | None = None) -> None:
        self.source = catalog if isinstance(catalog, CatalogSource) else None
        self.governance_source = governance  # None: no approval workflow, no organisation residency
        self._catalog = catalog if isinstance(catalog, Catalog) else catalog.current
        self.settings = settings
        self._usable: dict[str, list[Candidate]] = {}  # model id → its candidates when nothing varies per call
        self.throughput: dict[tuple[str, str], float] = {}  # (provider, model) → tokens/s, moving average
        self.latency: dict[tuple[str, str], float] = {}  # (provider, model) → ms to first token, moving average
        self.upstream_errors: dict[tuple[str, str, str], int] = {}  # (provider, model, error type) → failed attempts
        self.breakers = Breakers(BreakerPolicy(
            consecutive=settings.breaker_consecutive_failures, error_rate=settings.breaker_error_rate,
            min_calls=settings.breaker_min_calls, window=settings.breaker_window_seconds,
            cooldown=settings.breaker_cooldown_seconds))

    @property
    def catalog(self) -> Catalog:
        """The current catalog; a refreshed catalog drops the cached candidates."""
        if self.source is not None:
            self.source.maybe_refresh()
            if self.source.current is not self._catalog:
                self._catalog, self._usable = self.source.current, {}
        return self._catalog

    def governance(self) -> Governance:
        """The organisation's approval and residency settings of the moment (from memory)."""
        return OFF if self.governance_source is None else self.governance_source.latest()

    def candidates(self, model_id: str, request: ChatRequest, catalog: Catalog | None = None) -> list[Candidate]:
        """The endpoints of one model that may serve this request, in the order to try them."""
        catalog = catalog or self.catalog
        fixed = request.provider is None and not request.tools and request.response_format is None
        if fixed and (cached := self._usable.get(model_id)) is not None:
            return cached  # the hot path: one endpoint, nothing to weigh
        variant = None
        try:
            model = catalog.get(model_id)
        except ModelNotFoundError:
            base, _, variant = model_id.rpartition(":")
            if variant in UNSERVED_VARIANTS and (base in catalog or base in catalog.policies.by_id):
                raise BadRequestError(f"{model_id[:200]!r}: {UNSERVED_VARIANTS[variant]}",
                                      metadata={"field": "model", "model": model_id[:200], "variant": variant}) from None
            if variant not in VARIANTS or not base:
                raise
            if base in catalog.policies.by_id:
                raise BadRequestError(f"{base!r} is a routing policy: variants such as :{variant} apply to models",
                                      metadata={"field": "model", "model": model_id[:200]}) from None
            model = catalog.get(base)
        found = provider_routing.order(model, request, request.provider, variant=variant, breakers=self.breakers,
                                       latency=self.latency.get, throughput=lambda k: self.throughput.get(k, 0.0))
        if not found:
            prefs = request.provider
            why = "" if prefs is None else " matching the provider preferences"
            raise NoProviderError(f"No {variant + ' ' if variant else ''}provider of {model.id!r} is available{why}",
                                  metadata={"model": model.id, "variant": variant,
                                            "providers": [e.provider.id for e in model.endpoints]})
        if fixed and variant is None and len(found) == 1:  # more than one is weighed again on every call
            self._usable[model_id] = found
        return found

    def observed_latency(self, key: tuple[str, str], ms: float) -> None:
        """An endpoint answered (its first chunk) after `ms`."""
        old = self.latency.get(key)
        self.latency[key] = ms if old is None else (1 - _SMOOTHING) * old + _SMOOTHING * ms

    def observed_throughput(self, key: tuple[str, str], tokens_per_second: float) -> None:
        old = self.throughput.get(key)
        self.throughput[key] = tokens_per_second if old is None else \
            (1 - _SMOOTHING) * old + _SMOOTHING * tokens_per_second
