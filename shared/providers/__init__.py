"""Vendor adapters, one module per wire format, behind the `Provider` protocol."""

from __future__ import annotations

from shared.providers.anthropic import AnthropicProvider
from shared.providers.bedrock import BedrockProvider
from shared.providers.gemini import GeminiProvider
from shared.providers.base import Completion, Provider, Usage, upstream_error
from shared.providers.openai import AzureProvider, OpenAIProvider
from shared.providers.sim import SimProvider

__all__ = ["Completion", "Provider", "Usage", "adapter_for", "upstream_error"]

_ADAPTERS: dict[str, Provider] = {"openai": OpenAIProvider(), "anthropic": AnthropicProvider(),
                                  "gemini": GeminiProvider(), "azure": AzureProvider(),
                                  "bedrock": BedrockProvider(), "sim": SimProvider()}


def adapter_for(kind: str) -> Provider | None:
    """The adapter for a provider kind, or None where that wire format is not implemented yet."""
    return _ADAPTERS.get(kind)
