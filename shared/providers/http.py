"""The upstream HTTP/1.1 client: a keep-alive connection pool on asyncio with llhttp's parser (httptools).

Why our own: measured on this project's 2-core machine against the shared fake upstream, 32 concurrent
requests, aiohttp's client cost 88 µs of CPU a request and this one 20 µs (`python -m benchmarks.parts`,
benchmarks/README.md), on the path every proxied call takes. It does what the gateway needs and no more: POST/GET with bytes bodies, http and
https, connection reuse per host, chunked and content-length bodies (decoded by llhttp), streaming bodies,
and three timeouts (connect, first byte = until the response headers, idle gap between body chunks, plus a
total). A request sent on a reused idle connection that the server had already closed is retried once on a
new connection, but only when no byte of a response arrived. No proxies, no HTTP/2, no compression (we do not
send Accept-Encoding, so servers answer in identity). Pools are keyed by (scheme, host, port). Origins that only
providers added through the catalog API use are guarded: `_connect` resolves them, refuses metadata, link-local
(and, unless allowed, loopback and private) addresses, and connects to the very address it checked.
Memory is bounded against hostile servers: a connection stops reading from its socket while HIGH_WATER bytes
of body wait to be consumed (TCP pushes back on the server), and `read(limit)` refuses a body over `limit`
(declared or counted) without reading the rest.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, AsyncIterator, Coroutine, Iterable
from urllib.parse import urlsplit

import httptools

__all__ = ["ConnectError", "HTTPClient", "ProtocolError", "ReadTimeout", "Response", "ResponseTooLarge",
           "TransportError", "client", "guard_origins", "literal_address", "refused_address"]

HIGH_WATER = 1024 * 1024  # body bytes buffered per connection before it stops reading its socket
_EARLY = 0.001  # seconds: a timer may ring this much before its time (the loops' clock resolution)


class TransportError(Exception):
    """The exchange failed below HTTP (connect, reset, timeout, malformed response)."""


class ConnectError(TransportError):
    pass


class ReadTimeout(TransportError):
    pass


class ProtocolError(TransportError):
    pass


class ResponseTooLarge(ProtocolError):
    """The body is over the reader's limit (it was not read further; the connection is closed)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Origin:
    """Where connections go, and the key of their pool: scheme, host and port only, so that every path on a
    host (Gemini's per-model URLs, Azure's deployments) shares its connections. `guarded`: an origin that only
    providers added through the catalog API use (guard_origins); its connections are made by `_connect` to
    resolved addresses it has checked, and are pooled apart from unchecked ones."""

    scheme: str
    host: str
    port: int
    guarded: bool = False

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@lru_cache(maxsize=1024)
def target(url: str) -> tuple[Origin, str]:
    """A URL's origin (unguarded) and request target (path and query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Origin(parts.scheme, parts.hostname, port), (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def origin(url: str) -> Origin:
    return target(url)[0]


# -- the address check for providers added through the catalog API -------------------------------------------
# Cloud metadata services: never reachable from an API-added provider, whatever the settings.
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23", "100.100.100.200"))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_guarded: dict[Origin, Origin] = {}  # unguarded origin → its guarded twin
_allow_private = False


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, IPv4-compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    """Why a provider added through the catalog API may not connect to `address` (None: it may).

    Never: cloud metadata, link-local (169.254/16, fe80::/10), unspecified, multicast and reserved addresses.
    Loopback and every other non-global (private, shared, unique-local) address only with `allow_private`."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_v4(address)
        if embedded is not None:
            return refused_address(embedded, allow_private)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_loopback:
        return None if allow_private else "a loopback address"
    if address.is_unspecified or address.is_multicast or address.is_reserved or address in _THIS_NETWORK:
        return "not a unicast host address"
    if not address.is_global:
        return None if allow_private else "a private address"
    return None


_V4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 literal in any form a resolver accepts (inet_aton): 1 to 4 parts, each decimal, octal (0…) or
    hex (0x…), the last filling the remaining bytes: 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(p) for p in parts):
        return None
    nums = [int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8) if p.startswith("0") else int(p)
            for p in parts]
    *head, last = nums
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    return ipaddress.IPv4Address(value * 256 ** (4 - len(head)) + last)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name that is an IP literal stands for (None: a name to resolve). `host` as urlsplit
    gives it (no brackets). Parsed the way the system resolver does, so that no spelling slips through."""
    if host.endswith("."):  # an absolute name: resolvers may still read the rest as a literal
        host = host[:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    address = _inet_aton(host)
    if address is None:
        try:  # the platform's own parser, in case it accepts more
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    return address


def guard_origins(urls: Iterable[str], *, allow_private: bool) -> None:
    """Make the origins of `urls` guarded: their connections go only to resolved addresses that
    `refused_address` lets through (re-checked on every new connection: DNS rebinding). Replaces the set."""
    global _guarded, _allow_private
    guarded = {}
    for url in urls:
        key = origin(url)
        guarded[key] = Origin(key.scheme, key.host, key.port, guarded=True)
    _allow_private = allow_private
    _guarded = guarded


async def _checked_connection(loop: asyncio.AbstractEventLoop, key: Origin,
                              tls: ssl.SSLContext | None) -> "_Connection":
    """Resolve once, refuse if any address is forbidden, then connect to those very addresses (no second lookup
    that a rebinding DNS server could answer differently)."""
    infos = await loop.getaddrinfo(key.host, key.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    targets = []
    for family, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = refused_address(address, _allow_private)
        if why is not None:
            # The address itself stays out of the message: inference callers see it, and it may be internal.
            raise ConnectError(f"refusing to connect to {key.authority}: "
                               f"it resolves to an address refused here ({why})")
        if (family, sockaddr[0]) not in targets:
            targets.append((family, sockaddr[0]))
    error: OSError = OSError(f"{key.host} has no address")
    for family, address in targets:
        try:
            _, conn = await loop.create_connection(_Connection, address, key.port, family=family, ssl=tls,
                                                   server_hostname=key.host if tls else None)
            return conn
        except OSError as e:
            error = e
    raise error


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._exchange = False  # between send() and the end of the response
        self.closed = False
        self.reusable = False
        self.started = False  # a byte of the current response has arrived
        self._head: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0  # bytes in _chunks
        self._paused = False  # reading paused: _buffered reached HIGH_WATER
        self._wakeup: asyncio.Future[bool | None] | None = None
        # One watchdog for the waits of an exchange, not a timer a read: arming a timer costs ~3 µs on uvloop,
        # and a stream waits once per chunk. It stays armed across waits and is moved only when it rings
        # before the current wait's end (`_due`, when that wait ends with a pulse if `_pulsing`, else times out).
        self._watchdog: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._pulsing = False
        self._done = False
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.heard = 0.0  # the loop time of the response's last bytes (its headers, then each piece of body)
        self.status = 0
        self.headers: dict[str, str] = {}

    # -- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._exchange:  # bytes on an idle connection: nothing we can reuse it for
            self.close()
            return
        self.started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ProtocolError(f"malformed response: {e}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._done:
            self._fail(ProtocolError("connection closed before the response ended"))

    # -- httptools callbacks ------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.heard = self._loop.time()  # type: ignore[union-attr]
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.heard = self._loop.time()  # type: ignore[union-attr]
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        waiter = self._wakeup  # _wake(), inline: once a piece of a stream
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        self._done = True
        self._exchange = False
        self.reusable = self._parser.should_keep_alive()
        self._wake()

    # -- use ----------------------------------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[None]:
        """Start an exchange; the future resolves when the response headers are in."""
        loop = self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._head = loop.create_future()
        self._chunks.clear()
        self._buffered = 0
        self._resume()
        self._done = self.started = self.reusable = False
        self._disarm()
        self._exchange = True
        self._error = None
        self.headers = {}
        assert self.transport is not None
        self.transport.write(data)
        return self._head

    async def next_chunk(self, until: float, pulse: float | None = None) -> bytes | None:
        """The next piece of the body, or None at its end; ReadTimeout at loop time `until` if nothing came;
        b"" when `pulse` seconds of silence come first."""
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            loop = self._loop
            assert loop is not None
            due, self._pulsing = until, False
            if pulse is not None and (at := loop.time() + pulse) < until:
                due, self._pulsing = at, True
            self._due = due
            if self._watchdog is None or self._watchdog.when() > due:
                self._disarm()
                self._watchdog = loop.call_at(due, self._ring)
            waiter = self._wakeup = loop.create_future()
            try:
                pulsed = await waiter
            finally:
                self._wakeup = None
            if pulsed and not chunks:
                return b""
        chunk = chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < HIGH_WATER // 2:
            self._resume()
        return chunk

    def _ring(self) -> None:
        """The watchdog: end the current wait if it is due (a pulse, or the silence timeout), else move on to it."""
        self._watchdog = None
        waiter = self._wakeup
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait arms it again
        loop = asyncio.get_running_loop()
        if self._due - loop.time() > _EARLY:
            self._watchdog = loop.call_at(self._due, self._ring)
        elif self._pulsing:
            waiter.set_result(True)
        else:
            waiter.set_exception(ReadTimeout("the upstream went silent"))

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_exception(error)

    def close(self) -> None:
        self.closed = True
        self._disarm()
        if self.transport is not None:
            self.transport.close()


def _expire(future: asyncio.Future[None], why: str) -> None:
    if not future.done():
        future.set_exception(ReadTimeout(why))


class Response:
    """Status and headers; the body is read with `read()` or `iter_chunks()` (then the connection is reused).
    Each read waits at most the idle timeout, and never past `deadline` (the loop's clock) when one is set."""

    deadline: float | None = None

    def __init__(self, client: "HTTPClient", key: Origin, conn: _Connection, idle: float) -> None:
        self._client, self._key, self._conn, self._idle = client, key, conn, idle
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    def _until(self) -> float:
        """The loop time by which the next read must bring something: the idle timeout from now, never past the
        deadline."""
        until = asyncio.get_running_loop().time() + self._idle
        return until if self.deadline is None or self.deadline > until else self.deadline

    def next_piece(self, pulse: float | None = None) -> Coroutine[Any, Any, bytes | None]:
        """The next piece of the body as it arrives (None at its end); with `pulse`, b"" after `pulse` seconds of
        silence, the idle timeout then counting from the last byte (never past the deadline). The connection's
        own coroutine, no frame of ours around it: a stream awaits this once a read. The reader releases the
        response at the end."""
        if pulse is None:
            return self._conn.next_chunk(self._until())
        until = self._conn.heard + self._idle
        if self.deadline is not None and self.deadline < until:
            until = self.deadline
        return self._conn.next_chunk(until, pulse)

    async def iter_chunks(self, pulse: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives (`next_piece`, one an item); the response released at the end."""
        try:
            while (chunk := await self.next_piece(pulse)) is not None:
                yield chunk
        finally:
            self.release()

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; ResponseTooLarge past `limit` bytes (at once when the declared length is)."""
        try:
            if limit is not None:
                declared = self.headers.get("content-length", "")
                if declared.isascii() and declared.isdigit() and int(declared) > limit:
                    raise ResponseTooLarge(limit)
            parts, size = [], 0
            while (chunk := await self._conn.next_chunk(self._until())) is not None:
                size += len(chunk)
                if limit is not None and size > limit:
                    raise ResponseTooLarge(limit)
                parts.append(chunk)
            return b"".join(parts)
        finally:
            self.release()

    def release(self) -> None:
        """Give the connection back when its response ended cleanly; close it otherwise."""
        if self._released:
            return
        self._released = True
        self._conn._disarm()
        if self._conn._done and self._conn.reusable and not self._conn.closed:
            self._client._idle(self._key).append(self._conn)
        else:
            self._conn.close()


class HTTPClient:
    def __init__(self, max_idle_per_origin: int = 128) -> None:
        self.max_idle = max_idle_per_origin
        self._pools: dict[Origin, deque[_Connection]] = {}

    def _idle(self, key: Origin) -> deque[_Connection]:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = deque(maxlen=self.max_idle)
        return pool

    async def _connect(self, key: Origin, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = _tls() if key.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                if key.guarded:
                    conn = await _checked_connection(loop, key, tls)
                else:
                    _, conn = await loop.create_connection(_Connection, key.host, key.port, ssl=tls,
                                                           server_hostname=key.host if tls else None)
        except TimeoutError:
            raise ConnectError(f"connecting to {key.authority} timed out") from None
        except OSError as e:
            raise ConnectError(f"cannot connect to {key.authority}: {e.strerror or e}") from None
        return conn

    async def request(self, method: str, url: str, *, headers: dict[str, str], body: bytes = b"",
                      connect_timeout: float, first_byte_timeout: float, idle_timeout: float) -> Response:
        """Send a request; returns once the response headers arrived (read the body from the Response)."""
        key, path = target(url)
        if _guarded:
            key = _guarded.get(key, key)
        head = [f"{method} {path} HTTP/1.1\r\nHost: {key.authority}\r\nContent-Length: {len(body)}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        data = "".join(head).encode("latin-1") + b"\r\n" + body
        pool = self._idle(key)
        for attempt in (0, 1):
            reused = False
            conn = None
            while pool:
                candidate = pool.pop()
                if not candidate.closed:
                    conn, reused = candidate, True
                    break
            if conn is None:
                conn = await self._connect(key, connect_timeout)
            waiter = conn.send(data)
            timer = asyncio.get_running_loop().call_later(first_byte_timeout, _expire, waiter,
                                                          "no response headers in time")
            try:
                await waiter
            except ReadTimeout:
                conn.close()
                raise
            except ProtocolError:
                conn.close()
                if reused and not conn.started and attempt == 0:
                    continue  # the server had closed this idle connection: once more on a new one
                raise
            except BaseException:
                conn.close()
                raise
            finally:
                timer.cancel()
            return Response(self, key, conn, idle_timeout)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for pool in self._pools.values():
            while pool:
                pool.pop().close()
        self._pools.clear()


_client: HTTPClient | None = None
_loop: asyncio.AbstractEventLoop | None = None


def client() -> HTTPClient:
    """The process's client for the running loop (Mangum reuses one loop across warm invocations)."""
    global _client, _loop
    loop = asyncio.get_running_loop()
    if _client is None or _loop is not loop:
        _client, _loop = HTTPClient(), loop
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None
