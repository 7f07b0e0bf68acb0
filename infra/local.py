"""The embedded local stack behind `make run`: a moto server on loopback, the template's tables and bucket,
local keys, and the gateway under uvicorn. State (tables, pepper, keys) lives under `.switchyard/` and
survives restarts: tables are snapshotted every few seconds and on exit, and restored at start.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from infra.template import create_resources, gateway_environment

PREFIX = "switchyard-"
SNAPSHOT_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalStack:
    """Moto server + resources + keys, in this process. `start()` sets the environment the gateway reads."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "state.json"
        self.names: dict[str, str] = {}
        self._server: Any = None
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self.created_keys: dict[str, str] = {}

    def start(self) -> "LocalStack":
        import logging

        from moto.server import ThreadedMotoServer

        from shared.aws.secrets import local_pepper

        self.state_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        os.environ.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        })
        for var in ("AWS_PROFILE", "PEPPER_SECRET_ID"):
            os.environ.pop(var, None)
        _reset_caches()
        self.names = create_resources(PREFIX)
        os.environ.update(gateway_environment(self.names))
        os.environ["SWITCHYARD_PEPPER"] = local_pepper(self.state_dir)
        _reset_caches()
        self._restore()
        self._ensure_keys()
        self._saver = threading.Thread(target=self._autosave, name="state-snapshot", daemon=True)
        self._saver.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
        self.snapshot()
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- keys -----------------------------------------------------------------------------------------
    def _ensure_keys(self) -> None:
        """Reuse the keys in .switchyard/ while they still resolve; otherwise make new ones."""
        from shared.config import get_settings
        from shared.keys import KeyStore
        from shared.keys.tokens import parse_key
        from shared.aws.secrets import pepper

        store = KeyStore(get_settings().keys_table, get_settings().counters_table, pepper)
        for kind, filename, name in (("management", "admin-key", "local admin"),
                                     ("inference", "dev-key", "local development")):
            path = self.state_dir / filename
            token = path.read_text().strip() if path.exists() else ""
            parsed = parse_key(token)
            if parsed is not None and parsed.kind == kind and store.get(parsed.key_id) is not None:
                continue
            token, _ = store.create(name, kind=kind)  # the development key has no credit limit
            path.write_text(token + "\n")
            path.chmod(0o600)
            self.created_keys[filename] = token

    # -- persistence ----------------------------------------------------------------------------------
    def snapshot(self) -> None:
        """Write every table's items to state.json (atomically)."""
        import boto3

        ddb = boto3.client("dynamodb")
        data: dict[str, list[dict[str, Any]]] = {}
        for logical, table in self.names.items():
            if not logical.endswith("Table"):
                continue
            items, kwargs = [], {"TableName": table}
            while True:
                page = ddb.scan(**kwargs)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            data[logical] = items
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "tables": data}))
        tmp.replace(self.state_file)

    def _restore(self) -> None:
        if not self.state_file.exists():
            return
        import boto3

        ddb = boto3.client("dynamodb")
        state = json.loads(self.state_file.read_text())
        for logical, items in state.get("tables", {}).items():
            table = self.names.get(logical)
            for i in range(0, len(items), 25) if table else ():
                batch = [{"PutRequest": {"Item": item}} for item in items[i:i + 25]]
                pending = {table: batch}
                while pending:
                    pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def _autosave(self) -> None:
        while not self._stop.wait(SNAPSHOT_SECONDS):
            try:
                self.snapshot()
            except Exception as e:  # the next snapshot tries again; never take the gateway down
                print(f"switchyard: state snapshot failed: {e}", file=sys.stderr)


def _reset_caches() -> None:
    """Forget settings, clients and the gateway built for an earlier environment."""
    from shared.aws import reset_clients
    from shared.aws.secrets import pepper
    from shared.catalog import get_catalog
    from shared.config import get_settings

    reset_clients()
    get_settings.cache_clear()
    get_catalog.cache_clear()
    pepper.cache_clear()
    if "functions.gateway.state" in sys.modules:
        sys.modules["functions.gateway.state"].gateway.cache_clear()


def main() -> None:
    import uvicorn

    root = Path(__file__).resolve().parent.parent
    os.chdir(root)
    state_dir = Path(os.environ.get("SWITCHYARD_STATE_DIR", root / ".switchyard"))
    port = int(os.environ.get("PORT", "8080"))
    stack = LocalStack(state_dir).start()
    base = f"http://127.0.0.1:{port}"
    print(f"Switchyard local stack: moto on {os.environ['AWS_ENDPOINT_URL']}, state in {state_dir}")
    for filename, token in stack.created_keys.items():
        print(f"  new {'management' if filename == 'admin-key' else 'inference'} key (shown once, "
              f"kept in {state_dir / filename}):\n    {token}")
    if not stack.created_keys:
        print(f"  keys: {state_dir / 'dev-key'} (inference), {state_dir / 'admin-key'} (management)")
    print(f"  OpenAI base URL: {base}/api/v1    health: {base}/health    docs: {base}/docs", flush=True)
    try:
        uvicorn.run("functions.gateway.app:app", host="127.0.0.1", port=port, log_level="warning",
                    access_log=False, loop="uvloop", http="httptools")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
