"""The built-in offline vendor: answers like a real model with no network.

Deterministic for a given request (same messages and seed → same answer); failure injection draws from a
process-wide RNG so that an error rate of 0.5 fails about half of all calls. Behaviour per model comes from
its catalog entry's `sim:` block (latency, speed, length, error/timeout/malformed-JSON/truncation rates).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import re
import struct
import time
from typing import Any, AsyncIterator

import orjson

from shared.catalog import Endpoint, SimBehaviour
from shared.chat import reasoning
from shared.chat.schema import ChatRequest, Message, TextPart, ToolChoiceFunction
from shared.errors import UpstreamTimeoutError
from shared.providers.base import Completion, Usage, first_byte_timeout, upstream_error

_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_CHUNK = re.compile(r"\s*\S+")
_BANK = (
    "the gateway routes each request to a healthy provider and records what it cost "
    "latency matters more than throughput for interactive traffic while batch jobs prefer the cheapest model "
    "structured output keeps downstream services simple when every answer parses as valid json "
    "fallbacks switch models within milliseconds so an outage never reaches the user "
    "tokens are metered per key per app and per model for analytics and rankings"
).split()
_CHAOS = random.Random()  # failure injection: per process, not per request
DEFAULT_MAX_OUTPUT = 4096  # tokens, for a sim model whose catalog entry names no max_output
_NO_LIMIT = 1 << 62
_CHARS_PER_TOKEN = 16  # characters an answer may have a token of its limit (a long const is one "token" here)
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1  # what JSON encoders (orjson) write as integers
_DEFAULT_BEHAVIOUR = SimBehaviour()


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: words and punctuation marks (close to BPE counts for English prose)."""
    return len(_WORDS.findall(text))


def prompt_tokens(messages: list[Message]) -> int:
    total = 3
    for m in messages:
        total += 4 + count_tokens(m.text())
        if isinstance(m.content, list):
            total += 85 * sum(1 for p in m.content if not isinstance(p, TextPart))
        for call in m.tool_calls or ():
            total += count_tokens(call.function.name) + count_tokens(call.function.arguments)
    return total


def _rng(request: ChatRequest, model: str, index: int) -> random.Random:
    seed = request.seed if request.seed is not None else "|".join(m.text() for m in request.messages)
    digest = hashlib.blake2b(f"{model}|{seed}|{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _prose(rng: random.Random, request: ChatRequest, tokens: int) -> str:
    last = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    topic = " ".join(last.split()[:8])
    words: list[str] = []
    while len(words) < tokens:
        sentence = rng.sample(_BANK, rng.randint(6, 12))
        sentence[0] = sentence[0].capitalize()
        words.extend(sentence[:-1] + [sentence[-1] + "."])
    opener = f'On "{topic}": ' if topic else ""
    return opener + " ".join(words[:tokens]).rstrip(".") + "."


class _Budget:
    """What a generated JSON value may still grow by: a count of values (each is at least one token of output)
    and characters (no charge exceeds what is written). Generation stops once either is spent, and the answer
    then ends with finish_reason "length", its text cut at the limit, as a real model's is."""

    __slots__ = ("values", "chars")

    def __init__(self, tokens: int) -> None:
        self.values, self.chars = tokens + 1, tokens * _CHARS_PER_TOKEN

    def spend(self, chars: int) -> None:
        self.values -= 1
        self.chars -= chars

    @property
    def spent(self) -> bool:
        return self.values < 0 or self.chars < 0


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, step: float) -> float | None:
    value = schema.get(inclusive)
    if _finite(value):
        return float(value)
    value = schema.get(exclusive)
    return float(value) + step if _finite(value) else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _from_schema(schema: Any, rng: random.Random, budget: _Budget, depth: int = 0) -> Any:
    """A value for a (simple) JSON schema: types, properties, items, enum, const, numeric bounds; as much of one
    as the budget allows. Never raises: a schema nobody can satisfy (minimum over maximum) still gets a value."""
    if not isinstance(schema, dict):
        schema = {}  # a boolean subschema, or one this simulator does not read
    for key in ("anyOf", "oneOf"):  # one of the alternatives (a non-null one when there is one)
        options = schema.get(key)
        if isinstance(options, list) and options:
            real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")] or options
            return _from_schema(rng.choice(real), rng, budget, depth + 1)
    if "const" in schema:
        budget.spend(len(orjson.dumps(schema["const"])))
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        choice = rng.choice(schema["enum"])
        budget.spend(len(orjson.dumps(choice)))
        return choice
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string" or not isinstance(kind, str):
        text = " ".join(rng.sample(_BANK, 3))
        budget.spend(len(text) + 2)
        return text
    budget.spend(1)
    if kind == "object":
        props = schema.get("properties")
        out = {}
        for key, sub in (props.items() if isinstance(props, dict) else ()):
            if budget.spent:
                break
            budget.spend(len(key) + 3)
            out[key] = _from_schema(sub, rng, budget, depth + 1)
        return out
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, list):  # draft 7's tuple form: one value per position
            return [_from_schema(sub, rng, budget, depth + 1) for sub in items if not budget.spent]
        least = schema.get("minItems")
        n = max(int(least) if _finite(least) else 0, rng.randint(1, 3)) if depth < 4 else 0
        most = schema.get("maxItems")
        n = min(n, int(most)) if _finite(most) else n
        out = []
        for _ in range(n):
            if budget.spent:
                break
            out.append(_from_schema(items, rng, budget, depth + 1))
        return out
    if kind == "integer":
        low = _bound(schema, "minimum", "exclusiveMinimum", 1)
        high = _bound(schema, "maximum", "exclusiveMaximum", -1)
        low = math.ceil(min(max(low, _INT_MIN), _INT_MAX)) if low is not None else 0
        high = math.floor(min(max(high, _INT_MIN), _INT_MAX)) if high is not None else min(max(low, 100), _INT_MAX)
        return rng.randint(low, max(low, high))
    if kind == "number":
        low = _bound(schema, "minimum", "exclusiveMinimum", 0) or 0.0
        high = _bound(schema, "maximum", "exclusiveMaximum", 0)
        high = high if high is not None else max(low, 1.0)
        return round(rng.uniform(low, max(low, high)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    return None  # "null"


def _json_value(request: ChatRequest, rng: random.Random, budget: _Budget) -> Any:
    fmt = request.response_format
    if fmt and fmt.type == "json_schema" and fmt.json_schema and fmt.json_schema.schema_:
        return _from_schema(fmt.json_schema.schema_, rng, budget)
    return {"answer": " ".join(rng.sample(_BANK, 8)), "confidence": round(rng.uniform(0.5, 0.99), 2),
            "tags": rng.sample(_BANK, 3), "source": "sim", "note": "模拟回答 ✓"}


def _cut(text: str, limit: int) -> tuple[str, bool, int]:
    """The text up to `limit` tokens (whole words, as streamed) and `limit` × 16 characters, whether anything
    was cut, and its tokens."""
    chars = limit * _CHARS_PER_TOKEN
    cut = len(text) > chars
    text = text[:chars]
    tokens = count_tokens(text)
    if tokens <= limit:
        return text, cut, tokens
    kept, n = [], 0
    for piece in _CHUNK.findall(text):
        counted = count_tokens(piece)
        if n + counted > limit:
            break
        kept.append(piece)
        n += counted
    return "".join(kept), True, n


def _corrupt(text: str, rng: random.Random) -> str:
    """Break valid JSON the way LLMs do; every corruption is one that healing is meant to repair."""
    kinds = ["trailing_comma", "single_quotes", "unquoted_key", "missing_brace", "fenced", "python_literals",
             "truncated"]
    rng.shuffle(kinds)
    for kind in kinds:  # the first corruption that really breaks this text (not every text has literals)
        broken = _CORRUPTIONS[kind](text)
        try:
            orjson.loads(broken)
        except orjson.JSONDecodeError:
            return broken
    return text[:-1]


_CORRUPTIONS = {
    "trailing_comma": lambda t: re.sub(r"([}\]])$", r",\1", t),
    "single_quotes": lambda t: t.replace('"', "'"),
    "unquoted_key": lambda t: re.sub(r'"(\w+)":', r"\1:", t, count=2),
    "missing_brace": lambda t: t[:-1],
    "fenced": lambda t: f"Here is the JSON you asked for:\n```json\n{t}\n```\nLet me know if you need more.",
    "python_literals": lambda t: re.sub(r"(?<=[:\[,])(true|false|null)\b",
                                        lambda m: {"true": "True", "false": "False", "null": "None"}[m[1]], t),
    "truncated": lambda t: t[: max(1, int(len(t) * 0.7))],
}


def _apply_stop(text: str, stop: str | list[str] | None) -> tuple[str, bool]:
    for s in [stop] if isinstance(stop, str) else stop or []:
        cut = text.find(s)
        if cut >= 0:
            return text[:cut], True
    return text, False


class _Answer:
    """One choice: content or a tool call, its finish reason and completion tokens."""

    def __init__(self, request: ChatRequest, endpoint: Endpoint, index: int, behaviour: SimBehaviour) -> None:
        rng = _rng(request, endpoint.config.id, index)
        self.content: str | None = None
        self.tool_call: dict[str, Any] | None = None
        self.finish_reason = "stop"
        # What a real model stops at: the request's limit, within the model's own.
        limit = min(request.output_limit or _NO_LIMIT, endpoint.config.max_output or DEFAULT_MAX_OUTPUT)
        # Reasoning asked for: a few sentences of thought first, billed as output, shown unless excluded.
        self.reasoning: str | None = None
        self.reasoning_tokens = 0
        if (thinking := reasoning.budget(request, limit)) is not None:
            thought, _, self.reasoning_tokens = _cut("Let me think this through. " + _prose(rng, request, 24),
                                                     min(thinking, 40))
            limit = max(limit - self.reasoning_tokens, 1)
            self.reasoning = thought if reasoning.shown(request) else None
        tool = self._tool_to_call(request)
        if tool is not None:
            budget = _Budget(limit)
            value = _from_schema(tool.function.parameters or {"type": "object"}, rng, budget)
            args, cut, _ = _cut(orjson.dumps(value).decode(), max(1, limit - 3))
            cut = cut or budget.spent
            if behaviour.malformed_json_rate and _CHAOS.random() < behaviour.malformed_json_rate:
                args = _corrupt(args, rng)
            self.tool_call = {"id": f"call_{rng.getrandbits(64):016x}", "type": "function",
                              "function": {"name": tool.function.name, "arguments": args}}
            self.finish_reason = "length" if cut else "tool_calls"
            self.tokens = count_tokens(args) + 3 + self.reasoning_tokens
            return
        budget = _Budget(limit)
        if request.wants_json:
            text = orjson.dumps(_json_value(request, rng, budget)).decode()
            if behaviour.malformed_json_rate and _CHAOS.random() < behaviour.malformed_json_rate:
                text = _corrupt(text, rng)
        elif request.messages[-1].role == "tool":
            text = f"The tool returned {request.messages[-1].text()[:200]}. " + _prose(rng, request, 12)
        else:
            text = _prose(rng, request, min(behaviour.reply_tokens, limit + 1))
        if behaviour.truncate_rate and _CHAOS.random() < behaviour.truncate_rate:
            pieces = _CHUNK.findall(text)
            text, self.finish_reason = "".join(pieces[: max(1, len(pieces) * 6 // 10)]), "length"
        text, cut, tokens = _cut(text, limit)
        if cut or budget.spent:
            self.finish_reason = "length"
        text, stopped = _apply_stop(text, request.stop)
        if stopped:
            self.finish_reason = "stop"
            tokens = count_tokens(text)
        self.content = text
        self.tokens = tokens + self.reasoning_tokens

    @staticmethod
    def _tool_to_call(request: ChatRequest):
        if not request.tools or request.tool_choice == "none" or request.messages[-1].role == "tool":
            return None
        if isinstance(request.tool_choice, ToolChoiceFunction):
            wanted = request.tool_choice.function.name
            return next((t for t in request.tools if t.function.name == wanted), request.tools[0])
        return request.tools[0]

    def message(self) -> dict[str, Any]:
        thought = {"reasoning": self.reasoning} if self.reasoning else {}
        if self.tool_call:
            return {"role": "assistant", "content": None, "tool_calls": [self.tool_call], **thought}
        return {"role": "assistant", "content": self.content, **thought}

    def deltas(self) -> list[tuple[dict[str, Any], int]]:
        """The answer as stream deltas, each with its token count (for pacing); its reasoning first."""
        thought = [({"reasoning": piece}, count_tokens(piece)) for piece in _CHUNK.findall(self.reasoning or "")]
        return thought + self._answer_deltas()

    def _answer_deltas(self) -> list[tuple[dict[str, Any], int]]:
        if self.tool_call:
            fn = self.tool_call["function"]
            head = {"tool_calls": [{"index": 0, "id": self.tool_call["id"], "type": "function",
                                    "function": {"name": fn["name"], "arguments": ""}}]}
            args = fn["arguments"]
            parts = [args[i:i + 12] for i in range(0, len(args), 12)]
            return [(head, 1)] + [({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}, 3)
                                  for p in parts]
        pieces = _CHUNK.findall(self.content or "")
        out, i = [], 0
        rng = random.Random(len(pieces))
        while i < len(pieces):
            step = rng.randint(1, 3)  # 1-3 words a chunk, like real BPE streaming
            text = "".join(pieces[i:i + step])
            out.append(({"content": text}, count_tokens(text)))
            i += step
        return out


def logprobs(text: str, top: int) -> dict[str, Any]:
    """Made-up log-probabilities in OpenAI's shape, one a word as streamed (deterministic for the text)."""
    content = []
    for token in _CHUNK.findall(text):
        rng = random.Random(token)
        chosen = round(-rng.random() * 0.7, 4)
        others = [(" " + w, round(chosen - 0.5 - rng.random() * 3, 4)) for w in rng.sample(_BANK, top)] if top else []
        content.append({"token": token, "logprob": chosen, "bytes": list(token.encode()),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                         for t, lp in [(token, chosen), *others][:top]]})
    return {"content": content, "refusal": None}


class SimProvider:
    """The `sim` kind."""

    async def embed(self, request: Any, endpoint: Endpoint) -> Completion:
        """Sim embeddings: one vector an input; prompt tokens counted by the sim's tokenizer (token ids: one each)."""
        b = self._behaviour(endpoint)
        if b.error_rate and _CHAOS.random() < b.error_rate:
            retry = str(b.retry_after_seconds) if b.retry_after_seconds is not None else None
            raise upstream_error(b.error_status, "simulated upstream failure", provider=endpoint.provider.id,
                                 code="sim_injected", retry_after=retry)
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)
        dimensions = request.dimensions or EMBEDDING_DIMENSIONS
        inputs = request.inputs
        counts = [count_tokens(t) if isinstance(t, str) else len(t) for t in inputs]
        if max(counts) > endpoint.config.context_length:
            raise upstream_error(400, f"This model's maximum context length is {endpoint.config.context_length} "
                                      f"tokens an input; an input has {max(counts)}", provider=endpoint.provider.id,
                                 code="context_length_exceeded")
        data = [{"object": "embedding", "index": i,
                 "embedding": encoded(embedding(t, dimensions), request.encoding_format)} for i, t in enumerate(inputs)]
        return Completion({"object": "list", "data": data, "model": endpoint.upstream_model}, Usage(sum(counts), 0),
                          None, f"sim-{time.time_ns():x}")

    def _behaviour(self, endpoint: Endpoint) -> SimBehaviour:
        return endpoint.config.sim or _DEFAULT_BEHAVIOUR

    async def _maybe_fail(self, b: SimBehaviour, endpoint: Endpoint, request: ChatRequest) -> None:
        limit = endpoint.config.context_length
        if (used := prompt_tokens(request.messages)) > limit:  # as OpenAI words it
            raise upstream_error(400, f"This model's maximum context length is {limit} tokens. However, your "
                                      f"messages resulted in {used} tokens.", provider=endpoint.provider.id,
                                 code="context_length_exceeded")
        if b.error_rate and _CHAOS.random() < b.error_rate:
            retry = str(b.retry_after_seconds) if b.retry_after_seconds is not None else None
            raise upstream_error(b.error_status, "simulated upstream failure", provider=endpoint.provider.id,
                                 code="sim_injected", retry_after=retry)
        if b.timeout_rate and _CHAOS.random() < b.timeout_rate:
            await asyncio.sleep(first_byte_timeout(endpoint))
            raise UpstreamTimeoutError(f"{endpoint.provider.id} did not answer in time",
                                       metadata={"provider_name": endpoint.provider.id})
        if b.latency_ms:
            await asyncio.sleep(b.latency_ms / 1000)

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> Completion:
        b = self._behaviour(endpoint)
        await self._maybe_fail(b, endpoint, request)
        answers = [_Answer(request, endpoint, i, b) for i in range(request.n)]
        completion_tokens = sum(a.tokens for a in answers)
        if b.tokens_per_second:
            await asyncio.sleep(completion_tokens / b.tokens_per_second)
        usage = Usage(prompt_tokens(request.messages), completion_tokens,
                      reasoning_tokens=sum(a.reasoning_tokens for a in answers))
        upstream_id = f"sim-{time.time_ns():x}"
        body = {
            "id": upstream_id, "object": "chat.completion", "created": int(time.time()),
            "model": endpoint.upstream_model,
            "choices": [{"index": i, "message": a.message(), "finish_reason": a.finish_reason,
                         "native_finish_reason": a.finish_reason,
                         "logprobs": logprobs(a.content or "", request.top_logprobs or 0) if request.logprobs and
                         a.content is not None else None}
                        for i, a in enumerate(answers)],
        }
        return Completion(body, usage, answers[0].finish_reason, upstream_id)

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[dict[str, Any]]:
        b = self._behaviour(endpoint)
        await self._maybe_fail(b, endpoint, request)
        upstream_id = f"sim-{time.time_ns():x}"
        created = int(time.time())

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            scored = logprobs(delta["content"], request.top_logprobs or 0) if request.logprobs and \
                delta.get("content") else None
            return {"id": upstream_id, "object": "chat.completion.chunk", "created": created,
                    "model": endpoint.upstream_model,
                    "choices": [{"index": index, "delta": delta, "finish_reason": finish,
                                 "native_finish_reason": finish, "logprobs": scored}]}

        completion_tokens = reasoning_tokens = 0
        for index in range(request.n):
            answer = _Answer(request, endpoint, index, b)
            reasoning_tokens += answer.reasoning_tokens
            yield chunk(index, {"role": "assistant", "content": ""})
            for delta, tokens in answer.deltas():
                if b.tokens_per_second:
                    await asyncio.sleep(tokens / b.tokens_per_second)
                yield chunk(index, delta)
            completion_tokens += answer.tokens  # the same count as the unstreamed answer
            yield chunk(index, {}, answer.finish_reason)
        usage = {"prompt_tokens": prompt_tokens(request.messages), "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens(request.messages) + completion_tokens,
                 "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}
        yield {"id": upstream_id, "object": "chat.completion.chunk", "created": created,
               "model": endpoint.upstream_model, "choices": [], "usage": usage}


# -- embeddings -------------------------------------------------------------------------------------------------
EMBEDDING_DIMENSIONS = 256  # a sim embeddings model's default; a request's `dimensions` overrides


def embedding(text: str | list[int], dimensions: int) -> list[float]:
    """Hashed bag of words (token ids for a token-id input), unit length: deterministic, and texts that share
    words are near (cosine), which is what an embeddings demo or test needs of a model."""
    vector = [0.0] * dimensions
    words = [str(t) for t in text] if isinstance(text, list) else [w.lower() for w in _WORDS.findall(text)]
    for word in words or [""]:
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimensions] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 6) for v in vector]


def encoded(vector: list[float], encoding_format: str | None) -> list[float] | str:
    """OpenAI's `encoding_format: base64`: little-endian float32s, base64 (what the openai SDK asks for)."""
    if encoding_format != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
