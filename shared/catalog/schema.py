"""The shapes of the catalog file format (built-in YAML and `SWITCHYARD_CONFIG`), validated at load."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.routing.policy import RoutePolicy

ProviderKind = Literal["openai", "anthropic", "gemini", "bedrock", "azure", "sim"]
Modality = Literal["text", "image", "audio", "file", "video"]
NonNegative = Annotated[float, Field(ge=0)]
Rate = Annotated[float, Field(ge=0, le=1)]

DEFAULT_PARAMETERS = (
    "max_tokens", "temperature", "top_p", "stop", "seed", "frequency_penalty", "presence_penalty", "tools",
    "tool_choice", "response_format", "structured_outputs", "stream",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pricing(Strict):
    """USD per 1M tokens. Cached prompt tokens cost `cache_read` (when the vendor prices them apart)."""

    prompt: NonNegative = 0.0
    completion: NonNegative = 0.0
    cache_read: NonNegative | None = None
    cache_write: NonNegative | None = None


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
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    api_key_env: str | None = None  # env var holding the vendor key (local and Lambda)
    api_key_secret: str | None = None  # Secrets Manager id holding the vendor key (AWS)
    api_version: str | None = None  # azure: an api-version such as 2024-10-21, or "v1" (the default)
    region: str | None = None  # bedrock: the AWS region (default: the function's own)
    headers: dict[str, str] = {}
    # "deny": the provider neither stores nor trains on prompts (OpenRouter's `data_collection`); unknown → "allow"
    data_collection: Literal["allow", "deny"] = "allow"

    @model_validator(mode="after")
    def _needs_url(self) -> "ProviderConfig":
        if self.kind in ("openai", "azure") and not self.base_url:
            raise ValueError(f"provider {self.id!r} of kind {self.kind!r} needs a base_url")
        return self


class ModelConfig(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._:-]+$")]
    provider: str
    upstream_model: str | None = None  # defaults to the part of `id` after the slash
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
    sim: SimBehaviour | None = None


class CatalogFile(Strict):
    providers: list[ProviderConfig] = []
    models: list[ModelConfig] = []
    routes: list[RoutePolicy] = []  # routing policies (virtual models): see shared/routing/policy.py
