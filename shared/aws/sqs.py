"""SQS: bodies sent ten a request (SendMessageBatch's most), a few requests at a time; botocore errors translated
here (StorageError, 503)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import client
from shared.errors import StorageError

BATCH = 10
PARALLEL = 16  # requests in flight: within the shared client's 32 pooled connections


def send_all(queue_url: str, bodies: list[str]) -> None:
    """Send every body, or raise StorageError. In parallel, so that a job of many row groups is queued within
    the 30 s of the request that starts it."""
    sqs = client("sqs")

    def send(start: int) -> int:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + BATCH])]
        try:
            return len(sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or [])
        except (ClientError, BotoCoreError) as e:
            raise StorageError("The queue refused messages", metadata={"queue": queue_url.rsplit("/", 1)[-1]}) from e

    with ThreadPoolExecutor(PARALLEL) as pool:
        refused = sum(pool.map(send, range(0, len(bodies), BATCH)))
    if refused:
        raise StorageError(f"The queue refused {refused} of {len(bodies)} messages",
                           metadata={"queue": queue_url.rsplit("/", 1)[-1]})
