"""The shapes of the catalog file format (built-in YAML and `SWITCHYARD_CONFIG`), validated at load."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.catalog.licenses import ModelLicense
from shared.governance import regions as _regions
from shared.routing.policy import RoutePolicy

ProviderKind = Literal["openai", "anthropic", "gemini", "bedrock", "azure", "sim"]
Modality = Literal["text", "image", "audio", "file", "video", "embeddings"]  # embeddings: an output only (OpenRouter's)
NonNegative = Annotated[float, Field(ge=0)]
Rate = Annotated[float, Field(ge=0, le=1)]

DEFAULT_PARAMETERS = (
    "max_tokens", "temperature", "top_p", "stop", "seed", "frequency_penalty", "presence_penalty", "tools",
    "tool_choice", "response_format", "structured_outputs", "stream",
)


# What reaches an upstream request's head must not be able to change its framing: header names are HTTP
# tokens (RFC 9110), values and URLs free of CR, LF and NUL (and URLs of any whitespace or control character).
_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
                      "keep-alive", "proxy-connection"})


def _not_framing(name: str) -> str:
    if name.lower() in _FRAMING:
        raise ValueError(f"header {name!r} is set by the gateway itself")
    return name


def _one_line(value: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("a header value may not contain CR, LF or NUL")
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("a URL starts with http:// or https://")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("a URL may not contain whitespace or control characters")
    return value


HeaderName = Annotated[str, Field(min_length=1, max_length=128, pattern=_TOKEN), AfterValidator(_not_framing)]
HeaderValue = Annotated[str, Field(max_length=4096), AfterValidator(_one_line)]
Url = Annotated[str, Field(max_length=2048), AfterValidator(_url)]
# Parts of URLs and requests: names, not free text
UrlPart = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Region = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9-]+$")]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
SecretId = Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^[A-Za-z0-9/_+=.@:-]+$")]
# Where an endpoint serves from, for data residency (the convention: shared/governance/regions.py)
ServedRegion = Annotated[str, AfterValidator(_regions.region)]
ServedRegions = Annotated[tuple[ServedRegion, ...], Field(min_length=1, max_length=32)]
UpstreamModel = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s\x00-\x1f\x7f]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Price = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]  # no model costs $100k per 1M tokens


class Pricing(Strict):
    """USD per 1M tokens. Cached prompt tokens cost `cache_read` (when the vendor prices them apart)."""

    prompt: Price = 0.0
    completion: Price = 0.0
    cache_read: Price | None = None
    cache_write: Price | None = None


class SimBehaviour(Strict):
    """How a `sim` model behaves: latency, length, and failure injection (rates are per request)."""

    latency_ms: NonNegative = 0.0  # time to first token
    tokens_per_second: NonNegative = 0.0  # 0: every chunk at once
    reply_tokens: Annotated[int, Field(ge=1, le=100_000)] = 48
    error_rate: Rate = 0.0
    error_status: Annotated[int, Field(ge=400, le=599)] = 500
    retry_after_seconds: Annotated[int, Field(ge=0)] | None = None
    timeout_rate: Rate = 0.0
    malformed_json_rate: Rate = 0.0
    truncate_rate: Rate = 0.0


class ProviderConfig(Strict):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    kind: ProviderKind
    name: str | None = None
    base_url: Url | None = None
    api_key_env: EnvName | None = None  # env var holding the vendor key (local and Lambda)
    api_key_secret: SecretId | None = None  # Secrets Manager id holding the vendor key (AWS)
    api_version: UrlPart | None = None  # azure: an api-version such as 2024-10-21, or "v1" (the default)
    region: Region | None = None  # bedrock: the AWS region (default: the function's own)
    # Where the provider serves from (data residency); a model entry's own `regions` override it. None: not
    # declared, and then no residency constraint is met (a bedrock provider defaults to its `region`).
    regions: ServedRegions | None = None
    headers: dict[HeaderName, HeaderValue] = {}
    # "deny": the provider neither stores nor trains on prompts (OpenRouter's `data_collection`); unknown → "allow"
    data_collection: Literal["allow", "deny"] = "allow"
    # Set by the catalog API on what it stores (never by a file): such a provider's key env, secret and address
    # are restricted (shared/catalog/source.py `api_provider_problem`), its connections checked (providers/http.py).
    added_by_api: bool = False

    @model_validator(mode="after")
    def _needs_url(self) -> "ProviderConfig":
        if self.kind in ("openai", "azure") and not self.base_url:
            raise ValueError(f"provider {self.id!r} of kind {self.kind!r} needs a base_url")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            try:
                parts.port  # noqa: B018 (raises on a port that is not a number in range)
            except ValueError as e:
                raise ValueError(f"provider {self.id!r}: base_url has an invalid port") from e
            if not parts.hostname:
                raise ValueError(f"provider {self.id!r}: base_url has no host")
        return self


class ModelConfig(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._:-]+$")]
    provider: str
    upstream_model: UpstreamModel | None = None  # defaults to the part of `id` after the slash
    name: str | None = None
    description: str = ""
    created: int = 0
    context_length: Annotated[int, Field(gt=0)] = 8192
    max_output: Annotated[int, Field(gt=0)] | None = None
    pricing: Pricing = Pricing()
    input_modalities: tuple[Modality, ...] = ("text",)
    output_modalities: tuple[Modality, ...] = ("text",)
    supported_parameters: tuple[str, ...] = DEFAULT_PARAMETERS
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None  # overrides the first-byte timeout
    regions: ServedRegions | None = None  # where this endpoint serves from, when not where its provider does
    sim: SimBehaviour | None = None


class CatalogFile(Strict):
    providers: list[ProviderConfig] = []
    models: list[ModelConfig] = []
    routes: list[RoutePolicy] = []  # routing policies (virtual models): see shared/routing/policy.py
    # The operator's license entries, tried before the built-in table (shared/catalog/licenses.py); files only
    licenses: list[ModelLicense] = []
