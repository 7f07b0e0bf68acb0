"""The embedded local stack behind `make run`: a moto server on loopback (a child process, see
infra/moto_process.py) holding the template's tables and bucket, local keys, and the gateway under uvicorn.
State (tables, pepper, keys) lives under `.switchyard/` (mode 0700) and survives restarts (infra/state.py).

Stopping loses nothing, whatever the signal (SIGINT or SIGTERM, to this process or to its whole group): uvicorn
stops accepting and finishes the calls in flight, the lifespan flushes the meter (and `main` flushes whatever is
still pending), then the usage exporter (infra/lake_export.py, a child process) writes what the stream still
holds to the lake, and only then is moto stopped, which saves on the way out. The moto child ignores SIGINT and
SIGTERM, so that a signal to our group (Ctrl-C, `kill -- -PGID`) cannot stop it before the meter is drained:
it stops when we close its stdin. So does the exporter.

Several gateway processes can share one stack (tests/test_rate_limits_e2e.py, benchmarks/governance.py): with
SWITCHYARD_MOTO_ENDPOINT set to a running moto (e.g. `python -m infra.moto_process PORT STATE_DIR`, which
creates the template's resources), a process starts no moto of its own, nor an exporter or flows (one
process of the stack runs those, or none), and uses the tables there. Give the processes one
SWITCHYARD_STATE_DIR (the pepper and keys are read from it) and start them one after another: the first
writes the keys the next ones reuse. `make run` sets none of this and is unchanged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from infra.moto_process import PREFIX
from infra.template import bucket_names, gateway_environment, table_specs
from shared.aws.secrets import local_pepper


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalStack:
    """The moto child process, resources and keys. `start()` sets the environment the gateway reads."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.names: dict[str, str] = {}
        self.created_keys: dict[str, str] = {}
        # Each child holds a pipe to our stdin's end: it stops when we close it (stop()) or when we die.
        self._moto: subprocess.Popen[str] | None = None
        self._export: subprocess.Popen[str] | None = None
        self._flows: subprocess.Popen[str] | None = None

    def start(self) -> "LocalStack":
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)  # keys, pepper and usage: the owner's only
        attached = os.environ.get("SWITCHYARD_MOTO_ENDPOINT")  # another process's moto (see the docstring)
        endpoint = attached.rstrip("/") if attached else f"http://127.0.0.1:{free_port()}"
        if not attached:
            # moto ignores SIGINT and SIGTERM (a signal to our process group is the gateway's to handle) and stops
            # when its stdin closes: stop(), once the meter is drained. If the gateway dies, moto notices and saves.
            self._moto = _spawn("infra.moto_process", endpoint.rsplit(":", 1)[1], str(self.state_dir),
                                ready="the moto server")
        os.environ.update({
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        })
        for var in ("AWS_PROFILE", "PEPPER_SECRET_ID"):
            os.environ.pop(var, None)
        self.names = {**{k: PREFIX + k for k in table_specs()}, **bucket_names(PREFIX)}
        os.environ.update(gateway_environment(self.names))
        os.environ["SWITCHYARD_PEPPER"] = local_pepper(self.state_dir)
        _reset_caches()
        self._ensure_keys()
        if not attached and os.environ.get("SWITCHYARD_LAKE_EXPORT", "1") != "0":
            # the usage table's stream into the lake (infra/lake_export.py), like moto in a process of its own
            self._export = _spawn("infra.lake_export", str(self.state_dir), ready="the usage export")
        if not attached and os.environ.get("SWITCHYARD_FLOWS", "1") != "0":
            # the Prefect flows on their schedule (pipelines/serve.py); it needs nothing from us to start
            self._flows = _spawn("pipelines.serve", str(self.state_dir), ready=None)
        return self

    def stop_export(self, timeout: float = 60.0) -> None:
        """Let the exporter write what the stream still holds (the meter is drained by now), and wait for it."""
        _stop(self._export, timeout, "the usage export did not finish in time; the next start writes what it "
                                     "missed")
        self._export = None

    def stop(self) -> None:
        """Stop the flows and the exporter, then the moto child, and wait until moto has saved and exited."""
        _stop(self._flows, 20, "the flows did not stop in 20 s; killed")
        self._flows = None
        self.stop_export()
        _stop(self._moto, 30, "the moto server did not stop in 30 s; killed (changes since its last save, "
                              "at most a few seconds old, are lost)")
        self._moto = None

    # -- keys -----------------------------------------------------------------------------------------
    def _ensure_keys(self) -> None:
        """Reuse the keys in .switchyard/ while they still resolve; otherwise make new ones."""
        from shared.config import get_settings
        from shared.keys import DynamoKeyStore
        from shared.keys.tokens import parse_key
        from shared.aws.secrets import pepper

        store = DynamoKeyStore(get_settings().keys_table, get_settings().counters_table, pepper)
        for kind, filename, name in (("management", "admin-key", "local admin"),
                                     ("inference", "dev-key", "local development")):
            path = self.state_dir / filename
            token = path.read_text().strip() if path.exists() else ""
            parsed = parse_key(token)
            if parsed is not None and parsed.kind == kind and store.get(parsed.key_id) is not None:
                continue
            token, _ = store.create(name, kind=kind)  # the development key has no credit limit
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(token + "\n")
            path.chmod(0o600)  # a file left by an older version may be wider
            self.created_keys[filename] = token


def _spawn(module: str, *args: str, ready: str | None) -> subprocess.Popen[str]:
    """`python -m module *args` with its stdin a pipe from us; with `ready` (what it is, for the error), wait
    for the line `ready` on its stdout."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=Path(__file__).resolve().parent.parent,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE if ready else None, text=True)
    if ready and (proc.stdout is None or proc.stdout.readline().strip() != "ready"):
        raise RuntimeError(f"{ready} did not start (exit code {proc.poll()})")
    return proc


def _stop(proc: subprocess.Popen[str] | None, timeout: float, late: str) -> None:
    """Close the child's stdin (its signal to finish and exit) and wait; past `timeout`, say `late` and kill it."""
    if proc is None or proc.poll() is not None:
        return
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"switchyard: {late}", file=sys.stderr, flush=True)
        proc.kill()
        proc.wait()


def _reset_caches() -> None:
    """Forget settings, clients and the gateway built for an earlier environment."""
    from shared.aws import reset_clients
    from shared.aws.dynamodb_json import json_client
    from shared.aws.secrets import pepper
    from shared.config import get_settings

    reset_clients()
    json_client.cache_clear()
    get_settings.cache_clear()
    pepper.cache_clear()
    if "functions.gateway.state" in sys.modules:
        sys.modules["functions.gateway.state"].gateway.cache_clear()
    if "functions.gateway.routes.analytics" in sys.modules:
        sys.modules["functions.gateway.routes.analytics"]._engine.cache_clear()
    if "functions.gateway.routes.rankings" in sys.modules:
        sys.modules["functions.gateway.routes.rankings"]._stores.cache_clear()


def drain_meter(timeout: float = 30.0) -> int:
    """Write what the gateway's meter still holds (after uvicorn stopped; moto still up). Returns how many
    records could not be written in `timeout` seconds (logged)."""
    if "functions.gateway.state" not in sys.modules:
        return 0  # the gateway never started: nothing was metered
    left = sys.modules["functions.gateway.state"].gateway().meter.drain(timeout)
    if left:
        print(f"switchyard: {left} usage records could not be written before shutdown", file=sys.stderr, flush=True)
    return left


class _Stop(BaseException):
    """A stop signal that arrived outside uvicorn (while starting, or re-raised by uvicorn after its shutdown)."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signum)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    state_dir = Path(os.environ.get("SWITCHYARD_STATE_DIR", root / ".switchyard"))
    port = int(os.environ.get("PORT", "8080"))
    # On a laptop the models worth adding are local (vLLM, llama.cpp, Ollama on 127.0.0.1): the catalog API may
    # add providers at loopback and private addresses here (a deployed stack refuses them unless told).
    os.environ.setdefault("SWITCHYARD_CATALOG_API_ALLOW_PRIVATE", "true")
    # uvicorn handles SIGINT and SIGTERM while it runs (a graceful shutdown, the lifespan's meter flush), then
    # raises the signal again under the handler it found: this one, so that moto is still stopped cleanly below
    # (SIGTERM's default action would end the process on the spot and leave moto saving on its own).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_stop)
    stack = LocalStack(state_dir)
    code = 0
    try:
        stack.start()
        _serve(stack, state_dir, port)
    except _Stop as stop:
        code = 128 + stop.args[0]
    finally:
        # Signals from here on are ignored: a second Ctrl-C must not cut the drain or moto's save short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        try:
            drain_meter()
        finally:
            stack.stop()
    if code:
        sys.exit(code)


def _serve(stack: LocalStack, state_dir: Path, port: int) -> None:
    import uvicorn

    base = f"http://127.0.0.1:{port}"
    print(f"Switchyard local stack: moto on {os.environ['AWS_ENDPOINT_URL']}, state in {state_dir}", flush=True)
    for filename, token in stack.created_keys.items():
        print(f"  new {'management' if filename == 'admin-key' else 'inference'} key (shown once, "
              f"kept in {state_dir / filename}):\n    {token}")
    if not stack.created_keys:
        print(f"  keys: {state_dir / 'dev-key'} (inference), {state_dir / 'admin-key'} (management)")
    print(f"  OpenAI base URL: {base}/api/v1    health: {base}/health    docs: {base}/docs", flush=True)
    uvicorn.run("functions.gateway.app:app", host="127.0.0.1", port=port, log_level="warning",
                access_log=False, loop="uvloop", http="httptools", proxy_headers=False, server_header=False)


if __name__ == "__main__":
    main()
