"""Write shared/catalog/models.json from the genai-prices package (the maintained price source).

    python -m infra.build_catalog            # prices in effect today
    python -m infra.build_catalog 2026-12-01 # prices in effect on that date

Takes OpenRouter's listing in genai-prices (`author/slug` ids, so the lab is known) for the labs below, keeping
current models with plain per-token prices (tiered prices are left out rather than flattened). Where a price
changes on a date, the price in effect on the build date is taken; the date is written into the file, so the
file is a pure function of (the locked genai-prices, that date) and tests/test_catalog.py checks exactly that.

Each model gets up to two endpoints:
- **direct**, when genai-prices lists the lab's own API with a model of exactly that name (`claude-opus-4.5` is
  Anthropic's `claude-opus-4-5`): the vendor's API model name and price. Used once the vendor key is set.
- **openrouter**, OpenRouter's name and price. Used once OPENROUTER_API_KEY is set.

What genai-prices does not carry is in `FACTS` below, typed from the labs' model cards: a context window where no
genai-prices provider lists one (Meta's and 01.AI's models), max output where the lab publishes it, and the
modalities and parameters of families that differ from plain text chat. Operators override any of it with
SWITCHYARD_CONFIG or the catalog API.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from decimal import Decimal
from pathlib import Path


OUT = Path(__file__).resolve().parent.parent / "shared" / "catalog" / "models.json"
LABS = ("openai", "anthropic", "google", "meta-llama", "mistralai", "deepseek", "qwen", "microsoft", "nvidia",
        "cohere", "x-ai", "01-ai", "baichuan", "amazon", "ai21", "moonshotai", "z-ai", "minimax", "perplexity",
        "bytedance-seed", "tencent", "ibm-granite", "xiaomi", "inception")
# lab → (our built-in provider id, genai-prices provider id) for labs whose own API we speak
DIRECT = {"openai": ("openai", "openai"), "anthropic": ("anthropic", "anthropic"), "google": ("google", "google"),
          "mistralai": ("mistral", "mistral"), "deepseek": ("deepseek", "deepseek"), "x-ai": ("xai", "x-ai"),
          "moonshotai": ("moonshot", "moonshotai"), "perplexity": ("perplexity", "perplexity")}
TOOLLESS = ("stop", "seed", "tools", "tool_choice")
PENALTIES = ("frequency_penalty", "presence_penalty")

# Regexes over the model id, first match per field wins. Sources: the labs' model cards and API docs.
FACTS: list[tuple[str, dict]] = [
    # context windows genai-prices lacks (Meta and 01.AI model cards)
    (r"^meta-llama/llama-2-", {"context_length": 4096}),
    (r"^meta-llama/llama-guard-2-8b$", {"context_length": 8192}),
    (r"^meta-llama/llama-(3\.1|3\.2|3\.3)-|^meta-llama/llama-guard-3-8b$", {"context_length": 131072}),
    (r"^meta-llama/llama-4-maverick$", {"context_length": 1048576}),
    (r"^meta-llama/llama-4-scout$", {"context_length": 10485760}),
    (r"^01-ai/yi-large$", {"context_length": 32768}),
    # published max output tokens
    (r"^openai/gpt-3\.5-turbo|^openai/gpt-4-turbo$", {"max_output": 4096}),
    (r"^openai/gpt-4$", {"max_output": 8192}),
    (r"^openai/gpt-4o", {"max_output": 16384}),
    (r"^openai/gpt-4\.1", {"max_output": 32768}),
    (r"^openai/gpt-5(-mini|-nano|\.\d+)?$|^openai/gpt-5(\.\d+)?-(codex|mini|nano|pro)$", {"max_output": 128000}),
    (r"^openai/o[134]", {"max_output": 100000}),
    (r"^anthropic/claude-3-haiku$", {"max_output": 4096}),
    (r"^anthropic/claude-opus-4$", {"max_output": 32000}),
    (r"^anthropic/claude-(haiku-4\.5|opus-4\.5)$", {"max_output": 64000}),
    (r"^google/gemini-2\.5-flash-lite$", {"max_output": 65536}),
    (r"^meta-llama/llama-(3\.1|3\.3)-", {"max_output": 8192}),
    # modalities
    (r"-image|nano-banana", {"output_modalities": ["text", "image"]}),
    (r"^openai/gpt-audio", {"input_modalities": ["text", "audio"], "output_modalities": ["text", "audio"]}),
    (r"^google/gemini", {"input_modalities": ["text", "image", "file", "audio", "video"]}),
    (r"voxtral", {"input_modalities": ["text", "audio"]}),
    (r"^anthropic/claude|^openai/(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-5|o1|o3|o4)|^x-ai/grok-4|vision|-vl-|-vl$|"
     r"glm-\d(\.\d)?v|^amazon/nova-(lite|pro|premier|2-lite)|^mistralai/(mistral-medium|mistral-large)|"
     r"^meta-llama/llama-4|^qwen/.*omni", {"input_modalities": ["text", "image"]}),
    # parameters: reasoning models take no sampling parameters; some families take no tools
    (r"^openai/(o1|o3|o4|gpt-5)", {"supported_parameters": ["max_tokens", "reasoning", "include_reasoning",
                                                            "seed", "tools", "tool_choice", "response_format",
                                                            "structured_outputs", "stream"]}),
    (r"-thinking|deepseek-r1|-reasoning|sonar-deep-research", {"add_parameters": ["reasoning", "include_reasoning"]}),
    (r"^perplexity/|^openai/gpt-3\.5-turbo-instruct$|^openai/gpt-audio|-image|nano-banana|^meta-llama/llama-guard|"
     r"^meta-llama/llama-2-|content-safety|^tencent/hy-mt", {"drop_parameters": list(TOOLLESS)}),
    (r"^anthropic/|^google/", {"drop_parameters": list(PENALTIES)}),  # Messages has none; our Gemini adapter sends none
]
_COMPILED = [(re.compile(pattern), facts) for pattern, facts in FACTS]


def _price(value: object) -> float | None:
    return float(value) if isinstance(value, (Decimal, int, float)) else None


def price_on(prices: object, day: dt.date) -> object | None:
    """The plain price in effect on `day`: the latest start-dated price by then. Time-of-day discounts (off-peak
    hours) are not modelled: the standard price is taken."""
    from genai_prices.types import ModelPrice, StartDateConstraint

    if isinstance(prices, ModelPrice):
        return prices
    if not isinstance(prices, list):
        return None
    current, since = None, dt.date.min
    for conditional in prices:
        c = conditional.constraint
        if c is None and current is None:
            current = conditional.prices
        elif isinstance(c, StartDateConstraint) and since <= c.start_date <= day:
            current, since = conditional.prices, c.start_date
    return current


def pricing_of(prices: object, day: dt.date) -> dict | None:
    """Per-token prices only: tiered (by prompt length) prices and per-request prices are left out."""
    p = price_on(prices, day)
    prompt, completion = _price(getattr(p, "input_mtok", None)), _price(getattr(p, "output_mtok", None))
    if p is None or prompt is None or completion is None or _price(getattr(p, "requests_kcount", None)):
        return None
    pricing = {"prompt": prompt, "completion": completion}
    for field, name in (("cache_read_mtok", "cache_read"), ("cache_write_mtok", "cache_write")):
        if (value := _price(getattr(p, field, None))) is not None:
            pricing[name] = value
    return pricing


def facts_for(model_id: str) -> dict:
    found: dict = {}
    parameters: list[str] | None = None
    for pattern, facts in _COMPILED:
        if not pattern.search(model_id):
            continue
        for field, value in facts.items():
            if field == "supported_parameters" and parameters is None:
                parameters = list(value)
            elif field == "add_parameters":
                found.setdefault("add", []).extend(value)
            elif field == "drop_parameters":
                found.setdefault("drop", []).extend(value)
            elif field not in found:
                found[field] = value
    from shared.catalog.schema import DEFAULT_PARAMETERS

    add, drop = found.pop("add", []), found.pop("drop", [])
    if parameters is not None or add or drop:
        base = parameters if parameters is not None else list(DEFAULT_PARAMETERS)
        found["supported_parameters"] = [p for p in dict.fromkeys(base + add) if p not in drop]
    return found


def _windows() -> dict[str, int]:
    """The largest context window any genai-prices provider lists per lowercase model id (`author/slug`)."""
    from genai_prices import data

    out: dict[str, int] = {}
    for provider in data.providers:
        for m in provider.models:
            if m.context_window and "/" in m.id:
                key = m.id.lower()
                out[key] = max(out.get(key, 0), int(m.context_window))
    return out


def _direct_model(lab: str, slug: str, providers: dict) -> object | None:
    """The lab's own API model named exactly `slug` (OpenRouter's dots may be the vendor's dashes)."""
    if lab not in DIRECT:
        return None
    names = {slug.lower(), slug.lower().replace(".", "-")}
    return next((m for m in providers[DIRECT[lab][1]].models if m.id.lower() in names and not m.deprecated), None)


def entries(day: dt.date) -> list[dict]:
    from genai_prices import data

    providers = {p.id: p for p in data.providers}
    windows = _windows()
    out = []
    for m in providers["openrouter"].models:
        lab, _, slug = m.id.partition("/")
        if lab not in LABS or ":" in m.id or m.deprecated:
            continue
        pricing = pricing_of(m.prices, day)
        facts = facts_for(m.id)
        context = m.context_window or windows.get(m.id.lower()) or facts.get("context_length")
        if pricing is None or not context:
            continue
        description = " ".join((m.description or "").split())
        common = {"name": m.name or m.id, "description": description[:300], "context_length": int(context),
                  **{k: v for k, v in facts.items() if k != "context_length"}}
        direct = _direct_model(lab, slug, providers)
        if direct is not None and (direct_pricing := pricing_of(direct.prices, day)) is not None:
            out.append({"id": m.id, "provider": DIRECT[lab][0], "upstream_model": direct.id, **common,
                        "pricing": direct_pricing})
        out.append({"id": m.id, "provider": "openrouter", "upstream_model": m.id, **common, "pricing": pricing})
    return sorted(out, key=lambda e: (e["id"], e["provider"] == "openrouter"))


def built_on(text: str) -> dt.date:
    """The price date written into a generated file."""
    return dt.date.fromisoformat(json.loads(text)["prices_on"])


def render(models: list[dict], day: dt.date) -> str:
    """JSON, one model per line: diffs stay readable, and orjson parses it in ~1 ms (libyaml took ~30 ms, on the
    Lambda cold-start path)."""
    head = json.dumps({"generated_by": "python -m infra.build_catalog (from the genai-prices package): do not edit",
                       "prices_on": day.isoformat(), "prices": "USD per 1M tokens"})[:-1]
    lines = ",\n".join(json.dumps(m, ensure_ascii=False) for m in models)
    return f"{head}, \"models\": [\n{lines}\n]}}\n"


def main() -> None:
    day = dt.date.fromisoformat(sys.argv[1]) if len(sys.argv) > 1 else dt.date.today()
    models = entries(day)
    OUT.write_text(render(models, day), encoding="utf-8")
    ids = {m["id"] for m in models}
    direct = sum(1 for m in models if m["provider"] != "openrouter")
    print(f"{len(ids)} models from {len({i.split('/')[0] for i in ids})} labs, {direct} with a direct endpoint -> {OUT}")


if __name__ == "__main__":
    main()
