"""The model catalog: built-in `sim` models plus operator providers and models from `SWITCHYARD_CONFIG`.

Loaded and validated once per process; the `/models` listing is serialised once too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import orjson
import yaml
from pydantic import ValidationError

from shared.catalog.schema import DEFAULT_PARAMETERS, CatalogFile, ModelConfig, Pricing, ProviderConfig, SimBehaviour
from shared.errors import ModelNotFoundError
from shared.governance.regions import bedrock_regions
from shared.routing.policy import Policies, RoutePolicy

__all__ = ["Catalog", "CatalogError", "CatalogModel", "Endpoint", "Pricing", "ProviderConfig", "SimBehaviour",
           "load_catalog"]

# libyaml's loader for the hand-written files: ~8x faster than PyYAML's pure-Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BUILTIN = Path(__file__).with_name("builtin.yaml")
MODELS = Path(__file__).with_name("models.json")  # generated from genai-prices by infra/build_catalog.py


class CatalogError(ValueError):
    """A catalog file is unreadable or invalid; raised at start-up, never per request."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider serving one model."""

    provider: ProviderConfig
    config: ModelConfig
    upstream_model: str = field(init=False)  # the vendor's name: `upstream_model`, else the id after the slash
    supported: frozenset[str] = field(init=False)  # supported_parameters, for set arithmetic per call
    regions: tuple[str, ...] = field(init=False)  # where it serves from (data residency); () when undeclared

    def __post_init__(self) -> None:
        upstream = self.config.upstream_model or self.config.id.split("/", 1)[1]
        object.__setattr__(self, "upstream_model", upstream)
        object.__setattr__(self, "supported", frozenset(self.config.supported_parameters))
        p = self.provider
        served = self.config.regions or p.regions
        if served is None and p.kind == "bedrock":
            served = bedrock_regions(p.region, upstream)
        object.__setattr__(self, "regions", tuple(served or ()))

    @property
    def pricing(self) -> Pricing:
        return self.config.pricing

    def openrouter_pricing(self) -> dict[str, str]:
        """Prices as OpenRouter lists them: USD per token, as decimal strings."""
        p = self.pricing
        out = {"prompt": _per_token(p.prompt), "completion": _per_token(p.completion), "request": "0", "image": "0"}
        if p.cache_read is not None:
            out["input_cache_read"] = _per_token(p.cache_read)
        if p.cache_write is not None:
            out["input_cache_write"] = _per_token(p.cache_write)
        return out

    @property
    def has_credentials(self) -> bool:
        """True when the provider needs no key or its key is configured (env var or secret)."""
        p = self.provider
        if p.api_key_secret:
            return True
        return p.api_key_env is None or bool(os.environ.get(p.api_key_env))


@dataclass(frozen=True, slots=True)
class CatalogModel:
    id: str
    endpoints: tuple[Endpoint, ...]

    @property
    def config(self) -> ModelConfig:
        return self.endpoints[0].config

    @property
    def author(self) -> str:
        return self.id.split("/", 1)[0]

    def to_openrouter(self) -> dict:
        """The model in OpenRouter's `/models` shape; prices as USD-per-token strings."""
        c = self.config
        top = self.endpoints[0]
        modality = "+".join(c.input_modalities) + "->" + "+".join(c.output_modalities)
        return {
            "id": self.id,
            "canonical_slug": self.id,
            "name": c.name or self.id,
            "created": c.created,
            "description": c.description,
            "context_length": c.context_length,
            "architecture": {
                "modality": modality,
                "input_modalities": list(c.input_modalities),
                "output_modalities": list(c.output_modalities),
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "pricing": top.openrouter_pricing(),
            "top_provider": {
                "context_length": c.context_length,
                "max_completion_tokens": c.max_output,
                "is_moderated": False,
            },
            "per_request_limits": None,
            "supported_parameters": list(c.supported_parameters),
            "providers": [e.provider.id for e in self.endpoints],
            "available": any(e.has_credentials for e in self.endpoints),
        }


def _per_token(per_million: float) -> str:
    """USD per 1M tokens → the per-token decimal string OpenRouter uses ('0.0000025')."""
    text = f"{per_million / 1_000_000:.12f}".rstrip("0").rstrip(".")
    return text or "0"


class Catalog:
    def __init__(self, providers: list[ProviderConfig], models: list[ModelConfig],
                 routes: list[RoutePolicy] | None = None) -> None:
        self.providers = {p.id: p for p in providers}
        grouped: dict[str, list[Endpoint]] = {}
        for m in models:
            provider = self.providers.get(m.provider)
            if provider is None:
                raise CatalogError(f"model {m.id!r} names unknown provider {m.provider!r}")
            group = grouped.setdefault(m.id, [])
            group[:] = [e for e in group if e.provider.id != m.provider]  # a later entry overrides
            group.append(Endpoint(provider, m))
        self._models = {mid: CatalogModel(mid, tuple(eps)) for mid, eps in grouped.items()}
        self.policies = Policies(routes or [])  # compiled once here, never per request

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models

    def unknown(self, model_ids: set[str]) -> list[str]:
        """The ids a routing policy may not target here: neither a model (with or without a variant) nor a policy."""
        return sorted(m for m in model_ids if m not in self._models and m.rpartition(":")[0] not in self._models
                      and m not in self.policies.by_id)

    def get(self, model_id: str) -> CatalogModel:
        try:
            return self._models[model_id]
        except KeyError:
            raise ModelNotFoundError(f"Model {model_id!r} is not in the catalog",
                                     metadata={"model": model_id[:200]}) from None

    def canonical_id(self, model_id: str) -> str | None:
        """The catalog id a requested id names (`base:variant` names its base), or None when it names none."""
        model = self._models.get(model_id)
        if model is None and ":" in model_id:
            model = self._models.get(model_id.rpartition(":")[0])
        return None if model is None else model.id

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def policy_listing(self, spec: RoutePolicy) -> dict:
        """A routing policy as `/models` lists it, as OpenRouter lists `openrouter/auto`: a virtual model whose
        price depends on where a call goes ("-1"), its context the longest of its models, its parameters those
        every one of them supports; `models` names them."""
        targets = [self._models[m] for m in sorted(spec.models()) if m in self._models]
        configs = [t.config for t in targets]
        params = set.intersection(*(set(c.supported_parameters) for c in configs)) if configs else set()
        inputs = sorted(set.intersection(*(set(c.input_modalities) for c in configs))) if configs else ["text"]
        outputs = sorted(set.union(*(set(c.output_modalities) for c in configs))) if configs else ["text"]
        context = max((c.context_length for c in configs), default=0)
        return {
            "id": spec.id, "canonical_slug": spec.id, "name": spec.id, "created": 0, "description": spec.description,
            "context_length": context,
            "architecture": {"modality": "+".join(inputs) + "->" + "+".join(outputs), "input_modalities": inputs,
                             "output_modalities": outputs, "tokenizer": "Router", "instruct_type": None},
            "pricing": {"prompt": "-1", "completion": "-1", "request": "0", "image": "0"},
            "top_provider": {"context_length": context, "max_completion_tokens": None, "is_moderated": False},
            "per_request_limits": None,
            "supported_parameters": [p for p in DEFAULT_PARAMETERS if p in params] + sorted(params - set(
                DEFAULT_PARAMETERS)),
            "providers": sorted({e.provider.id for t in targets for e in t.endpoints}),
            "available": any(e.has_credentials for t in targets for e in t.endpoints),
            "routing_policy": True, "models": [t.id for t in targets],
        }

    def listing(self) -> list[dict]:
        """Every model, then every routing policy, in `/models`' shape."""
        return [m.to_openrouter() for m in self._models.values()] + \
            [self.policy_listing(p.spec) for p in self.policies.by_id.values()]

    @cached_property
    def models_json(self) -> bytes:
        return orjson.dumps({"data": self.listing()})


def _read(path: Path) -> CatalogFile:
    try:
        text = path.read_bytes()
        if path.suffix == ".json":  # the generated file: its header fields are not catalog entries
            raw = {k: v for k, v in orjson.loads(text).items() if k in ("providers", "models", "routes")}
        else:
            raw = yaml.load(text, Loader=_LOADER) or {}
        return CatalogFile.model_validate(raw)
    except (OSError, yaml.YAMLError, orjson.JSONDecodeError, ValidationError) as e:
        raise CatalogError(f"catalog file {path}: {e}") from e


def load_catalog(config: Path | None = None, overrides: CatalogFile | None = None,
                 hidden: frozenset[str] = frozenset()) -> Catalog:
    """Built-in catalog, then the operator's file, then overrides (from the catalog table): each adds to or
    replaces what came before; `hidden` model ids are left out."""
    files = [_read(BUILTIN), _read(MODELS)] + ([_read(config)] if config else []) + ([overrides] if overrides else [])
    providers: dict[str, ProviderConfig] = {}
    models: list[ModelConfig] = []
    routes: dict[str, RoutePolicy] = {}
    for f in files:
        providers.update({p.id: p for p in f.providers})
        models.extend(f.models)
        routes.update({r.id: r for r in f.routes})
    return Catalog(list(providers.values()), [m for m in models if m.id not in hidden],
                   [r for r in routes.values() if r.id not in hidden])
