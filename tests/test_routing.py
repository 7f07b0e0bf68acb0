"""Routing and resilience: policies and their rules, weighted splits, provider routing, fallbacks, retries and
circuit breakers, streamed and not, against `sim` and the fake OpenAI-compatible upstream."""

import asyncio
from collections import Counter

import orjson
import pytest

from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.config import Settings
from shared.errors import BadRequestError, NoProviderError, RateLimitedError, UpstreamError
from shared.routing.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerPolicy
from shared.routing.plan import Plan
from tests.support import Recorder, catalog_from, run, sse_frames

SIM = r"""
  - {id: sim-a, kind: sim}
  - {id: sim-b, kind: sim, data_collection: deny}
  - {id: sim-c, kind: sim}
"""
MODELS = r"""
  - {id: acme/m, provider: sim-a, upstream_model: m, pricing: {prompt: 1, completion: 2}, sim: {}}
  - {id: acme/m, provider: sim-b, upstream_model: m, pricing: {prompt: 4, completion: 8}, sim: {},
     supported_parameters: [max_tokens, temperature, stream]}
  - {id: acme/m, provider: sim-c, upstream_model: m, pricing: {prompt: 2, completion: 4}, sim: {}}
  - {id: acme/down, provider: sim-a, upstream_model: down, sim: {error_rate: 1.0, error_status: 503}}
  - {id: acme/ok, provider: sim-a, upstream_model: ok, pricing: {prompt: 1, completion: 1}, sim: {}}
  - {id: acme/short, provider: sim-a, upstream_model: short, context_length: 40, sim: {}}
  - {id: acme/long, provider: sim-a, upstream_model: long, context_length: 100000, sim: {}}
  - {id: acme/limited, provider: sim-a, upstream_model: limited, sim: {error_rate: 1.0, error_status: 429,
     retry_after_seconds: 7}}
  - {id: acme/plain-upstream, provider: fakevendor, upstream_model: ok, supported_parameters: [max_tokens, stream]}
  - {id: acme/silent, provider: sim-a, upstream_model: silent, timeout_seconds: 0.3, sim: {timeout_rate: 1.0}}
"""
ROUTES = r"""
routes:
  - id: acme/router
    rules:
      - {name: long, when: {prompt_tokens: "> 100"}, then: {model: acme/long}}
      - {name: legal, when: {keywords: [legal, "breach of contract"]}, then: {model: acme/ok}}
      - {name: sql, when: {regex: "(?i)\\bselect\\b.+\\bfrom\\b"}, then: {model: acme/m}}
      - {name: billing app, when: {app: [Billing Bot, "https://billing.example"]}, then: {model: acme/down}}
      - {name: beta, when: {key_tag: [beta]}, then: {model: acme/short}}
      - {name: vip, when: {key: [vip000000001]}, then: {model: acme/long}}
      - {name: both, when: {key_tag: [gamma], keywords: [urgent]}, then: {model: acme/m}}
    default: {model: acme/ok}
  - id: acme/split
    default: {split: [{model: acme/ok, weight: 70}, {model: acme/long, weight: 20}, {model: acme/m, weight: 10}]}
  - id: acme/intercept
    applies_to: ["other/*"]
    rules: [{when: {model: ["other/special"]}, then: {model: acme/long}}]
    default: {model: acme/ok}
  - id: acme/chain
    default: {model: acme/down, fallbacks: [acme/ok]}
  - id: acme/context
    default: {model: acme/short}
    on_error: {context_length_exceeded: acme/long}
  - id: acme/nested
    default: {model: acme/down, fallbacks: [acme/chain, acme/long]}
"""


@pytest.fixture
def make(fake_upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VENDOR_KEY", "k")
    fake = fake_upstream.catalog_yaml()
    providers, models = fake.split("models:\n")
    text = providers + SIM + "models:\n" + models + MODELS + ROUTES

    def build(**settings):
        return ChatService(catalog_from(text, tmp_path), Recorder(), Settings(**settings))
    return build


@pytest.fixture
def service(make):
    return make()


def req(model="acme/ok", content="hi", **fields):
    return parse_chat_request(orjson.dumps({"model": model, "messages": [{"role": "user", "content": content}],
                                            **fields}))


def decide(service, request, **ctx):
    plan = Plan(service.routing, request, CallContext(key_id=ctx.pop("key_id", "k"), **ctx))
    return plan.chain[0], plan.rule


# -- rules --

def test_each_rule_kind_selects_its_model(service):
    assert decide(service, req("acme/router", "x" * 404)) == ("acme/long", "long")
    assert decide(service, req("acme/router", "x" * 400)) == ("acme/ok", "default")  # 100 tokens is not > 100
    assert decide(service, req("acme/router", "Is this LEGAL?")) == ("acme/ok", "legal")
    assert decide(service, req("acme/router", "a clear breach of contract")) == ("acme/ok", "legal")
    assert decide(service, req("acme/router", "paralegal")) == ("acme/ok", "default")  # whole words only
    assert decide(service, req("acme/router", "Select name FROM users")) == ("acme/m", "sql")
    assert decide(service, req("acme/router"), app_title="Billing Bot") == ("acme/down", "billing app")
    assert decide(service, req("acme/router"), app_referer="https://billing.example") == ("acme/down", "billing app")
    assert decide(service, req("acme/router"), key_tags=("alpha", "beta")) == ("acme/short", "beta")
    assert decide(service, req("acme/router"), key_id="vip000000001") == ("acme/long", "vip")
    assert decide(service, req("acme/router", "urgent!"), key_tags=("gamma",)) == ("acme/m", "both")
    assert decide(service, req("acme/router", "urgent!")) == ("acme/ok", "default")  # every condition must hold
    assert decide(service, req("other/special")) == ("acme/long", "rule 1")  # applies_to + a model condition
    assert decide(service, req("other/anything")) == ("acme/ok", "default")


def test_the_chain_is_the_choice_then_fallbacks_then_the_requests_models(service):
    plan = Plan(service.routing, req("acme/chain", models=["acme/long"]), CallContext(key_id="k"))
    assert plan.chain == ["acme/down", "acme/ok", "acme/long"]


def test_a_policy_named_later_in_the_chain_is_expanded_once(make):
    service = make(max_retries=0)
    body, event = call(service, req("acme/nested"))  # acme/down, then policy acme/chain → (acme/down), acme/ok
    assert body["model"] == "acme/ok"
    assert [a["model"] for a in event.attempts] == ["acme/down", "acme/ok"]
    body, event = call(service, req("acme/down", models=["acme/split"]))  # a policy as a request-level fallback
    assert body["model"] in {"acme/ok", "acme/long", "acme/m"} and event.attempts[0]["model"] == "acme/down"


@pytest.mark.parametrize("sticky", [False, True])
def test_weighted_split_is_within_3_percent_over_10000_requests(service, sticky):
    counts = Counter(decide(service, req("acme/split", user=f"user-{i}" if sticky else None))[0]
                     for i in range(10_000))
    for model, weight in (("acme/ok", 0.7), ("acme/long", 0.2), ("acme/m", 0.1)):
        assert abs(counts[model] / 10_000 - weight) <= 0.03, counts


def test_sticky_split_keeps_a_user_or_session_on_one_model(service):
    for i in range(50):
        first = decide(service, req("acme/split", user=f"u{i}"))[0]
        assert all(decide(service, req("acme/split", user=f"u{i}"))[0] == first for _ in range(5))
        by_session = decide(service, req("acme/split", session_id=f"s{i}"))[0]
        assert decide(service, req("acme/split", session_id=f"s{i}", user="someone"))[0] == by_session


# -- provider routing --

def providers(service, request):
    return [c.endpoint.provider.id for c in service.routing.candidates("acme/m", request)]


def test_provider_order_only_ignore_sort_and_allow_fallbacks(service):
    assert providers(service, req(provider={"sort": "price"})) == ["sim-a", "sim-c", "sim-b"]
    assert providers(service, req(provider={"order": ["sim-b", "sim-c"]}))[:2] == ["sim-b", "sim-c"]
    assert providers(service, req(provider={"order": ["sim-b"], "allow_fallbacks": False})) == ["sim-b"]
    assert providers(service, req(provider={"only": ["sim-c", "sim-b"], "sort": "price"})) == ["sim-c", "sim-b"]
    assert providers(service, req(provider={"ignore": ["sim-a"], "sort": "price"})) == ["sim-c", "sim-b"]
    assert providers(service, req(provider={"data_collection": "deny"})) == ["sim-b"]
    service.routing.latency.update({("sim-a", "acme/m"): 90.0, ("sim-b", "acme/m"): 10.0, ("sim-c", "acme/m"): 50.0})
    assert providers(service, req(provider={"sort": "latency"})) == ["sim-b", "sim-c", "sim-a"]


def test_default_provider_choice_weights_by_inverse_square_price(service):
    firsts = Counter(providers(service, req())[0] for _ in range(3000))
    # weights 1/3², 1/6², 1/12² → shares 76.2%, 19.0%, 4.8%
    assert abs(firsts["sim-a"] / 3000 - 0.762) < 0.04 and abs(firsts["sim-c"] / 3000 - 0.190) < 0.04
    assert firsts["sim-b"] > 0


def test_an_endpoint_whose_last_call_failed_goes_last_by_default(service):
    service.routing.breakers("sim-a", "m").failure()
    assert all(providers(service, req())[-1] == "sim-a" for _ in range(50))
    service.routing.breakers("sim-a", "m").success()
    assert Counter(providers(service, req())[0] for _ in range(200))["sim-a"] > 100


def test_max_price_filters_endpoints(service):
    assert providers(service, req(provider={"max_price": {"prompt": 2}, "sort": "price"})) == ["sim-a", "sim-c"]
    assert providers(service, req(provider={"max_price": {"prompt": 2, "completion": 2.5}})) == ["sim-a"]
    with pytest.raises(NoProviderError):
        providers(service, req(provider={"max_price": {"prompt": 0.5}}))


def test_require_parameters_filters_and_unsupported_parameters_are_dropped(service):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    preferring = providers(service, req(tools=tools, provider={"sort": "price", "order": ["sim-b"]}))
    assert preferring[-1] == "sim-b"  # a request with tools tries endpoints that support them first
    assert "sim-b" not in providers(service, req(tools=tools, provider={"require_parameters": True}))
    request = req(tools=tools, seed=3, provider={"only": ["sim-b"]})
    (only_b,) = service.routing.candidates("acme/m", request)
    assert request.parameters() - only_b.endpoint.supported == {"tools", "seed"}
    assert request.for_endpoint(only_b.endpoint.supported).parameters() == set()
    body = run(service.complete(req("acme/m", tools=tools, seed=3, provider={"only": ["sim-b"]}),
                                CallContext(key_id="k")))
    assert body["provider"] == "sim-b" and body["choices"][0]["message"].get("tool_calls") is None
    with pytest.raises(NoProviderError):
        providers(service, req(tools=tools, provider={"only": ["sim-b"], "require_parameters": True}))


def test_a_single_endpoint_gets_only_the_parameters_it_supports(service, fake_upstream):
    for stream in (False, True):
        request = req("acme/plain-upstream", seed=3, temperature=0.2, max_tokens=9, top_k=4, stream=stream)
        if stream:
            stream_chunks = run(_collect_stream(service, request))
            assert stream_chunks
        else:
            run(service.complete(request, CallContext(key_id="k")))
        sent = fake_upstream.requests[-1]["body"]
        assert sent["max_tokens"] == 9 and sent["top_k"] == 4  # supported, and a vendor extra, pass
        assert "seed" not in sent and "temperature" not in sent


async def _collect_stream(service, request):
    sse = await service.open_stream(request, CallContext(key_id="k"))
    return sse_frames([frame async for frame in sse])


def test_bad_provider_preferences_are_a_400():
    with pytest.raises(BadRequestError) as e:
        req(provider={"sort": "fastest"})
    assert e.value.metadata["field"] == "provider.sort"


# -- fallbacks --

def call(service, request, ctx=None):
    ctx = ctx or CallContext(key_id="k")
    return run(service.complete(request, ctx)), service.meter.events[-1]


@pytest.mark.parametrize("failing, status, error_type", [
    ("fake/error-500", 500, "provider_error"),
    ("fake/hang", 504, "timeout"),
    ("fake/reset", 502, "provider_error"),
    ("acme/down", 503, "provider_overloaded"),
])
def test_fallback_on_5xx_timeout_and_connection_reset(make, failing, status, error_type):
    service = make(max_retries=0)
    body, event = call(service, req(failing, models=["acme/ok"]))
    assert body["model"] == "acme/ok" and body["provider"] == "sim-a" and body["choices"][0]["message"]["content"]
    first, second = event.attempts
    assert (first["model"], first["status"], first["error_type"]) == (failing, status, error_type)
    assert (second["model"], second["status"], second["error_type"]) == ("acme/ok", 200, None)
    assert event.model == "acme/ok" and event.status == "completed" and event.cost == body["usage"]["cost"] > 0


def test_a_fallback_adds_only_the_failed_attempt(make):
    service = make(max_retries=0)
    body, event = call(service, req("acme/chain"))
    assert body["model"] == "acme/ok" and event.route == "acme/chain" and event.route_rule == "default"
    assert [a["model"] for a in event.attempts] == ["acme/down", "acme/ok"]


def test_policy_reroutes_on_context_length_exceeded(service):
    long_prompt = " ".join(["word"] * 60)  # > 40 tokens: too long for acme/short
    body, event = call(service, req("acme/context", long_prompt))
    assert body["model"] == "acme/long"
    assert [(a["model"], a["error_type"]) for a in event.attempts] == [
        ("acme/short", "context_length_exceeded"), ("acme/long", None)]


def test_every_model_failing_returns_the_last_error_and_meters_every_attempt(make):
    service = make(max_retries=0)
    with pytest.raises(UpstreamError) as e:
        call(service, req("fake/error-500", models=["acme/down"]))
    assert e.value.metadata["error_type"] == "provider_overloaded"  # acme/down's, the last one tried
    event = service.meter.events[-1]
    assert event.status == "failed" and event.cost == 0 and len(event.attempts) == 2


# -- retries --

def test_a_transient_failure_is_retried_after_a_backoff(make, fake_upstream):
    service = make(max_retries=1, retry_backoff_seconds=0.01)
    fake_upstream.calls["fail-once"] = 0
    body, event = call(service, req("fake/fail-once"))
    assert body["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert [(a["status"], a["round"]) for a in event.attempts] == [(503, 0), (200, 1)]
    fake_upstream.calls["fail-once"] = 0
    with pytest.raises(UpstreamError):
        call(make(max_retries=0), req("fake/fail-once"))


def test_retry_after_beyond_the_wait_limit_is_passed_on_not_waited(make):
    service = make(max_retries=2, max_retry_wait_seconds=5)
    with pytest.raises(RateLimitedError) as e:
        call(service, req("acme/limited"))
    assert e.value.headers["Retry-After"] == "7" and service.meter.events[-1].attempts is None  # one attempt


def test_non_transient_errors_are_not_retried(make):
    service = make(max_retries=3, retry_backoff_seconds=0.01)
    with pytest.raises(BadRequestError) as e:
        call(service, req("fake/error-context"))
    assert e.value.metadata["error_type"] == "context_length_exceeded"
    assert service.meter.events[-1].attempts is None  # a single attempt is the record itself


# -- circuit breakers --

def test_breaker_opens_sheds_half_opens_and_closes():
    b = Breaker(BreakerPolicy(consecutive=3, cooldown=10))
    for t in (0, 1):
        b.failure(now=t)
    assert b.state == CLOSED and b.allow(now=2)
    b.failure(now=2)
    assert b.state == OPEN and not b.allow(now=5)
    assert b.allow(now=12.5) and b.state == HALF_OPEN  # the probe
    assert not b.allow(now=12.6)  # one probe at a time
    b.failure(now=13)
    assert b.state == OPEN and not b.allow(now=20)
    assert b.allow(now=23.5)
    b.success(now=24)
    assert b.state == CLOSED and b.allow(now=24) and b.streak == 0


def test_breaker_opens_on_error_rate():
    b = Breaker(BreakerPolicy(consecutive=100, error_rate=0.5, min_calls=20, window=60))
    for i in range(20):
        (b.failure if i % 2 else b.success)(now=float(i))
    assert b.state == OPEN
    quiet = Breaker(BreakerPolicy(consecutive=100, error_rate=0.5, min_calls=20, window=60))
    for i in range(20):
        (quiet.failure if i % 3 == 0 else quiet.success)(now=float(i))
    assert quiet.state == CLOSED


def test_an_open_breaker_sheds_calls_then_a_probe_recovers(make, fake_upstream):
    service = make(max_retries=0, breaker_consecutive_failures=1, breaker_cooldown_seconds=0.2)
    fake_upstream.calls["fail-once"] = 0
    with pytest.raises(UpstreamError):
        call(service, req("fake/fail-once"))
    assert fake_upstream.calls["fail-once"] == 1
    with pytest.raises(NoProviderError) as e:  # shed: the upstream is not called
        call(service, req("fake/fail-once"))
    assert fake_upstream.calls["fail-once"] == 1 and e.value.metadata["breaker"] == "open"
    assert int(e.value.headers["Retry-After"]) >= 1
    (skipped,) = service.meter.events[-1].attempts
    assert (skipped["model"], skipped["error_type"], skipped["skipped"]) == ("fake/fail-once", "circuit_open", True)
    body, event = call(service, req("fake/fail-once", models=["acme/ok"]))  # open: skipped, the fallback serves
    assert body["model"] == "acme/ok" and fake_upstream.calls["fail-once"] == 1
    assert [(a["model"], a["status"]) for a in event.attempts] == [("fake/fail-once", None), ("acme/ok", 200)]
    run(asyncio.sleep(0.25))
    body, _ = call(service, req("fake/fail-once"))  # half-open: the probe goes through and succeeds
    assert body["model"] == "fake/fail-once" and fake_upstream.calls["fail-once"] == 2
    assert service.routing.breakers("fakevendor", "fail-once").state == CLOSED


# -- streams --

def stream(service, request, raw=False):
    async def go():
        sse = await service.open_stream(request, CallContext(key_id="k"))
        return sse_frames([frame async for frame in sse])
    frames = run(go())
    chunks = [orjson.loads(f[6:]) for f in frames if f.startswith(b"data: {")]
    return (chunks, service.meter.events[-1]) if not raw else (chunks, service.meter.events[-1], frames)


def test_stream_falls_back_after_keepalives_when_no_data_was_sent(make):
    """The 200 and keep-alive comments went out while the first model was silent; no data had, so the
    fallback still serves the stream."""
    service = make(max_retries=0, keepalive_seconds=0.05)
    chunks, event, frames = stream(service, req("acme/silent", models=["acme/ok"], stream=True), raw=True)
    assert frames[0].startswith(b": ") and {c["model"] for c in chunks} == {"acme/ok"}
    assert [(a["model"], a["error_type"]) for a in event.attempts] == [("acme/silent", "timeout"), ("acme/ok", None)]
    assert event.status == "completed" and chunks[-1]["usage"]["completion_tokens"] > 0


def test_stream_falls_back_before_the_first_byte(make):
    chunks, event = stream(make(max_retries=0), req("acme/chain", stream=True))
    assert {c["model"] for c in chunks} == {"acme/ok"} and chunks[-1]["usage"]["completion_tokens"] > 0
    assert [a["model"] for a in event.attempts] == ["acme/down", "acme/ok"] and event.status == "completed"


def test_stream_error_after_the_first_byte_is_a_clean_error_event_not_a_fallback(make):
    chunks, event = stream(make(), req("fake/mid-error", models=["acme/ok"], stream=True))
    assert {c["model"] for c in chunks} == {"fake/mid-error"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "error" and chunks[-1]["error"]["code"] == 502
    assert event.status == "failed" and len(event.attempts) == 1 and event.attempts[0]["mid_stream"] is True


def test_stream_with_every_candidate_failing_is_a_plain_http_error(make):
    async def go():
        await service.open_stream(req("acme/down", models=["fake/error-500"], stream=True), CallContext(key_id="k"))
    service = make(max_retries=0)
    with pytest.raises(UpstreamError):
        run(go())
    assert service.meter.events[-1].status == "failed" and len(service.meter.events[-1].attempts) == 2


# -- gates: skipping rules by their words never changes the decision --

from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

from shared.routing.policy import RoutePolicy, CompiledPolicy, RoutingInput, has_term, regex_gate  # noqa: E402

VOCAB = ["legal", "contract", "Select", "from", "users", "c++", "e-mail", "naïve", "über", "a_b", "x1", "legal’s"]
TEXT = st.lists(st.sampled_from(VOCAB + [" ", ", ", ".", "-", "’", "\n", "LEGAL", "para", "é", "_"]), max_size=30)
TERM = st.sampled_from(VOCAB + ["breach of contract", "select from", "!!", "para legal", "é"])
PATTERNS = [r"\blegal\b", r"(?i)\bselect\b.+\bfrom\b", r"x\d", r"\bSelect\b", r"(?i)c\+\+", r"\bnaïve\b",
            r"legal|contract", r"(?i)\bE-MAIL\b", r"\ba_b\b", r"(?i)LEGAL’S"]
REGEX = st.sampled_from(PATTERNS)


class _Message:
    def __init__(self, text):
        self._text = text

    def text(self):
        return self._text


def _reference(policy: CompiledPolicy, inp: RoutingInput) -> str:
    for checks, _action, name, _gate in policy.rules:
        if all(check(inp) for check in checks):
            return name
    return "default"


@hsettings(max_examples=300, deadline=None)
@given(rules=st.lists(st.one_of(st.builds(lambda t: {"keywords": t}, st.lists(TERM, min_size=1, max_size=3)),
                                st.builds(lambda r: {"regex": r}, REGEX)), min_size=1, max_size=8),
       parts=TEXT)
def test_gated_rules_decide_exactly_as_checking_every_rule(rules, parts):
    spec = RoutePolicy.model_validate({"id": "t/p", "default": {"model": "a/b"}, "rules": [
        {"name": f"r{i}", "when": when, "then": {"model": "a/b"}} for i, when in enumerate(rules)]})
    policy = CompiledPolicy(spec)
    text = "".join(parts)
    gated = policy.decide(RoutingInput([_Message(text)], "t/p"))[1]
    assert gated == _reference(policy, RoutingInput([_Message(text)], "t/p")), text


def test_whole_word_terms_and_regex_gates():
    assert has_term("is it legal?", "legal") and not has_term("paralegal", "legal")
    assert has_term("a breach of contract.", "breach of contract") and has_term("c++ rocks", "c++")
    assert regex_gate(r"(?i)\bSELECT\b.+\bfrom\b") == {b"select"} and regex_gate(r"legal|contract") is None
    assert regex_gate(r"x\d") is None and regex_gate(r"\bnaïve\b") is None


@hsettings(max_examples=300, deadline=None)
@given(parts=TEXT)
def test_regex_prefilter_never_changes_a_match(parts):
    import re

    from shared.routing.policy import When, compile_when
    text = "".join(parts)
    for pattern in PATTERNS:
        (check,) = compile_when(When(regex=pattern))
        assert check(RoutingInput([_Message(text)], "t/p")) == (re.search(pattern, text) is not None), pattern
