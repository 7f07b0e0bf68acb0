"""A small, hand-checked set of usage records for the lake's tests, and helpers to turn records into stream
batches as Lambda delivers them."""

from __future__ import annotations

from typing import Any

from shared.aws.codec import item

DAY1 = 1764633600.0  # 2025-12-02T00:00:00Z
DAY2 = DAY1 + 86400  # 2025-12-03


def record(i: int, **fields: Any) -> dict[str, Any]:
    base = {"id": f"gen-{i:04d}", "key_id": "aaaaaaaaaaaa", "created_at": DAY1 + 3600 * 10 + i, "model": "sim/fast",
            "lab": "sim", "provider": "sim", "upstream_model": "fast-1", "app": "support-bot",
            "app_title": "support-bot", "prompt_tokens": 10, "completion_tokens": 20, "cost": 0.001,
            "latency_ms": 100.0, "status": "completed", "streamed": False, "client_ip": "203.0.113.7",
            "user_agent": "OpenAI/Python 1.50.0", "day": "2025-12-02"}
    base.update(fields)
    return base


def fixture_records() -> list[dict[str, Any]]:
    """Hand-computed expectations live in the tests; keep this list and them in step.

    key A (aaaaaaaaaaaa): support-bot on sim/fast 4 calls (latency 10, 20, 30, 40; tokens 10/20 each), one of
      them streamed with ttft 5; data-pipeline on meta-llama/llama-3.2-3b-instruct 3 calls: 2 completed
      (latency 100, 300; 1000 prompt, 50 completion, 2 reasoning each; cost 0.01 each) and 1 failed
      (context_length_exceeded, 400); one cancelled sim/fast call from data-pipeline (latency 7).
    key B (bbbbbbbbbbbb): external-api on anthropic/claude-4-haiku 2 calls on day 2: 1 completed (latency 50,
      tokens 5/5, cost 0.1) and 1 failed (provider_error, 502); plus 1 failed rate_limit_exceeded (429).
    """
    A, B = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    rs = []
    for n, latency in enumerate((10.0, 20.0, 30.0, 40.0)):
        extra = {"streamed": True, "ttft_ms": 5.0} if n == 0 else {}
        rs.append(record(n, key_id=A, latency_ms=latency, categories=["chat-bot", "support"], **extra))
    llama = {"model": "meta-llama/llama-3.2-3b-instruct", "lab": "meta-llama", "provider": "together",
             "upstream_model": "Llama-3.2-3B", "app": "data-pipeline", "app_title": "data-pipeline",
             "categories": ["batch"]}
    rs.append(record(10, key_id=A, latency_ms=100.0, prompt_tokens=1000, completion_tokens=50, reasoning_tokens=2,
                     cost=0.01, **llama))
    rs.append(record(11, key_id=A, latency_ms=300.0, prompt_tokens=1000, completion_tokens=50, reasoning_tokens=2,
                     cost=0.01, created_at=DAY1 + 3600 * 11 + 5, **llama))
    rs.append(record(12, key_id=A, status="failed", error_code=400, error_type="context_length_exceeded",
                     latency_ms=3.0, prompt_tokens=0, completion_tokens=0, cost=0.0, **llama))
    rs.append(record(13, key_id=A, status="cancelled", latency_ms=7.0, app="data-pipeline",
                     app_title="data-pipeline", prompt_tokens=10, completion_tokens=2, cost=0.0001))
    haiku = {"model": "anthropic/claude-4-haiku", "lab": "anthropic", "provider": "anthropic",
             "upstream_model": "claude-4-haiku", "app": "external-api", "app_title": "external-api",
             "day": "2025-12-03"}
    rs.append(record(20, key_id=B, created_at=DAY2 + 60, latency_ms=50.0, prompt_tokens=5, completion_tokens=5,
                     cost=0.1, **haiku))
    rs.append(record(21, key_id=B, created_at=DAY2 + 61, status="failed", error_code=502,
                     error_type="provider_error", latency_ms=9.0, prompt_tokens=0, completion_tokens=0, cost=0.0,
                     **haiku))
    rs.append(record(22, key_id=B, created_at=DAY2 + 62, status="failed", error_code=429,
                     error_type="rate_limit_exceeded", latency_ms=1.0, prompt_tokens=0, completion_tokens=0,
                     cost=0.0, **haiku))
    return rs


def stream_batch(records: list[dict[str, Any]], first_seq: int, source: str = "arn:aws:dynamodb:us-east-1:1:"
                 "table/usage/stream/2025-12-01T00:00:00.000") -> list[dict[str, Any]]:
    """Records as one DynamoDB Stream batch (NEW_IMAGE), with consecutive sequence numbers."""
    return [{"eventID": f"ev-{first_seq + i}", "eventName": "INSERT", "eventSource": "aws:dynamodb",
             "eventSourceARN": source,
             "dynamodb": {"SequenceNumber": str(first_seq + i), "Keys": {"id": {"S": r["id"]}},
                          "NewImage": item(r), "StreamViewType": "NEW_IMAGE"}}
            for i, r in enumerate(records)]
