"""Error kinds are classes (shared/errors.py): each vendor error maps to its class, the wire keeps its names, and
the plan's decisions (breaker, retry, skipping a model's other endpoints) follow the class attributes alone."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

import shared.errors as errors
from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.config import Settings
from shared.errors import (BadRequestError, ContentPolicyError, ContextLengthExceededError, InsufficientCreditsError,
                           PayloadTooLargeError, ProviderAuthError, ProviderOverloadedError, ProviderUnreachableError,
                           RateLimitedError, SwitchyardError, UpstreamError, UpstreamTimeoutError)
from shared.providers import anthropic, bedrock, gemini, openai
from shared.providers.base import transport_error, upstream_error
from shared.providers.http import ConnectError, ReadTimeout, ResponseTooLarge, TransportError
from shared.routing.plan import Plan
from tests.support import Recorder, catalog_from, run

ENDPOINT = SimpleNamespace(provider=SimpleNamespace(id="p", api_key_env=None, api_key_secret=None))


def exactly(error: SwitchyardError, cls: type[SwitchyardError], wire: str) -> None:
    """The error is of `cls` (not a mere ancestor) and shows the name clients saw before kinds were classes."""
    assert type(error) is cls, type(error)
    assert error.metadata["error_type"] == wire == cls.error_type


# -- the tree --

def test_every_class_in_the_tree_is_a_known_error_type():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, SwitchyardError)]
    assert {c.error_type for c in classes} == errors.ERROR_TYPES
    assert all(c("m").metadata["error_type"] == c.error_type for c in classes)


# -- vendor errors → classes --

@pytest.mark.parametrize("status, message, code, cls, wire", [
    (400, "This model's maximum context length is 8192 tokens", None, ContextLengthExceededError,
     "context_length_exceeded"),
    (400, "x", "context_length_exceeded", ContextLengthExceededError, "context_length_exceeded"),
    (400, "Your request was rejected as a result of our safety system.", None, ContentPolicyError,
     "content_policy_violation"),
    (403, "blocked", "content_filter", ContentPolicyError, "content_policy_violation"),
    (400, "bad temperature", None, BadRequestError, "invalid_request"),
    (422, "unprocessable", None, BadRequestError, "invalid_request"),
    (413, "too big", None, PayloadTooLargeError, "payload_too_large"),
    (429, "slow down", None, RateLimitedError, "rate_limit_exceeded"),
    (408, "timeout", None, UpstreamTimeoutError, "timeout"),
    (504, "timeout", None, UpstreamTimeoutError, "timeout"),
    (503, "busy", None, ProviderOverloadedError, "provider_overloaded"),
    (529, "busy", None, ProviderOverloadedError, "provider_overloaded"),
    (401, "bad key", None, ProviderAuthError, "provider_auth_failed"),
    (403, "no access", None, ProviderAuthError, "provider_auth_failed"),
    (500, "oops", None, UpstreamError, "provider_error"),
    (402, "vendor account out of credit", None, UpstreamError, "provider_error"),
])
def test_upstream_http_errors_map_to_their_class(status, message, code, cls, wire):
    error = upstream_error(status, message, provider="p", code=code)
    exactly(error, cls, wire)
    assert error.status == cls.status and error.metadata["upstream_status"] == status


def test_the_retry_after_of_an_overloaded_upstream_is_kept_on_its_class():
    error = upstream_error(503, "busy", provider="p", retry_after="3")
    assert isinstance(error, ProviderOverloadedError) and error.headers == {"Retry-After": "3"}
    assert error.metadata["retry_after"] == "3"


@pytest.mark.parametrize("failure, cls, wire", [
    (ConnectError("refused"), ProviderUnreachableError, "provider_unavailable"),
    (ReadTimeout("silent"), UpstreamTimeoutError, "timeout"),
    (ResponseTooLarge(1024), UpstreamError, "provider_error"),
    (TransportError("reset"), UpstreamError, "provider_error"),
])
def test_transport_failures_map_to_their_class(failure, cls, wire):
    exactly(transport_error(failure, "p"), cls, wire)


def _body(obj) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize("status, raw, cls, wire", [
    (400, _body({"error": {"message": "too long", "code": "context_length_exceeded"}}), ContextLengthExceededError,
     "context_length_exceeded"),
    (400, _body({"error": {"message": "flagged", "code": "content_policy_violation"}}), ContentPolicyError,
     "content_policy_violation"),
    (400, _body({"error": {"message": "bad", "type": "invalid_request_error"}}), BadRequestError, "invalid_request"),
    (401, _body({"error": {"message": "Incorrect API key"}}), ProviderAuthError, "provider_auth_failed"),
    (429, _body({"error": {"message": "slow"}}), RateLimitedError, "rate_limit_exceeded"),
    (503, b"<html>busy</html>", ProviderOverloadedError, "provider_overloaded"),
])
def test_openai_errors_map_to_their_class(status, raw, cls, wire):
    exactly(openai._error_from(status, raw, {}, ENDPOINT), cls, wire)


@pytest.mark.parametrize("status, kind, message, cls, wire", [
    (400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum", ContextLengthExceededError,
     "context_length_exceeded"),
    (400, "invalid_request_error", "max_tokens: must be positive", BadRequestError, "invalid_request"),
    (529, "overloaded_error", "Overloaded", ProviderOverloadedError, "provider_overloaded"),
    (429, "rate_limit_error", "Number of requests exceeded", RateLimitedError, "rate_limit_exceeded"),
    (401, "authentication_error", "invalid x-api-key", ProviderAuthError, "provider_auth_failed"),
    (413, "request_too_large", "Request exceeds the maximum size", PayloadTooLargeError, "payload_too_large"),
    (500, "api_error", "Internal server error", UpstreamError, "provider_error"),
])
def test_anthropic_errors_map_to_their_class(status, kind, message, cls, wire):
    raw = _body({"type": "error", "error": {"type": kind, "message": message}})
    exactly(anthropic._error(status, raw, {}, ENDPOINT), cls, wire)


@pytest.mark.parametrize("status, err, cls, wire", [
    (400, {"code": 400, "status": "INVALID_ARGUMENT",
           "message": "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."},
     ContextLengthExceededError, "context_length_exceeded"),
    (400, {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid value at 'contents'"}, BadRequestError,
     "invalid_request"),
    (400, {"code": 400, "status": "PROHIBITED_CONTENT", "message": "blocked"}, ContentPolicyError,
     "content_policy_violation"),
    (429, {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted"}, RateLimitedError,
     "rate_limit_exceeded"),
    (403, {"code": 403, "status": "PERMISSION_DENIED", "message": "API key not valid"}, ProviderAuthError,
     "provider_auth_failed"),
    (503, {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}, ProviderOverloadedError,
     "provider_overloaded"),
])
def test_gemini_errors_map_to_their_class(status, err, cls, wire):
    exactly(gemini._error(status, _body([{"error": err}]), {}, ENDPOINT), cls, wire)


def _client_error(code: str, message: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Converse")


@pytest.mark.parametrize("failure, cls, wire", [
    (_client_error("ValidationException", "Input is too long for requested model."), ContextLengthExceededError,
     "context_length_exceeded"),
    (_client_error("ValidationException", "temperature must be at most 1"), BadRequestError, "invalid_request"),
    (_client_error("ThrottlingException", "Too many requests", 429), RateLimitedError, "rate_limit_exceeded"),
    (_client_error("ServiceUnavailableException", "busy", 503), ProviderOverloadedError, "provider_overloaded"),
    (_client_error("AccessDeniedException", "no model access", 403), ProviderAuthError, "provider_auth_failed"),
    (_client_error("ModelTimeoutException", "slow", 408), UpstreamTimeoutError, "timeout"),
    (_client_error("InternalServerException", "oops", 500), UpstreamError, "provider_error"),
    (EndpointConnectionError(endpoint_url="https://bedrock-runtime.example"), ProviderUnreachableError,
     "provider_unavailable"),
    (ReadTimeoutError(endpoint_url="https://bedrock-runtime.example"), UpstreamTimeoutError, "timeout"),
])
def test_bedrock_errors_map_to_their_class(failure, cls, wire):
    exactly(bedrock._error(failure, ENDPOINT), cls, wire)


# -- the plan follows the class attributes --

CATALOG = """
providers:
  - {id: sim-a, kind: sim}
  - {id: sim-b, kind: sim}
models:
  - {id: acme/m, provider: sim-a, upstream_model: m, sim: {}}
  - {id: acme/m, provider: sim-b, upstream_model: m, sim: {}}
  - {id: acme/next, provider: sim-a, upstream_model: next, sim: {}}
"""


@pytest.fixture
def make_plan(tmp_path):
    service = ChatService(catalog_from(CATALOG, tmp_path), Recorder(),
                          Settings(max_retries=1, retry_backoff_seconds=0.001))

    def make(*models: str) -> Plan:
        request = parse_chat_request(orjson.dumps({"model": models[0], "models": list(models[1:]),
                                                   "messages": [{"role": "user", "content": "hi"}]}))
        return Plan(service.routing, request, CallContext(key_id="k"))
    return make


@pytest.fixture
def plan(make_plan):
    return make_plan("acme/m", "acme/next")  # acme/m has two endpoints


class Flaky(SwitchyardError):  # a kind the plan has never heard the name of
    error_type = "flaky"
    retryable = True


class NamedLikeARateLimitButFinal(SwitchyardError):  # the name is not what decides
    error_type = "rate_limit_exceeded"


class RefusedEverywhere(SwitchyardError):
    error_type = "refused_everywhere"
    request_fault = every_endpoint = True


class RefusedHereOnly(BadRequestError):  # still `invalid_request` on the wire
    every_endpoint = False


def outcome(plan, error):
    """(counted against the breaker, retried later, the model's other endpoint skipped) after `error`."""
    first = plan.first()
    plan.failed(first, error)
    following = plan._next()
    assert following is not None
    return (first.breaker.streak == 1, error in plan.transient,
            following.model.id != first.model.id)


def test_a_custom_retryable_kind_is_retried_after_a_backoff(make_plan):
    plan = make_plan("acme/next")  # one endpoint: what is left is another round
    first = plan.first()
    again = run(plan.next_after(first, Flaky("flaky")))
    assert again is not None and again.key == first.key and plan.round == 1
    assert [(a.error_type, a.round) for a in plan.tried] == [("flaky", 0)]
    plan = make_plan("acme/next")
    assert run(plan.next_after(plan.first(), NamedLikeARateLimitButFinal("final"))) is None


def test_the_name_alone_decides_nothing(plan):
    assert outcome(plan, NamedLikeARateLimitButFinal("final")) == (True, False, False)


def test_a_custom_request_fault_for_every_endpoint_skips_the_model_and_spares_the_breaker(plan):
    assert outcome(plan, RefusedEverywhere("no")) == (False, False, True)


def test_a_bad_request_kind_that_another_endpoint_may_take_goes_to_it(plan):
    assert outcome(plan, RefusedHereOnly("not here")) == (False, False, False)


def test_a_key_that_cannot_afford_a_candidate_does_not_count_against_its_breaker(plan):
    assert outcome(plan, InsufficientCreditsError("spent")) == (False, False, False)


def test_a_keys_own_rate_limit_is_never_retried_nor_held_against_the_breaker(plan):
    """Raised before any attempt (shared/keys/rates.py); were it ever to reach the plan, it must not act as an
    upstream 429 does, although it shares the wire name."""
    assert outcome(plan, errors.KeyRateLimitedError("rpm")) == (False, False, True)


def test_an_upstream_413_does_not_count_against_the_breaker(plan):
    """One caller's oversized bodies must not open the breaker for every caller; another endpoint may take it."""
    assert outcome(plan, upstream_error(413, "too big", provider="sim-a")) == (False, False, False)


# What the plan did by name before kinds were classes (RETRYABLE, REQUEST_FAULTS, and the two kinds that skip a
# model's other endpoints): unchanged for every class but the three above.
RETRYABLE = {"rate_limit_exceeded", "provider_overloaded", "provider_error", "timeout", "provider_unavailable"}
REQUEST_FAULTS = {"invalid_request", "context_length_exceeded", "content_policy_violation"}
SKIPS = {"invalid_request", "content_policy_violation"}


@pytest.mark.parametrize("cls", [c for _, c in inspect.getmembers(errors, inspect.isclass)
                                 if issubclass(c, SwitchyardError)
                                 and c not in (InsufficientCreditsError, PayloadTooLargeError,
                                               errors.KeyRateLimitedError)])
def test_every_other_class_is_decided_as_its_name_was(plan, cls):
    name = cls.error_type
    assert outcome(plan, cls("x")) == (name not in REQUEST_FAULTS, name in RETRYABLE, name in SKIPS)


# -- policies name kinds from the one list --

def test_a_policy_names_any_kind_of_the_tree_and_nothing_else():
    from pydantic import ValidationError

    from shared.routing.policy import RoutePolicy

    policy = {"id": "acme/p", "default": {"model": "acme/m"}}
    for name in errors.ERROR_TYPES:
        assert RoutePolicy.model_validate({**policy, "on_error": {name: "acme/next"}}).on_error == {name: "acme/next"}
    with pytest.raises(ValidationError) as e:
        RoutePolicy.model_validate({**policy, "on_error": {"context_too_long": "acme/next"}})
    (problem,) = e.value.errors()
    assert problem["loc"][0] == "on_error" and "unknown error type 'context_too_long'" in problem["msg"]
    assert "context_length_exceeded" in problem["msg"]  # the names it could have meant
