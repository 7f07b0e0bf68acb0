"""What a call may cost at most on one endpoint, and the output bound that makes that true.

Output: `max_tokens` is capped at the model's `max_output`. For a key with a spend limit or a tokens-per-minute
limit, a request that gives no bound gets one (the model's `max_output`, else `DEFAULT_MAX_TOKENS`), so that the vendor can never generate more
than was held. Prompt: an upper bound of what the endpoint will bill, not an estimate. Where the tokenizer is
known it is counted: the `sim` vendor's own count, or tiktoken for OpenAI-family models (plus `MARGIN` for the
chat format's overhead). Elsewhere: UTF-8 bytes of every text (a byte-level BPE token is at least one byte).
Either way an image/audio/file part counts `IMAGE_TOKENS`, tool definitions their bytes, and 4 tokens a message
plus 3. Cached-token discounts are not assumed. The hold is settled to the real cost when the call ends.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from shared.catalog import Endpoint
from shared.chat.schema import ChatRequest, TextPart
from shared.metering import cost_of
from shared.providers.sim import prompt_tokens as sim_prompt_tokens
from shared.tokenizer import count_messages, encoding_for

DEFAULT_MAX_TOKENS = 4096
IMAGE_TOKENS = 2000  # above what any vendor charges for one image at its largest detail
MARGIN = 16  # tokens: OpenAI's chat format adds a few a message beyond what tiktoken counts of the texts


class Budget(NamedTuple):
    request: ChatRequest  # as it is sent: its output bound set where needed
    max_tokens: int
    prompt_tokens: int  # the upper bound
    worst_case: float  # USD


def tokenizer_of(endpoint: Endpoint) -> str:
    """Which count bounds this endpoint's prompts: "sim", a tiktoken encoding name, or "bytes"."""
    if endpoint.provider.kind == "sim":
        return "sim"
    return encoding_for(endpoint.upstream_model) or "bytes"


def prompt_bound(request: ChatRequest, tokenizer: str) -> int:
    """An upper bound on the prompt's billed tokens with that tokenizer (see the module docstring)."""
    if tokenizer == "sim":
        return sim_prompt_tokens(request.messages)  # what the sim bills, exactly
    texts, parts = [], 0
    for m in request.messages:
        if isinstance(m.content, str):
            texts.append(m.content)
        elif m.content:
            texts.extend(p.text for p in m.content if isinstance(p, TextPart))
            parts += sum(1 for p in m.content if not isinstance(p, TextPart))
        texts.extend(x for call in m.tool_calls or () for x in (call.function.name, call.function.arguments))
        if m.name:
            texts.append(m.name)
    if tokenizer == "bytes":
        total = sum(len(t.encode()) for t in texts)
    else:
        total = count_messages((("user", t, None) for t in texts), "gpt-4o" if tokenizer == "o200k_base" else
                               "gpt-4") + MARGIN
    total += 3 + 4 * len(request.messages) + parts * IMAGE_TOKENS
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
