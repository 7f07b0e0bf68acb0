"""Switchyard's one exception tree.

Every error the gateway can answer with is a subclass of `SwitchyardError` carrying its HTTP status, its kind
(`error_type`, the name clients see in `metadata.error_type` and policies name in `on_error`), a message safe to
show the caller and a metadata dict. Three class attributes say what routing does with it
(shared/routing/plan.py): `retryable` (transient: worth another round after a backoff), `request_fault` (the
request's fault, not the endpoint's: it does not count against the endpoint's circuit breaker) and
`every_endpoint` (the model's other endpoints would refuse it too: the plan moves on to the next model). A new
kind of error is a new subclass here; nothing else lists the kinds (a policy's `on_error` is checked against
`ERROR_TYPES`). `functions/gateway/app.py` maps the tree to the documented body
`{"error": {"code": status, "message": ..., "metadata": {...}}}` in exactly one place;
domain code raises these and never builds HTTP responses itself.

    SwitchyardError                      500  internal_error
    ├── BadRequestError                  400  invalid_request           request fault, every endpoint; metadata.field
    │   ├── ContextLengthExceededError   400  context_length_exceeded   request fault (a longer context may take it)
    │   └── ContentPolicyError           400  content_policy_violation  request fault, every endpoint
    ├── AuthenticationError              401  authentication_failed     no, malformed, unknown or disabled key
    ├── InsufficientCreditsError         402  insufficient_credits      request fault: the key cannot afford the call
    ├── ForbiddenError                   403  forbidden                 the key may not do this
    │   └── LicenseRefusedError          403  license_refused           a synthetic job not license-safe; metadata.problems
    ├── NotFoundError                    404  not_found
    │   └── ModelNotFoundError           404  model_not_found
    ├── ConflictError                    409  conflict                  not in this state (e.g. a review of a running job)
    ├── PayloadTooLargeError             413  payload_too_large         request fault (another endpoint may take it)
    ├── RateLimitedError                 429  rate_limit_exceeded       retryable (Retry-After passed on)
    │   └── KeyRateLimitedError          429  rate_limit_exceeded       the key's own rpm/rpd/tpm: request fault, never
    │                                                                   retried; metadata.reason, X-RateLimit-* headers
    ├── UpstreamError                    502  provider_error            retryable: the provider answered badly
    │   ├── ProviderOverloadedError      502  provider_overloaded       retryable (503/529 upstream)
    │   ├── ProviderUnreachableError     502  provider_unavailable      retryable (could not connect)
    │   └── ProviderAuthError            502  provider_auth_failed      the gateway's vendor key was refused
    ├── NoProviderError                  503  provider_unavailable      retryable: no endpoint available
    ├── UpstreamTimeoutError             504  timeout                   retryable
    └── StorageError                     503  storage_unavailable       DynamoDB/S3 failed
"""

from __future__ import annotations

from typing import Any


class SwitchyardError(Exception):
    """Base of every error with an HTTP meaning."""

    status: int = 500
    error_type: str = "internal_error"
    retryable: bool = False  # transient: the plan may try the same endpoint again after a backoff
    request_fault: bool = False  # the request's fault: not counted against the endpoint's breaker
    every_endpoint: bool = False  # every endpoint of the model would refuse it too: skip to the next model

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
    request_fault = every_endpoint = True


class ContextLengthExceededError(BadRequestError):
    error_type = "context_length_exceeded"
    every_endpoint = False  # another endpoint may have a longer context


class ContentPolicyError(BadRequestError):
    error_type = "content_policy_violation"


class AuthenticationError(SwitchyardError):
    status, error_type = 401, "authentication_failed"


class InsufficientCreditsError(SwitchyardError):
    status, error_type = 402, "insufficient_credits"
    request_fault = True  # the key cannot afford it: the endpoint is not to blame


class ForbiddenError(SwitchyardError):
    status, error_type = 403, "forbidden"


class LicenseRefusedError(ForbiddenError):
    """A synthetic job whose models or seeds are not license-safe for its purpose: nothing was called."""

    error_type = "license_refused"


class NotFoundError(SwitchyardError):
    status, error_type = 404, "not_found"


class ConflictError(SwitchyardError):
    status, error_type = 409, "conflict"


class ModelNotFoundError(NotFoundError):
    error_type = "model_not_found"


class PayloadTooLargeError(SwitchyardError):
    status, error_type = 413, "payload_too_large"
    request_fault = True  # an upstream's 413 is about this body: one caller's must not open the breaker for all


class RateLimitedError(SwitchyardError):
    status, error_type = 429, "rate_limit_exceeded"
    retryable = True


class KeyRateLimitedError(RateLimitedError):
    """The caller's key is over its own rate limit (shared/keys/rates.py), not the provider: routing must not
    retry it or count it against an endpoint's breaker. Same wire name as OpenAI's; `metadata.reason` says
    which limit ("rpm", "rpd" or "tpm")."""

    retryable = False
    request_fault = every_endpoint = True


class UpstreamError(SwitchyardError):
    status, error_type = 502, "provider_error"
    retryable = True


class ProviderOverloadedError(UpstreamError):
    error_type = "provider_overloaded"


class ProviderUnreachableError(UpstreamError):
    error_type = "provider_unavailable"


class ProviderAuthError(UpstreamError):
    error_type = "provider_auth_failed"
    retryable = False


class NoProviderError(SwitchyardError):
    status, error_type = 503, "provider_unavailable"
    retryable = True


class UpstreamTimeoutError(SwitchyardError):
    status, error_type = 504, "timeout"
    retryable = True


class StorageError(SwitchyardError):
    status, error_type = 503, "storage_unavailable"


class NotServedHereError(SwitchyardError):
    """A route this deployment's function does not serve (e.g. analytics on a function packaged without DuckDB)."""

    status, error_type = 501, "not_served_here"


def _tree(cls: type[SwitchyardError]) -> list[type[SwitchyardError]]:
    return [cls] + [c for sub in cls.__subclasses__() for c in _tree(sub)]


ERROR_TYPES = frozenset(cls.error_type for cls in _tree(SwitchyardError))  # every kind above, by its wire name
