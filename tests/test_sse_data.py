"""sse_data: a streamed answer's events, read by read, from whatever blocks the transport hands over."""

import pytest

from shared.errors import UpstreamError
from shared.providers.base import PULSE, sse_data
from tests.support import catalog_from, run


class Blocks:
    """A response whose body arrives in the given blocks (b"" stands for a keep-alive interval of silence)."""

    status = 200

    def __init__(self, *blocks: bytes, kind: str = "text/event-stream") -> None:
        self.headers = {"content-type": kind}

        self._left = list(blocks)

    async def next_piece(self, pulse=None):
        return self._left.pop(0) if self._left else None

    def release(self):
        pass


@pytest.fixture
def endpoint(fake_upstream, tmp_path):
    return catalog_from(fake_upstream.catalog_yaml(), tmp_path).get("fake/ok").endpoints[0]


def reads(resp, endpoint):
    async def go():
        return [read async for read in sse_data(resp, endpoint, None)]
    return run(go())


def test_each_read_brings_the_data_of_the_lines_it_completes(endpoint):
    resp = Blocks(b'event: x\ndata: {"a":1}\n\n: a comment\n', b"", b'data:{"b"', b':2}\r\n\r\n  data: [DONE]\n\n')
    assert reads(resp, endpoint) == [[b'{"a":1}'], PULSE, [b'{"b":2}', b"[DONE]"]]


def test_a_last_line_without_its_newline_still_counts(endpoint):
    assert reads(Blocks(b"data: 1\n\ndata: 2"), endpoint) == [[b"1"], [b"2"]]


def test_an_answer_without_any_data_line_is_not_an_event_stream(endpoint):
    with pytest.raises(UpstreamError, match="not an event stream"):
        reads(Blocks(b"<html>busy</html>\n", kind="text/html"), endpoint)
