"""OpenRouter's middle-out transform (`transforms: ["middle-out"]`, or the `context-compression` plugin): a prompt
longer than the candidate model's context is cut from its middle until it fits, since what matters most in a long
prompt is usually its start (instructions) and its end (the question).

Fitted per candidate (a fallback with a longer context gets more of the prompt), to the context less the output the
request asks for. First whole middle messages go, nearest the middle first, keeping system and developer messages,
the first turn and the last (an assistant's tool calls go with their results, so no result loses its call); then,
while the prompt is still too long, the longest message is cut in the middle of its text, with a marker saying how
much went. Past 1,000 messages for Anthropic's models (their limit), the middle messages go down to 500 from the
start and 500 from the end. Counted with the candidate's own tokenizer where we know it (the sim's, tiktoken's),
else as UTF-8 bytes / 3 (at or above most vendors' counts for prose). The call's answer says what was done
(`transforms` in the body, `X-Switchyard-Transforms` on the response); a prompt that fits is left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from shared.chat.budget import tokenizer_of
from shared.chat.schema import ChatRequest, Message, TextPart
from shared.providers.sim import count_tokens as sim_text_tokens
from shared.providers.sim import prompt_tokens as sim_prompt_tokens
from shared.tokenizer import count_messages

if TYPE_CHECKING:
    from shared.catalog import Endpoint
    from shared.chat.context import CallContext

ID = "middle-out"
PLUGIN = "context-compression"  # OpenRouter's newer name for the same transform
MARKER = "\n\n[... {} tokens removed by middle-out to fit the model's context ...]\n\n"
MAX_MESSAGES = {"anthropic": 1000}  # per provider kind: a limit on messages, not tokens


def wanted(request: ChatRequest) -> bool:
    if request.transforms and ID in request.transforms:
        return True
    return any(p.id == PLUGIN and p.enabled for p in request.plugins or ())


def _counter(endpoint: "Endpoint") -> tuple[Callable[[Message], int], Callable[[str], int]]:
    """Tokens of a message (as part of a prompt) and of a text, with this endpoint's tokenizer."""
    tokenizer = tokenizer_of(endpoint)
    if tokenizer == "sim":
        return (lambda m: sim_prompt_tokens([m]) - 3), sim_text_tokens
    if tokenizer == "bytes":
        def text_tokens(text: str) -> int:
            return (len(text.encode()) + 2) // 3
        return (lambda m: 4 + text_tokens(_all_text(m))), text_tokens
    model = "gpt-4o" if tokenizer == "o200k_base" else "gpt-4"
    return (lambda m: count_messages([(m.role, _all_text(m), m.name)], model) - 3), \
        (lambda t: count_messages([("", t, None)], model) - 7)


def _all_text(m: Message) -> str:
    return m.text() + "".join(c.function.name + c.function.arguments for c in m.tool_calls or ())


def _groups(messages: list[Message]) -> list[list[int]]:
    """Message indices in units that go together: an assistant's tool calls with the tool results that follow."""
    groups: list[list[int]] = []
    for i, m in enumerate(messages):
        if m.role == "tool" and groups and messages[groups[-1][0]].tool_calls:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _removable(messages: list[Message], groups: list[list[int]]) -> list[list[int]]:
    """The groups that may go: not system or developer messages, not the first turn, not the last."""
    turns = [g for g in groups if messages[g[0]].role not in ("system", "developer")]
    return turns[1:-1]


def _cut(message: Message, excess: int, text_tokens: Callable[[str], int]) -> Message | None:
    """The message with about `excess` tokens (and the marker's) taken from the middle of its longest text; None
    when it has no text to cut."""
    parts = message.content if isinstance(message.content, list) else None
    if parts is None:
        text = message.content or ""
    else:
        texts = [p for p in parts if isinstance(p, TextPart)]
        if not texts:
            return None
        text = max(texts, key=lambda p: len(p.text)).text
    if not text:
        return None
    tokens = text_tokens(text)
    remove = min(tokens, excess + text_tokens(MARKER.format(excess)) + 1)
    keep = int(len(text) * (tokens - remove) / max(tokens, 1) * 0.99)
    head, tail = keep // 2, keep - keep // 2
    cut = text[:head] + MARKER.format(remove) + (text[len(text) - tail:] if tail else "")
    if parts is None:
        return message.model_copy(update={"content": cut})
    longest = max((p for p in parts if isinstance(p, TextPart)), key=lambda p: len(p.text))
    return message.model_copy(update={"content": [p.model_copy(update={"text": cut}) if p is longest else p
                                                  for p in parts]})


def fitted(request: ChatRequest, endpoint: "Endpoint", ctx: "CallContext") -> ChatRequest:
    """The request as this endpoint can take it (itself when it fits); what was done in `ctx.transforms`."""
    ctx.transforms = None
    ctx.prompt_bounds = None  # a limited key's hold is bounded again on what this candidate is sent
    context = endpoint.config.context_length
    target = max(context - (request.output_limit or 0), context // 2)
    message_tokens, text_tokens = _counter(endpoint)
    messages = list(request.messages)
    counts = [message_tokens(m) for m in messages]
    before = total = 3 + sum(counts)
    most = MAX_MESSAGES.get(endpoint.provider.kind)
    if total <= target and (most is None or len(messages) <= most):
        return request
    keep = list(range(len(messages)))
    removed = 0
    groups = _groups(messages)
    removable = _removable(messages, groups)
    while removable and (total > target or (most is not None and len(keep) > most)):
        group = removable.pop(len(removable) // 2)
        total -= sum(counts[i] for i in group)
        removed += len(group)
        keep = [i for i in keep if i not in group]
    changed: dict[int, Message] = {}
    for _ in range(4 * len(keep)):  # each cut takes all a message's excess, or all its text: few rounds
        if total <= target:
            break
        i = max((i for i in keep if i not in changed or counts[i] > text_tokens(MARKER) + 8),
                key=lambda i: counts[i], default=None)
        if i is None:
            break
        cut = _cut(changed.get(i, messages[i]), total - target, text_tokens)
        if cut is None:
            break
        changed[i] = cut
        new = message_tokens(cut)
        total += new - counts[i]
        counts[i] = new
    raw = request.__pydantic_private__["_raw"]
    raw_messages = raw.get("messages") if raw else None
    kept = [changed.get(i, messages[i]) for i in keep]
    copy = request.model_copy(update={"messages": kept})
    if raw:
        copy._raw = {**raw, "messages": [m.model_dump(exclude_none=True, by_alias=True) if i in changed or
                                         raw_messages is None else raw_messages[i] for i, m in zip(keep, kept)]}
    ctx.transforms = [{"id": ID, "compressed": True, "context_length": context, "prompt_tokens_before": before,
                       "prompt_tokens_after": total, "messages_removed": removed,
                       "messages_truncated": len(changed)}]
    return copy


def report(ctx: "CallContext") -> dict[str, Any]:
    """What the answer says about it (nothing when no transform changed the prompt)."""
    return {"transforms": ctx.transforms} if ctx.transforms else {}
