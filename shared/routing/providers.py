"""Which endpoints of a model may serve a call, and in what order (OpenRouter's provider routing).

Filters: credentials and a wire format we speak; `only`/`ignore`; `data_collection: deny`; `max_price`;
`require_parameters` (every parameter the request uses must be supported); a variant's `:free`. Without
`require_parameters`, what an endpoint does not support is dropped when the call is sent
(`ChatRequest.for_endpoint`).
Order: `order` first (then the rest, if `allow_fallbacks`); else `sort` (price, latency or throughput, measured
by this process); else OpenRouter's default: endpoints with a recent outage (an open breaker, or a last call
that failed) go last, and among the others the first is drawn at random weighted by the inverse square of the
price, the rest follow cheapest first. A
request with `tools` or `response_format` tries endpoints that support them first. `allow_fallbacks: false`
keeps only the first endpoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from shared.catalog import CatalogModel, Endpoint
from shared.chat.schema import ChatRequest, ProviderPreferences
from shared.providers import Provider, adapter_for
from shared.routing.breaker import Breaker, Breakers

_PREFERRED = ("tools", "response_format")
_RNG = random.Random()


@dataclass(frozen=True, slots=True)
class Candidate:
    model: CatalogModel
    endpoint: Endpoint
    adapter: Provider
    breaker: Breaker  # the endpoint's, shared by every call of the process
    key: tuple[str, str]  # (provider, upstream model): what the breaker and `spent` are keyed by


def price(e: Endpoint) -> float:
    return e.pricing.prompt + e.pricing.completion


def usable(model: CatalogModel) -> list[tuple[Endpoint, Provider]]:
    return [(e, a) for e in model.endpoints if (a := adapter_for(e.provider.kind)) and e.has_credentials]


def order(model: CatalogModel, request: ChatRequest, prefs: ProviderPreferences | None, *, variant: str | None,
          breakers: Breakers, latency: Callable[[tuple[str, str]], float | None],
          throughput: Callable[[tuple[str, str]], float]) -> list[Candidate]:
    eps = usable(model)
    if variant == "free":
        eps = [(e, a) for e, a in eps if price(e) == 0]
    if prefs is not None:
        if prefs.only is not None:
            only = set(prefs.only)
            eps = [(e, a) for e, a in eps if e.provider.id in only]
        if prefs.ignore:
            ignore = set(prefs.ignore)
            eps = [(e, a) for e, a in eps if e.provider.id not in ignore]
        if prefs.data_collection == "deny":
            eps = [(e, a) for e, a in eps if e.provider.data_collection == "deny"]
        if (cap := prefs.max_price) is not None:
            eps = [(e, a) for e, a in eps if (cap.prompt is None or e.pricing.prompt <= cap.prompt)
                   and (cap.completion is None or e.pricing.completion <= cap.completion)]
    if prefs is not None and prefs.require_parameters:
        used = request.parameters()
        eps = [(e, a) for e, a in eps if used <= e.supported]
    if len(eps) > 1:
        eps = _sorted(eps, prefs, variant, breakers, latency, throughput)
        wanted = request.parameters().intersection(_PREFERRED)
        if wanted:  # stable: the order above holds within each group
            eps.sort(key=lambda ea: not wanted <= ea[0].supported)
    if prefs is not None and not prefs.allow_fallbacks:
        eps = eps[:1]
    return [Candidate(model, e, a, breakers(e.provider.id, e.upstream_model), (e.provider.id, e.upstream_model))
            for e, a in eps]


def _sorted(eps: list[tuple[Endpoint, Provider]], prefs: ProviderPreferences | None, variant: str | None,
            breakers: Breakers, latency: Callable[[tuple[str, str]], float | None],
            throughput: Callable[[tuple[str, str]], float]) -> list[tuple[Endpoint, Provider]]:
    key = lambda ea: (ea[0].provider.id, ea[0].config.id)  # noqa: E731  (measurements are per provider and model)
    sort = prefs.sort if prefs is not None else None
    if variant == "floor":
        sort = "price"
    elif variant == "nitro":
        sort = "throughput"
    if prefs is not None and prefs.order:
        rank = {p: i for i, p in enumerate(prefs.order)}
        listed = sorted((ea for ea in eps if ea[0].provider.id in rank), key=lambda ea: rank[ea[0].provider.id])
        if not prefs.allow_fallbacks:
            return listed
        rest = [ea for ea in eps if ea[0].provider.id not in rank]
        return listed + _sorted(rest, None, variant, breakers, latency, throughput) if rest else listed
    if sort == "price":
        return sorted(eps, key=lambda ea: price(ea[0]))
    if sort == "throughput":
        return sorted(eps, key=lambda ea: -throughput(key(ea)))
    if sort == "latency":
        return sorted(eps, key=lambda ea: (latency(key(ea)) is None, latency(key(ea)) or 0.0))
    # OpenRouter's default: stable endpoints first (breaker closed, last call not failed), the first drawn by
    # inverse-square price, the rest by price; endpoints with a recent outage after them
    stable = [ea for ea in eps if (b := breakers(ea[0].provider.id, ea[0].upstream_model)).available() and not b.streak]
    shaky = [ea for ea in eps if ea not in stable]
    stable.sort(key=lambda ea: price(ea[0]))
    if len(stable) > 1:
        weights = [1.0 / max(price(e), 1e-9) ** 2 for e, _ in stable]
        first = _RNG.choices(range(len(stable)), weights)[0]
        stable.insert(0, stable.pop(first))
    return stable + shaky
