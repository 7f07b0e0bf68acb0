"""Audit log costs (numbers in benchmarks/README.md):

    python -m benchmarks.audit

Against one moto server on loopback (what `make run` and the tests use; DynamoDB's own round trips are
~5-10 ms each, so on AWS an append is about two of them): the time of one append (a consistent GetItem of the
head, then one TransactWriteItems), alone and with two threads appending at once (each conflict costs a retry),
and the time to verify a chain of N entries (one strongly consistent Query page per 200 entries). The inference
path pays nothing: no call reads or writes the audit table.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass


@dataclass
class _Actor:
    key_id: str = "a1b2c3d4e5f6"
    label: str = "sk-sy-mgmt-v1-a1b…xyz"
    name: str = "bench"


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    from infra import moto_patches
    from infra.local import _reset_caches, free_port
    from infra.template import create_resources

    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1"})
    moto_patches.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    _reset_caches()
    try:
        from shared.audit import AuditLog

        table = create_resources("bench-")["AuditTable"]
        log = AuditLog(table, lambda: b"bench-pepper")
        actor = _Actor()
        after = {"hash": "0123456789ab", "name": "app", "limit": 5.0, "allowed_models": ["anthropic/*"]}
        times = []
        for i in range(300):
            t = time.perf_counter()
            log.append(action="key.update", actor=actor, target=f"{i:012x}", before=after, after=after,
                       source_ip="10.0.0.1", request_id=f"gen-{i}")
            times.append((time.perf_counter() - t) * 1000)
        print(f"append, one writer: median {statistics.median(times):.2f} ms, p95 "
              f"{sorted(times)[int(len(times) * 0.95)]:.2f} ms ({len(times)} appends)")

        both: list[float] = []
        barrier = threading.Barrier(2)

        def writer() -> None:
            store = AuditLog(table, lambda: b"bench-pepper")
            barrier.wait()
            for i in range(150):
                t = time.perf_counter()
                store.append(action="key.create", actor=actor, target=f"c{i}")
                both.append((time.perf_counter() - t) * 1000)

        threads = [threading.Thread(target=writer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"append, two writers at once: median {statistics.median(both):.2f} ms, p95 "
              f"{sorted(both)[int(len(both) * 0.95)]:.2f} ms ({len(both)} appends)")
        t = time.perf_counter()
        verdict = log.verify()
        print(f"verify {verdict.entries} entries: {(time.perf_counter() - t) * 1000:.0f} ms, valid={verdict.valid}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
