"""A call's usage record, assembled as the call goes: started when the call is, labelled with each candidate
tried, finished (tokens, cost, latency) and handed to the meter exactly once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from shared.chat.context import CallContext
from shared.chat.schema import ChatRequest
from shared.errors import SwitchyardError
from shared.healing.completion import HealReport
from shared.metering import Meter, UsageEvent, cost_of
from shared.providers import Usage
from shared.routing.providers import Candidate
from shared.tokenizer import count_messages, count_text

if TYPE_CHECKING:
    from shared.keys.rates import RateLimiter
    from shared.routing.plan import Plan
    from shared.routing.state import RoutingState


def started(ctx: CallContext, request: ChatRequest | None, *, streamed: bool,
            fingerprint: Callable[[ChatRequest], str | None] | None = None) -> UsageEvent:
    """The call's usage record, named after the requested model until a candidate is tried (`label`)."""
    ids = request.model_ids if request is not None else None
    model_id = ids[0] if ids else ""
    if ctx.zero_log:  # tokens, cost, model, status and timing only: nothing that says who called or what
        return UsageEvent(id=ctx.request_id, key_id=ctx.key_id, created_at=ctx.created, model=model_id,
                          lab=model_id.split("/", 1)[0] if "/" in model_id else "",
                          request_model=model_id or None, streamed=streamed, zero_log=True)
    return UsageEvent(
        prompt_fingerprint=fingerprint(request) if fingerprint is not None and request is not None else None,
        id=ctx.request_id, key_id=ctx.key_id, created_at=ctx.created, model=model_id,
        lab=model_id.split("/", 1)[0] if "/" in model_id else "", app=ctx.app,
        app_title=ctx.app_title, app_referer=ctx.app_referer, categories=list(ctx.categories) or None,
        request_model=model_id or None, streamed=streamed,
        client_ip=ctx.client_ip, user_agent=ctx.user_agent)


def label(event: UsageEvent, route: Candidate) -> None:
    """The record names the model and endpoint that served (or, failing, the last one tried)."""
    event.model, event.lab = route.model.id, route.model.author
    event.provider, event.upstream_model = route.endpoint.provider.id, route.endpoint.upstream_model


def routed(event: UsageEvent, plan: "Plan") -> None:
    if plan.policy is not None:
        event.route, event.route_rule = plan.policy.id, plan.rule


def healed(event: UsageEvent, report: HealReport) -> None:
    event.heal_status, event.heal_repairs = report.status, report.repairs
    event.heal_audit = report.audit or None
    event.schema_valid = report.schema_valid


def failed(event: UsageEvent, error: BaseException) -> None:
    event.status = "failed"
    if isinstance(error, SwitchyardError):
        event.error_code, event.error_type = error.status, error.metadata.get("error_type")
    else:
        event.error_code, event.error_type = 500, "internal_error"


def counted_usage(request: ChatRequest, route: Candidate, completion_text: str) -> Usage:
    """Usage counted by us, for an upstream that sent none: tiktoken for OpenAI-family models, else an estimate."""
    model = route.endpoint.upstream_model
    prompt = count_messages(((m.role, m.text(), m.name) for m in request.messages), model)
    return Usage(prompt, count_text(completion_text, model) if completion_text else 0, estimated=True)


def usage_block(route: Candidate, usage: Usage) -> dict[str, Any]:
    """The answer's `usage`, in OpenRouter's shape (with `cost`)."""
    return {
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "cost": cost_of(route.endpoint.pricing, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        **({"estimated": True} if usage.estimated else {}),
    }


class Recorder:
    """Finishes records and hands them to the meter; feeds the endpoints' throughput averages on the way."""

    def __init__(self, meter: Meter, routing: "RoutingState", rates: "RateLimiter | None" = None) -> None:
        self.meter, self.routing, self.rates = meter, routing, rates

    def finish(self, event: UsageEvent, route: Candidate | None, ctx: CallContext, usage: Usage | None) -> None:
        if usage is not None and route is not None:
            event.prompt_tokens, event.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            event.cached_tokens, event.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
            event.usage_estimated = usage.estimated
            event.cost = cost_of(route.endpoint.pricing, usage.prompt_tokens, usage.completion_tokens,
                                 usage.cached_tokens)
        event.latency_ms = ctx.elapsed_ms()
        if ctx.tokens_taken:
            self._settle_tokens(ctx, usage)
        if route is not None and event.status == "completed" and event.ttft_ms is not None:
            # streamed: tokens over the generation time; unstreamed: over the whole call (no first-token time)
            seconds = ((event.latency_ms - event.ttft_ms) if event.streamed else event.latency_ms) / 1000
            if seconds > 0 and event.completion_tokens:
                self.routing.observed_throughput((route.endpoint.provider.id, route.model.id),
                                                 event.completion_tokens / seconds)
        self.meter.record(event)

    def _settle_tokens(self, ctx: CallContext, usage: Usage | None) -> None:
        """Give back what the call took of its tpm windows and did not use (latest window first)."""
        assert self.rates is not None
        unused = sum(t.amount for t in ctx.tokens_taken or ()) - \
            (usage.prompt_tokens + usage.completion_tokens if usage is not None else 0)
        for taken in reversed(ctx.tokens_taken or ()):
            back = min(taken.amount, unused)
            self.rates.give_back(taken, back)
            unused -= back
        ctx.tokens_taken = None

    def rejected(self, ctx: CallContext, request: ChatRequest | None, error: SwitchyardError) -> None:
        """A call refused before any provider was chosen (bad body, unknown model…)."""
        event = started(ctx, request, streamed=bool(request and request.stream))
        failed(event, error)
        self.finish(event, None, ctx, None)
