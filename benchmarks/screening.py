"""What model approval and residency cost a call's plan (numbers in benchmarks/README.md):

    python -m benchmarks.screening

Building a call's plan and its first candidate (`Plan(...).first()`, sim/fast, a plain key) with: no governance
source at all; the gateway's source with approval off and no residency (what every call pays when nobody uses
governance: a clock read and four attribute tests); approval on with the model approved; a key's residency;
both. Medians of 5 runs of 20,000 plans each, in one process. Target: approval off and no residency add no more
than that clock read and those tests (≈ 0.2 µs), within the run-to-run noise of no source.
"""

from __future__ import annotations

import statistics
import time

import orjson

from shared.catalog import load_catalog
from shared.chat.schema import parse_chat_request
from shared.chat.service import CallContext, ChatService
from shared.config import Settings
from shared.governance.source import GovernanceSource
from shared.governance.store import Approval, OrgSettings
from shared.routing.plan import Plan
from tests.stores import MemoryGovernanceStore


def _service(settings: OrgSettings | None, approved: tuple[str, ...] = ()) -> ChatService:
    source = None
    if settings is not None:
        store = MemoryGovernanceStore()
        store.settings = settings
        store.rows = {m: Approval(m, status="approved") for m in approved}
        source = GovernanceSource(store, ttl=3600)
        source.refresh_now()
    return ChatService(load_catalog(), None, Settings(), governance=source)  # type: ignore[arg-type]


def plans(n: int = 20_000) -> dict[str, float]:
    body = orjson.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]})
    cases = {
        "no governance source": (_service(None), None),
        "approval off, no residency": (_service(OrgSettings()), None),
        "approval on, model approved": (_service(OrgSettings(model_approval=True), ("sim/fast",)), None),
        "key residency us-east-1": (_service(OrgSettings()), ("us-east-1",)),
        "approval on + key and organisation residency": (
            _service(OrgSettings(model_approval=True, residency=("us",)), ("sim/fast",)), ("us-east-1",)),
    }
    out = {}
    for label, (service, residency) in cases.items():
        ctx = CallContext(key_id="k", residency=residency)
        samples = []
        for _ in range(5):
            requests = [parse_chat_request(body) for _ in range(n)]
            start = time.perf_counter()
            for r in requests:
                Plan(service.routing, r, ctx).first()
            samples.append((time.perf_counter() - start) / n * 1e6)
        out[f"plan: {label} (µs)"] = round(statistics.median(samples), 2)
    return out


if __name__ == "__main__":
    for name, value in plans().items():
        print(f"{name:60s} {value}")
