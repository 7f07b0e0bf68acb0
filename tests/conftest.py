"""Fixtures: fake AWS credentials → `mock_aws` → the template's tables → a fresh gateway.

End-to-end tests use `local_stack`: the real `python -m infra.local` (what `make run` starts) in a
subprocess on a free loopback port, with a fake OpenAI-compatible upstream configured through SWITCHYARD_CONFIG.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from tests.fakes.anthropic_upstream import FakeAnthropic
    from tests.fakes.openai_upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "SWITCHYARD_CONFIG", "PEPPER_SECRET_ID"):
    os.environ.pop(var, None)
os.environ["SWITCHYARD_PEPPER"] = "test-pepper-not-secret"

from hypothesis import settings as hypothesis_settings  # noqa: E402

from infra import moto_patches  # noqa: E402  (after the environment above)

# CI runs the same examples every time (a failure there is reproducible); local runs keep exploring.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

moto_patches.install()  # the same moto as `make run`: see infra/moto_patches.py


def reset_gateway() -> None:
    from infra.local import _reset_caches

    _reset_caches()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server on loopback for the session: every AWS call goes over HTTP, as in production."""
    import logging

    from moto.server import ThreadedMotoServer

    from infra.local import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A reset moto with every table and bucket of template.yaml; the gateway env points at them."""
    from infra.template import create_resources, gateway_environment

    urllib.request.urlopen(urllib.request.Request(moto_server + "/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    reset_gateway()
    names = create_resources("test-")
    for var, value in gateway_environment(names).items():
        monkeypatch.setenv(var, value)
    reset_gateway()
    yield names
    reset_gateway()


@pytest.fixture
def gateway(aws):
    from functions.gateway.state import gateway as build

    return build()


@pytest.fixture
def keys(gateway) -> dict[str, str]:
    """A management key and an inference key in the mocked tables."""
    admin, _ = gateway.keys.create("admin", kind="management")
    dev, _ = gateway.keys.create("dev")
    return {"admin": admin, "dev": dev}


@pytest.fixture
def client(gateway):
    """The ASGI app in-process (Starlette's TestClient), against the mocked tables."""
    from starlette.testclient import TestClient

    from functions.gateway.app import app

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator["FakeUpstream"]:
    from tests.fakes.openai_upstream import FakeUpstream

    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="session")
def fake_gemini():
    from tests.fakes.gemini_upstream import FakeGemini

    with FakeGemini() as up:
        yield up


@pytest.fixture(scope="session")
def fake_bedrock():
    from tests.fakes.bedrock_upstream import FakeBedrock

    with FakeBedrock() as up:
        yield up


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator["FakeAnthropic"]:
    from tests.fakes.anthropic_upstream import FakeAnthropic

    with FakeAnthropic() as up:
        yield up


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"local stack exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("local stack did not become healthy")


class LocalProcess:
    """`python -m infra.local` in a subprocess: what `make run` starts."""

    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        from infra.local import free_port

        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the Prefect flows child (pipelines/serve.py) is off unless a test asks: it is a second server to start
        self.env = {"SWITCHYARD_FLOWS": "0", **os.environ, **env, "PORT": str(self.port),
                    "SWITCHYARD_STATE_DIR": str(state_dir)}
        self.env.pop("SWITCHYARD_PEPPER", None)
        self.proc: subprocess.Popen | None = None
        self.output = ""

    def start(self) -> "LocalProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_healthy(self.url, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.output, _ = self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.output, _ = self.proc.communicate()

    def key(self, name: str) -> str:
        return (self.state_dir / name).read_text().strip()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory, fake_upstream, fake_anthropic, fake_gemini, fake_bedrock) -> Iterator[LocalProcess]:
    import yaml

    fakes = (fake_upstream, fake_anthropic, fake_gemini, fake_bedrock)
    parts = [yaml.safe_load(fake.catalog_yaml()) for fake in fakes]
    config = tmp_path_factory.mktemp("config") / "switchyard.yaml"
    config.write_text(yaml.safe_dump({key: [x for part in parts for x in part[key]] for key in ("providers", "models")}))
    stack = LocalProcess(tmp_path_factory.mktemp("state"),
                         {"SWITCHYARD_CONFIG": str(config), "FAKE_VENDOR_KEY": "vendor-secret-123",
                          "FAKE_ANTHROPIC_KEY": "anthropic-secret-456", "FAKE_GEMINI_KEY": "gemini-secret-789",
                          "SWITCHYARD_KEEPALIVE_SECONDS": "0.2"}).start()
    yield stack
    stack.stop()
