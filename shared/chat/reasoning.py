"""OpenRouter's `reasoning` parameter ({effort, max_tokens, exclude, enabled}) as a thinking budget, for the vendors
that take one: Anthropic's `thinking.budget_tokens` and Gemini's `thinkingConfig.thinkingBudget` (the sim thinks
too). OpenAI-compatible upstreams get the parameter as sent. The reasoning text comes back as OpenRouter returns
it, `message.reasoning` (streamed: `delta.reasoning`), unless `exclude` is set; reasoning tokens are billed as
output either way (`completion_tokens_details.reasoning_tokens`).

A budget: `max_tokens` when given, else the share of the request's output limit that OpenRouter gives each
effort (high 80%, medium 50%, low 20%, minimal 10%), at least 1,024 and at most 32,000 tokens (Anthropic's floor,
OpenRouter's cap); `enabled: true` alone is medium. It must stay under the output limit, which it is part of.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.chat.schema import ChatRequest

SHARE = {"high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1}
FLOOR, CAP = 1024, 32_000


def budget(request: "ChatRequest", output_limit: int) -> int | None:
    """Thinking tokens for this call (None: no reasoning asked for), within `output_limit`."""
    r = request.reasoning
    if r is None or r.enabled is False or (r.effort is None and r.max_tokens is None and not r.enabled):
        return None
    if r.max_tokens is not None:
        wanted = r.max_tokens
    else:
        wanted = max(FLOOR, min(CAP, int(output_limit * SHARE[r.effort or "medium"])))
    return max(min(wanted, output_limit - 1), 0) or None


def shown(request: "ChatRequest") -> bool:
    """Whether the reasoning text goes back to the caller."""
    return request.reasoning is None or not request.reasoning.exclude
