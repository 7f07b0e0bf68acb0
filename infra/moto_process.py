"""The local stack's AWS: a moto server in a child process of `make run`, with the template's resources and
the saved state of .switchyard/ loaded, saved every few seconds and when it stops.

    python -m infra.moto_process PORT STATE_DIR

A child process rather than a thread of the gateway: in-process, moto's request handling held the GIL and
cut the gateway's throughput with metering on from 1,855 to 763 req/s (benchmarks/README.md). It prints
`ready` once the tables exist and the state is loaded, and exits (after saving) on SIGTERM or SIGINT sent to
it, or within SAVE_SECONDS of its parent's death. infra/local.py starts it in a session of its own, so that
Ctrl-C or a `kill` of `make run`'s process group reaches only the gateway, which drains its meter into us and
then stops us: we never stop while the gateway still has records to write.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from infra import moto_patches
from infra.state import LocalState
from infra.template import create_resources

PREFIX = "switchyard-"
SAVE_SECONDS = 5.0


def main() -> None:
    port, state_dir = int(sys.argv[1]), Path(sys.argv[2])
    parent = os.getppid()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "local",
                       "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"})
    from moto.server import ThreadedMotoServer

    moto_patches.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    state = LocalState(state_dir, create_resources(PREFIX), append_only=frozenset({"UsageTable"}))
    state.restore()
    stop = threading.Event()
    # Signals reach us only when sent to this process itself (our own session: see the docstring).
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(SAVE_SECONDS):
        try:
            state.save()
        except Exception as e:  # the next save tries again
            print(f"switchyard: state save failed: {e}", file=sys.stderr, flush=True)
        if os.getppid() != parent:  # the gateway died without stopping us
            break
    state.save()
    server.stop()


if __name__ == "__main__":
    main()
