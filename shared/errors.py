"""Switchyard's one exception tree.

Every error the gateway can answer with is a subclass of `SwitchyardError` carrying its HTTP status,
a message safe to show the caller and a metadata dict. `functions/gateway/app.py` maps the tree to the
documented body `{"error": {"code": status, "message": ..., "metadata": {...}}}` in exactly one place;
domain code raises these and never builds HTTP responses itself.

    SwitchyardError
    ├── BadRequestError            400  invalid body or parameter (metadata.field names it)
    ├── AuthenticationError        401  no key, malformed key, unknown key, wrong secret, disabled key
    ├── InsufficientCreditsError   402  the key's credit limit is spent
    ├── ForbiddenError             403  the key may not do this (e.g. a management key calling a model)
    ├── NotFoundError              404  unknown resource
    │   └── ModelNotFoundError     404  unknown model id
    ├── PayloadTooLargeError       413  body over the documented size, refused before parsing
    ├── RateLimitedError           429  ours or the upstream's (Retry-After passed on)
    ├── UpstreamError              502  the provider answered with an error or garbage
    ├── NoProviderError            503  no endpoint of the model is available
    ├── UpstreamTimeoutError       504  the provider did not answer in time
    └── StorageError               503  DynamoDB/S3 failed (throttled or unreachable)
"""

from __future__ import annotations

from typing import Any


class SwitchyardError(Exception):
    """Base of every error with an HTTP meaning."""

    status: int = 500
    error_type: str = "internal_error"

    def __init__(self, message: str, *, metadata: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {"error_type": self.error_type, **(metadata or {})}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "metadata": self.metadata}}


class BadRequestError(SwitchyardError):
    status, error_type = 400, "invalid_request"


class AuthenticationError(SwitchyardError):
    status, error_type = 401, "authentication_failed"


class InsufficientCreditsError(SwitchyardError):
    status, error_type = 402, "insufficient_credits"


class ForbiddenError(SwitchyardError):
    status, error_type = 403, "forbidden"


class NotFoundError(SwitchyardError):
    status, error_type = 404, "not_found"


class ModelNotFoundError(NotFoundError):
    error_type = "model_not_found"


class PayloadTooLargeError(SwitchyardError):
    status, error_type = 413, "payload_too_large"


class RateLimitedError(SwitchyardError):
    status, error_type = 429, "rate_limit_exceeded"


class UpstreamError(SwitchyardError):
    status, error_type = 502, "provider_error"


class NoProviderError(SwitchyardError):
    status, error_type = 503, "provider_unavailable"


class UpstreamTimeoutError(SwitchyardError):
    status, error_type = 504, "timeout"


class StorageError(SwitchyardError):
    status, error_type = 503, "storage_unavailable"
