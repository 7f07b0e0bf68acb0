"""Errors at the HTTP boundary under a real uvicorn: the documented shape, the generation id, and a
keep-alive connection that stays usable after an unexpected error."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from typing import Iterator

import orjson
import pytest

CHAT = {"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}


class Served:
    """An app under uvicorn (httptools, as `make run`) on a loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        from infra.local import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off",
                                                    http="httptools", log_level="critical", access_log=False))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


@pytest.fixture
def served(gateway) -> Iterator[Served]:
    from functions.gateway.app import create_app

    app = create_app()

    @app.get("/test/bug")
    async def bug() -> None:
        raise RuntimeError("a bug in the gateway")

    with Served(app) as served:
        yield served


def _error(resp: http.client.HTTPResponse, status: int) -> dict:
    body = orjson.loads(resp.read())
    assert resp.status == status and body["error"]["code"] == status, body
    return body["error"]


def test_an_unexpected_error_is_a_500_in_the_error_shape_and_the_connection_stays_usable(served):
    conn = served.connection()
    for _ in range(3):
        conn.request("GET", "/test/bug")
        error = _error(conn.getresponse(), 500)
        assert error["message"] == "Internal error" and "a bug" not in error["message"]
        conn.request("GET", "/health")  # the same keep-alive connection
        resp = conn.getresponse()
        assert resp.status == 200 and orjson.loads(resp.read())["status"] == "ok"
    conn.close()


def test_every_error_response_carries_its_generation_id(served):
    conn = served.connection()
    for method, path in (("GET", "/test/bug"), ("GET", "/api/v1/nothing"), ("DELETE", "/api/v1/models"),
                         ("POST", "/api/v1/chat/completions"), ("GET", "/api/v1/generation")):
        conn.request(method, path, body=orjson.dumps(CHAT) if method == "POST" else None)
        resp = conn.getresponse()
        error = _error(resp, resp.status)
        assert resp.status >= 400
        assert error["metadata"]["generation_id"].startswith("gen-"), (path, error)
        assert resp.getheader("x-generation-id") == error["metadata"]["generation_id"]
    conn.close()


def test_ids_differ_per_request(served):
    conn = served.connection()
    seen = set()
    for _ in range(3):
        conn.request("GET", "/api/v1/nothing")
        seen.add(_error(conn.getresponse(), 404)["metadata"]["generation_id"])
    assert len(seen) == 3


def test_a_failed_chat_call_can_be_looked_up_by_the_id_of_its_error(client, keys, gateway):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    for body in ({**CHAT, "model": "sim/down"}, {**CHAT, "messages": []}):
        resp = client.post("/api/v1/chat/completions", json=body, headers=headers)
        assert resp.status_code in (400, 502)
        gen_id = resp.json()["error"]["metadata"]["generation_id"]
        assert resp.headers["x-generation-id"] == gen_id
        gateway.meter.flush()
        looked_up = client.get(f"/api/v1/generation?id={gen_id}", headers=headers)
        assert looked_up.status_code == 200, looked_up.text
        assert looked_up.json()["data"]["id"] == gen_id and looked_up.json()["data"]["status"] == "failed"


def test_a_successful_chat_answer_names_its_generation_in_a_header(client, keys):
    headers = {"Authorization": f"Bearer {keys['dev']}"}
    resp = client.post("/api/v1/chat/completions", json=CHAT, headers=headers)
    assert resp.headers["x-generation-id"] == resp.json()["id"]
    with client.stream("POST", "/api/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers) as streamed:
        first = next(line for line in streamed.iter_lines() if line.startswith("data: "))
        assert streamed.headers["x-generation-id"] == orjson.loads(first[6:])["id"]


def _raw(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send one raw request; read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
