"""The chat stream's own frames read back, for the fronts that answer in another wire shape (Anthropic's
Messages, the legacy completions, the Responses API): they translate what the chat relay (shared/chat/stream.py)
sends rather than relay upstreams themselves, so healing, fallbacks and metering stay in one place.

A frame is `data: {chunk}`, `data: [DONE]` or a keep-alive comment (`: ...`); the relay writes several in one
piece at times, each ending with a blank line.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncIterator

import orjson

COMMENT, CHUNK, END = "comment", "chunk", "end"


async def read(frames: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, Any]]:
    """(COMMENT, the frame's bytes), (CHUNK, the chunk as a dict) or (END, None), in order. Closing this closes
    the relay (whose own clean-up meters a client that left as cancelled)."""
    async with aclosing(frames) as relay:  # type: ignore[type-var]
        async for piece in relay:
            for frame in piece.split(b"\n\n"):
                if not frame:
                    continue
                if frame.startswith(b":"):
                    yield COMMENT, frame + b"\n\n"
                elif frame == b"data: [DONE]":
                    yield END, None
                elif frame.startswith(b"data: "):
                    yield CHUNK, orjson.loads(frame[6:])


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One named server-sent event."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
