"""The upstream HTTP client against raw servers that misbehave in the ways real ones do."""

import asyncio

import pytest

from shared.providers.http import ConnectError, HTTPClient, ProtocolError, ReadTimeout

T = {"connect_timeout": 1.0, "first_byte_timeout": 0.5, "idle_timeout": 0.5}


async def serve(handler):
    """A loopback server; `handler(reader, writer, state)` answers one connection. Returns (url, state)."""
    state = {"connections": 0, "requests": []}

    async def on_connect(reader, writer):
        state["connections"] += 1
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/x", state


async def read_request(reader, state):
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
    body = await reader.readexactly(length)
    state["requests"].append((head, body))
    return head, body


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given():
    async def handler(reader, writer, state):
        while True:
            _, body = await read_request(reader, state)
            writer.write(ok(b"echo:" + body))
            await writer.drain()

    async def go():
        server, url, state = await serve(handler)
        http = HTTPClient()
        for i in range(3):
            resp = await http.request("POST", url, headers={"Authorization": "Bearer k"}, body=b"n%d" % i, **T)
            assert resp.status == 200 and await resp.read() == b"echo:n%d" % i
        head = state["requests"][0][0]
        assert head.startswith(b"POST /v1/x HTTP/1.1\r\n") and b"Authorization: Bearer k" in head
        assert b"Host: 127.0.0.1:" in head
        server.close()
        http.close()
        return state["connections"]

    assert run(go()) == 1


def test_chunked_bodies_are_decoded_and_streamed():
    async def handler(reader, writer, state):
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def go():
        server, url, state = await serve(handler)
        resp = await HTTPClient().request("POST", url, headers={}, body=b"{}", **T)
        assert resp.headers["content-type"] == "text/event-stream"
        chunks = [c async for c in resp.iter_chunks()]
        server.close()
        return chunks

    assert b"".join(run(go())) == b"data: 1\n\ndata: 2\n\n"


def test_a_closed_idle_connection_is_retried_once_on_a_new_one():
    async def handler(reader, writer, state):
        await read_request(reader, state)
        writer.write(ok(b"answer"))  # keep-alive promised...
        await writer.drain()
        await read_request(reader, state)  # ...but the next request on it is dropped unanswered

    async def go():
        server, url, state = await serve(handler)
        http = HTTPClient()
        assert await (await http.request("POST", url, headers={}, body=b"a", **T)).read() == b"answer"
        assert await (await http.request("POST", url, headers={}, body=b"b", **T)).read() == b"answer"
        server.close()
        return state["connections"], [body for _, body in state["requests"]]

    connections, bodies = run(go())
    assert connections == 2 and bodies == [b"a", b"b", b"b"]  # b was sent twice: once lost, once answered


def test_connection_close_responses_are_not_reused():
    async def handler(reader, writer, state):
        await read_request(reader, state)
        writer.write(ok(b"bye", b"Connection: close\r\n"))
        await writer.drain()

    async def go():
        server, url, state = await serve(handler)
        http = HTTPClient()
        for _ in range(2):
            await (await http.request("POST", url, headers={}, body=b"", **T)).read()
        server.close()
        return state["connections"]

    assert run(go()) == 2


def test_timeouts_connect_errors_and_garbage():
    async def silent(reader, writer, state):
        await read_request(reader, state)
        await asyncio.sleep(2)

    async def stalls_mid_body(reader, writer, state):
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()
        await asyncio.sleep(2)

    async def garbage(reader, writer, state):
        await read_request(reader, state)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async def go():
        http = HTTPClient()
        server, url, _ = await serve(silent)
        with pytest.raises(ReadTimeout):
            await http.request("POST", url, headers={}, body=b"", **T)
        server.close()
        server, url, _ = await serve(stalls_mid_body)
        resp = await http.request("POST", url, headers={}, body=b"", **T)
        with pytest.raises(ReadTimeout):
            await resp.read()
        server.close()
        server, url, _ = await serve(garbage)
        with pytest.raises(ProtocolError):
            await http.request("POST", url, headers={}, body=b"", **T)
        server.close()
        from infra.local import free_port
        with pytest.raises(ConnectError):
            await http.request("POST", f"http://127.0.0.1:{free_port()}/x", headers={}, body=b"", **T)

    run(go())


def test_a_stream_abandoned_midway_closes_its_connection():
    async def handler(reader, writer, state):
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def go():
        server, url, state = await serve(handler)
        http = HTTPClient()
        resp = await http.request("POST", url, headers={}, body=b"", **T)
        chunks = resp.iter_chunks()
        assert await chunks.__anext__() == b"hello"
        await chunks.aclose()
        assert not any(http._pools.values()) or not http._pools[next(iter(http._pools))]
        server.close()

    run(go())


def test_a_silent_stream_pulses_and_times_out_from_its_last_byte_across_pulses():
    """One watchdog serves all the waits of an exchange: it pulses through a silence, a byte between pulses
    pushes the silence timeout back, and the timeout still comes when the silence outlasts it."""
    async def handler(reader, writer, state):
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # pulses, not a timeout (0.3 s < 0.5 s)
        writer.write(b"5\r\nagain\r\n")
        await writer.drain()
        await asyncio.sleep(2)  # then silent past the idle timeout

    async def go():
        server, url, _ = await serve(handler)
        http = HTTPClient()
        resp = await http.request("POST", url, headers={}, body=b"", **T)
        seen = []
        with pytest.raises(ReadTimeout):
            async for chunk in resp.iter_chunks(pulse=0.05):
                seen.append(chunk)
        server.close()
        return seen

    seen = run(go())
    data = [c for c in seen if c]
    assert data == [b"hello", b"again"]
    first, second = seen.index(b"hello"), seen.index(b"again")
    assert second - first > 1 and len(seen) - second > 1  # pulses in both silences
