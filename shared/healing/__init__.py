"""Response Healing: make an LLM's almost-JSON parse, without changing any value it did produce.

    from shared.healing import heal
    result = heal(text)        # result.text, result.status ("healed" | "skipped" | "failed"), result.repairs
    heal(text, truncated=True) # the call stopped for length: a number at the very end may be cut, and goes

Valid JSON takes a fast path (one orjson parse) and comes back byte-identical as "skipped". Anything else goes
through a single left-to-right pass (shared/healing/repair.py) that copies numbers and string contents from
the input verbatim and records every change it makes. "failed" returns the original text, never raises; its
repairs name what healing would have had to drop. Streams: shared/healing/stream.py (`StreamHealer`).
"""

from shared.healing.repair import HealResult, Repair, heal

__all__ = ["HealResult", "Repair", "heal"]
