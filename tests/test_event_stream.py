"""EventStream: a stream's frames written as uvicorn's send would write them, or through that send when it must."""

import asyncio
import types
from http.client import HTTPConnection

from functions.gateway.app import ServerSend
from functions.gateway.event_stream import SERVER_SEND, EventStream, uvicorn_cycle
from tests.support import Served


async def _frames(n: int):
    for i in range(n):
        yield b"data: %d\n\n" % i


def test_under_uvicorn_frames_go_to_the_connection_whole_and_in_order():
    """The internals the direct write relies on are still there in the uvicorn this project locks."""
    seen = []

    async def app(scope, receive, send):
        server_send = scope["state"][SERVER_SEND]
        stream = EventStream(_frames(300), {})

        async def spy(message):
            await send(message)
            if message["type"] == "http.response.start":
                seen.append(uvicorn_cycle(server_send) is not None)

        await stream(scope, receive, spy)

    with Served(ServerSend(app)) as served:
        conn = HTTPConnection("127.0.0.1", served.port, timeout=10)
        for _ in range(2):  # and the connection is reused after a stream
            conn.request("POST", "/")
            resp = conn.getresponse()
            assert resp.getheader("transfer-encoding") == "chunked"
            assert resp.read() == b"".join(b"data: %d\n\n" % i for i in range(300))
        conn.close()
    assert seen == [True, True]


class _Flow:
    write_paused = False


def _cycle(method: str = "POST"):
    kind = type("RequestResponseCycle", (), {"__module__": "uvicorn.protocols.http.httptools_impl"})
    cycle = kind()
    cycle.chunked_encoding, cycle.response_started, cycle.response_complete = True, True, False
    cycle.scope, cycle.flow, cycle.disconnected = {"method": method}, _Flow(), False
    cycle.transport = types.SimpleNamespace(written=[])
    cycle.transport.write = cycle.transport.written.append
    sent = []

    async def send(message):
        sent.append(message["body"])

    cycle.send = send
    kind.send = lambda self, message: send(message)  # a bound method, as uvicorn's own is
    return cycle, sent


def test_a_frame_goes_through_the_send_while_the_client_does_not_keep_up_or_is_gone():
    cycle, sent = _cycle()
    bound = type(cycle).send.__get__(cycle)
    assert uvicorn_cycle(bound) is cycle

    async def frames():
        yield b"a"
        cycle.flow.write_paused = True
        yield b"bb"
        cycle.flow.write_paused = False
        yield b"c"
        cycle.disconnected = True
        yield b"d"

    stream = EventStream(frames(), {})
    asyncio.run(stream._pump(bound))
    assert cycle.transport.written == [b"1\r\na\r\n", b"1\r\nc\r\n"]
    assert sent == [b"bb", b"d"]


def test_any_other_send_gets_every_frame():
    cycle, _ = _cycle("HEAD")
    assert uvicorn_cycle(type(cycle).send.__get__(cycle)) is None  # a HEAD's body is not written
    unchunked, _ = _cycle()
    unchunked.chunked_encoding = False
    assert uvicorn_cycle(type(unchunked).send.__get__(unchunked)) is None
    sent = []

    async def send(message):
        sent.append(message["body"])

    assert uvicorn_cycle(send) is None
    asyncio.run(EventStream(_frames(3), {})._pump(send))
    assert sent == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
