"""The `openai` kind: any OpenAI-compatible upstream (OpenAI, DeepSeek, Groq, Together, vLLM, Ollama, llama.cpp…).

Requests go out as OpenAI bodies with the upstream model name; streams are read chunk by chunk and handed
on as parsed chunks, never buffered whole. Usage is requested in streams (`include_usage`) so that every
streamed call is metered from the vendor's own counts.
"""

from __future__ import annotations

import time
from functools import lru_cache, partial
from typing import Any, AsyncIterator, Callable

import orjson

from shared.aws.secrets import vendor_key
from shared.catalog import Endpoint, ProviderConfig
from shared.chat.schema import ChatRequest
from shared.errors import SwitchyardError, UpstreamError
from shared.providers.base import Completion, Marker, Usage, post, read_ok, sse_data, upstream_error
from shared.providers.http import Response


_HEADERS_SECONDS = 300  # how long a resolved vendor key is reused (rotations show up after this)
# provider id → (until, the provider config they were built for, the headers, vendor key included). Only that
# very config gets them: one replaced under the same id (another address, no key) builds its own. Configs are
# frozen, so the same object is the same fields; a catalog refresh brings new objects, hence a rebuild (~2 µs).
_headers_cache: dict[str, tuple[float, ProviderConfig, dict[str, str]]] = {}


@lru_cache(maxsize=1024)
def _chat_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/chat/completions"


@lru_cache(maxsize=1024)
def _embeddings_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/embeddings"


def _error_from(status: int, raw: bytes, headers: dict[str, str], endpoint: Endpoint) -> SwitchyardError:
    provider = endpoint.provider.id
    message, code = raw[:500].decode("utf-8", "replace"), None
    try:
        err = orjson.loads(raw).get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            code = err.get("code") or err.get("type")
        elif isinstance(err, str):
            message = err
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return upstream_error(status, _redact(message, endpoint), provider=provider, code=str(code) if code else None,
                          retry_after=headers.get("retry-after"))


def _redact(message: str, endpoint: Endpoint) -> str:
    """Vendors echo the key they were sent in auth errors; it must never reach our caller or our logs."""
    key = vendor_key(endpoint.provider.api_key_env, endpoint.provider.api_key_secret) or ""
    if len(key) >= 8:
        message = message.replace(key, "[redacted]").replace(key[:8], "[redacted]")
    return message


class OpenAIProvider:
    streams_by_read = True
    honours_deadline = True  # all its I/O goes through base.post
    auth_header, auth_prefix = "Authorization", "Bearer "

    def url(self, endpoint: Endpoint) -> str:
        return _chat_url(endpoint.provider.base_url)  # type: ignore[arg-type]

    def embeddings_url(self, endpoint: Endpoint) -> str:
        return _embeddings_url(endpoint.provider.base_url)  # type: ignore[arg-type]

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        p = endpoint.provider
        cached = _headers_cache.get(p.id)
        if cached is not None and cached[1] is p and cached[0] > time.monotonic():
            return cached[2]
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **p.headers}
        key = vendor_key(p.api_key_env, p.api_key_secret)
        if key:
            headers[self.auth_header] = self.auth_prefix + key
        _headers_cache[p.id] = (time.monotonic() + _HEADERS_SECONDS, p, headers)
        return headers

    async def _post(self, endpoint: Endpoint, body: dict[str, Any]) -> Response:
        return await post(endpoint, self.url(endpoint), self.headers(endpoint), orjson.dumps(body))

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion:
        body = request.upstream_body(endpoint.upstream_model)
        body["stream"] = False
        provider = endpoint.provider.id
        raw = await read_ok(await self._post(endpoint, body), endpoint, _error_from)
        try:
            data = orjson.loads(raw)
            choices = data["choices"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError(f"{provider} returned a body that is not a chat completion",
                                metadata={"provider_name": provider}) from None
        usage = Usage.from_openai(data.get("usage")) or Usage(estimated=True)
        finish = choices[0].get("finish_reason") if choices else None
        return Completion(data, usage, finish, data.get("id"))

    async def embed(self, request: Any, endpoint: Endpoint) -> Completion:
        """Embeddings (shared/chat/embeddings.py): the client's body with the upstream model, the answer as sent."""
        body = orjson.dumps(request.upstream_body(endpoint.upstream_model))
        provider = endpoint.provider.id
        resp = await post(endpoint, self.embeddings_url(endpoint), self.headers(endpoint), body)
        raw = await read_ok(resp, endpoint, _error_from)
        try:
            data = orjson.loads(raw)
            if not isinstance(data["data"], list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError(f"{provider} returned a body that is not a list of embeddings",
                                metadata={"provider_name": provider}) from None
        usage = Usage.from_openai(data.get("usage")) or Usage(estimated=True)
        return Completion(data, usage, None, data.get("id"))

    def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[list[dict[str, Any]] | Marker]:
        """The upstream's chunks by read: sse_data's generator itself (the post made at its first step), each
        read's data parsed by `_decoder`, so that a stream waits in one frame of ours a read."""
        return sse_data(partial(self._post_stream, request, endpoint), endpoint, _error_from,
                        _decoder(endpoint.provider.id))

    async def _post_stream(self, request: ChatRequest, endpoint: Endpoint) -> Response:
        body = request.upstream_body(endpoint.upstream_model)
        body["stream"] = True
        body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        return await self._post(endpoint, body)


def _decoder(provider: str) -> Callable[[list[bytes]], tuple[list[dict[str, Any]], bool]]:
    """A read's event data → its chunks, and whether `[DONE]` ended the stream there."""

    def decode(read: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
        chunks = []
        for data in read:
            if data == b"[DONE]":
                return chunks, True
            chunks.append(_chunk(data, provider))
        return chunks, False

    return decode


def _chunk(data: bytes, provider: str) -> dict[str, Any]:
    """One event's data → a chunk."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        raise UpstreamError(f"{provider} sent a stream event that is not a JSON object",
                            metadata={"provider_name": provider})
    if "error" in chunk:
        err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
        raise UpstreamError(f"{provider} failed mid-stream: {str(err.get('message'))[:300]}",
                            metadata={"provider_name": provider, "upstream_code": err.get("code")})
    return chunk


class AzureProvider(OpenAIProvider):
    """The `azure` kind: Azure OpenAI. The same wire format at deployment URLs with an api-version
    (`/openai/deployments/{upstream_model}/chat/completions?api-version=…`), or at the version-less
    `/openai/v1/chat/completions` when the provider's api_version is "v1" (the default); the key goes in
    the `api-key` header."""

    auth_header, auth_prefix = "api-key", ""

    def url(self, endpoint: Endpoint) -> str:
        p = endpoint.provider
        base = (p.base_url or "").rstrip("/")
        if (p.api_version or "v1") == "v1":
            return f"{base}/openai/v1/chat/completions"
        return f"{base}/openai/deployments/{endpoint.upstream_model}/chat/completions?api-version={p.api_version}"

    def embeddings_url(self, endpoint: Endpoint) -> str:
        return self.url(endpoint).replace("/chat/completions", "/embeddings", 1)
