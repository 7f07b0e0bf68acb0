"""What a call may cost at most on one endpoint, and the output bound that makes that true.

Output: `max_tokens` is capped at the model's `max_output`. For a key with a spend limit, a request that gives no
bound gets one (the model's `max_output`, else `DEFAULT_MAX_TOKENS`), so that the vendor can never generate more
than was held. Prompt: an upper bound, not an estimate: UTF-8 bytes of every text (a byte-level BPE token is at
least one byte), 4 tokens a message plus 3, `IMAGE_TOKENS` an image/audio/file part, and the bytes of the tool
definitions. Cached-token discounts are not assumed. The hold is settled to the real cost when the call ends.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from shared.catalog import Endpoint
from shared.chat.schema import ChatRequest, TextPart
from shared.metering import cost_of

DEFAULT_MAX_TOKENS = 4096
IMAGE_TOKENS = 2000  # above what any vendor charges for one image at its largest detail


class Budget(NamedTuple):
    request: ChatRequest  # as it is sent: its output bound set where needed
    max_tokens: int
    prompt_tokens: int  # the upper bound
    worst_case: float  # USD


def prompt_bound(request: ChatRequest) -> int:
    """An upper bound on the prompt's tokens (see the module docstring)."""
    total = 3
    for m in request.messages:
        total += 4 + (len(m.name.encode()) if m.name else 0)
        if isinstance(m.content, str):
            total += len(m.content.encode())
        elif m.content:
            for part in m.content:
                total += len(part.text.encode()) if isinstance(part, TextPart) else IMAGE_TOKENS
        for call in m.tool_calls or ():
            total += len(call.function.name.encode()) + len(call.function.arguments.encode())
    if request.tools:
        total += len(orjson.dumps([t.model_dump(exclude_none=True) for t in request.tools]))
    return total


def capped(request: ChatRequest, endpoint: Endpoint) -> ChatRequest:
    """The request with its output bound no higher than the model's max output (the usual case: unchanged)."""
    asked, most = request.output_limit, endpoint.config.max_output
    if asked is None or most is None or asked <= most:
        return request
    return with_output_limit(request, most)


def budget(request: ChatRequest, endpoint: Endpoint, prompt_tokens: int) -> Budget:
    """The request bounded for a limited key on this endpoint, and its worst-case cost."""
    most = endpoint.config.max_output
    asked = request.output_limit
    bound = min(asked, most) if asked is not None and most is not None else asked or most or DEFAULT_MAX_TOKENS
    sent = request if asked == bound else with_output_limit(request, bound)
    worst = cost_of(endpoint.pricing, prompt_tokens, bound * request.n)
    return Budget(sent, bound, prompt_tokens, worst)


def affordable_tokens(endpoint: Endpoint, prompt_tokens: int, remaining: float, n: int) -> int:
    """The most output tokens a call could ask for within `remaining` USD (for the 402's advice)."""
    per_token = endpoint.pricing.completion / 1_000_000 * n
    left = remaining - cost_of(endpoint.pricing, prompt_tokens, 0)
    if per_token <= 0:
        return 0 if left < 0 else 10 ** 9
    return max(int(left / per_token), 0)


def with_output_limit(request: ChatRequest, tokens: int) -> ChatRequest:
    """A copy asking for at most `tokens` output tokens, in the field the client used (max_tokens by default)."""
    names = [n for n in ("max_tokens", "max_completion_tokens") if getattr(request, n) is not None] or ["max_tokens"]
    update = dict.fromkeys(names, tokens)
    copy = request.model_copy(update=update)
    raw = request.__pydantic_private__["_raw"]
    copy._raw = {**raw, **update} if raw else {}
    copy._parameters = None
    return copy
