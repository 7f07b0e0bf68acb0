"""The local stack's AWS: a moto server in a child process of `make run`, with the template's resources and
the saved state of .switchyard/ loaded, saved every few seconds and when it stops.

    python -m infra.moto_process PORT STATE_DIR

A child process rather than a thread of the gateway: in-process, moto's request handling held the GIL and
cut the gateway's throughput with metering on from 1,855 to 763 req/s (benchmarks/README.md). It prints
`ready` once the tables exist and the state is loaded, and exits (after saving) when its stdin closes (the
gateway's stop, infra/local.py) or within SAVE_SECONDS of its parent's death. SIGINT and SIGTERM are ignored:
Ctrl-C or a `kill` of `make run`'s process group is the gateway's to handle, which drains its meter into us
and only then closes our stdin, so we never stop while the gateway still has records to write. (We stay in
`make run`'s process group, where tools look for the stack's processes.)
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
    names = create_resources(PREFIX)
    if os.environ.get("SWITCHYARD_LAKE_EXPORT", "1") == "0":  # no exporter reads the stream: do not keep one
        moto_patches.without_streams([names["UsageTable"]])
    state = LocalState(state_dir, names, append_only=frozenset({"UsageTable"}))
    state.restore()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the gateway's to handle: it stops us when its meter is drained
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), name="stop-on-stdin-eof", daemon=True).start()
    print("ready", flush=True)
    while not stop.wait(SAVE_SECONDS):
        try:
            state.save()
            moto_patches.trim_streams()  # DynamoDB keeps a stream's records 24 hours; moto, forever
        except Exception as e:  # the next save tries again
            print(f"switchyard: state save failed: {e}", file=sys.stderr, flush=True)
        if os.getppid() != parent:  # the gateway died without stopping us
            break
    state.save()
    server.stop()


if __name__ == "__main__":
    main()
