"""Synthetic jobs the AWS way: POST /jobs queues one SQS message a row group (moto, queues as template.yaml
declares them), and functions/synthetic/handler.py makes each group from the real SQS event, calling a real
gateway over loopback HTTP with the job's derived key, into the data bucket (moto S3)."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Iterator

import pytest

from infra.template import load
from tests.support import Served, api

ROOT = Path(__file__).resolve().parent.parent
EVENT = json.loads((ROOT / "tests/events/sqs_receive.json").read_text())["Records"][0]
CONFIG = ("models:\n"
          "  - {id: sim/slow-1s, provider: sim, context_length: 32768, pricing: {prompt: 1, completion: 2},\n"
          "     sim: {latency_ms: 1000}}\n"
          "  - {id: sim/broken, provider: sim, context_length: 32768, pricing: {prompt: 1, completion: 2},\n"
          "     sim: {error_rate: 1.0, error_status: 400}}\n")


def spec(name: str = "fanout", **extra) -> dict:
    """Six rows in three row groups, two LLM columns a row, on the sim models."""
    return {"name": name, "num_records": 6, "buffer_size": 2, "seed": 7,
            "model_configs": [{"alias": "w", "model": "sim/fast", "inference_parameters": {"max_tokens": 40}}],
            "columns": [
                {"name": "topic", "column_type": "sampler", "sampler_type": "category",
                 "params": {"values": ["tax", "leases", "wills"]}},
                {"name": "note", "column_type": "llm-text", "model_alias": "w", "prompt": "About {{ topic }}"},
                {"name": "facts", "column_type": "llm-structured", "model_alias": "w", "prompt": "Facts: {{ note }}",
                 "output_format": {"type": "object", "required": ["count"], "additionalProperties": False,
                                   "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 9}}}}],
            **extra}


class Context:
    """The Lambda context the worker reads: its time left."""

    function_name, aws_request_id = "SyntheticWorkerFunction", "test"

    def __init__(self, seconds: float = 900.0) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


class Stack:
    """The queues, the gateway served on loopback, and what a test needs of them."""

    def __init__(self, names: dict[str, str], queue_url: str, dead_letters_url: str, served: Served) -> None:
        import boto3

        self.names, self.queue_url, self.dead_letters_url, self.served = names, queue_url, dead_letters_url, served
        self.sqs, self.s3 = boto3.client("sqs"), boto3.client("s3")
        self.bucket = names["DataBucket"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.served.port}"

    def call(self, method: str, path: str, key: str, body=None) -> tuple[int, dict]:
        return api(self.url, method, path, key, body, timeout=60)

    def receive(self) -> list[dict]:
        """Every message now visible, as the records of the event Lambda's SQS poller sends (one each)."""
        records = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           AttributeNames=["All"]).get("Messages", [])
            if not got:
                return sorted(records, key=lambda r: json.loads(r["body"])["group"])
            for m in got:
                record = copy.deepcopy(EVENT)
                record.update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"],
                              md5OfBody=m["MD5OfBody"])
                record["attributes"].update(m["Attributes"])
                records.append(record)

    def objects(self, prefix: str) -> dict[str, str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"]: o["ETag"] for o in listed}

    def metadata(self, job_id: str) -> dict:
        key = f"synthetic/{job_id}/metadata.json"
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())


@pytest.fixture
def stack(aws, monkeypatch, tmp_path) -> Iterator[Stack]:
    import boto3

    from functions.gateway.app import app
    from tests.conftest import reset_gateway

    template = load()["Resources"]
    queue = template["SyntheticGroupQueue"]["Properties"]
    sqs = boto3.client("sqs")
    dead = sqs.create_queue(QueueName="test-SyntheticGroupFailures")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="test-SyntheticGroupQueue", Attributes={
        "VisibilityTimeout": str(queue["VisibilityTimeout"]),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn,
                                     "maxReceiveCount": queue["RedrivePolicy"]["maxReceiveCount"]})})["QueueUrl"]
    (tmp_path / "switchyard.yaml").write_text(CONFIG)
    served = Served(app)
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(tmp_path / "switchyard.yaml"))
    monkeypatch.setenv("SWITCHYARD_SYNTHETIC_QUEUE_URL", url)
    monkeypatch.setenv("SWITCHYARD_GATEWAY_URL", f"http://127.0.0.1:{served.port}/api/v1")
    reset_gateway()
    with served:
        yield Stack(aws, url, dead, served)


@pytest.fixture
def admin(stack) -> str:
    from functions.gateway.state import gateway

    token, _ = gateway().keys.create("admin", kind="management")
    return token


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """The chat completions the worker asks the gateway for (each still made, over HTTP)."""
    from shared.synthetic.client import GatewayClient

    made: list[dict] = []
    real = GatewayClient.complete

    async def complete(self, body, window, **options):
        made.append(body)
        return await real(self, body, window, **options)

    monkeypatch.setattr(GatewayClient, "complete", complete)
    return made


def worker(*records: dict, seconds: float = 900.0) -> dict:
    from functions.synthetic.handler import handler

    return handler({"Records": list(records)}, Context(seconds))


def job_key(job_id: str):
    from functions.gateway.state import gateway
    from shared.keys.tokens import derived_key

    token, parts = derived_key(gateway().keys.pepper(), f"synthetic-job|{job_id}")
    return token, gateway().keys.get(parts.key_id)


def start(stack: Stack, admin: str, body: dict, expect: int = 202) -> tuple[dict, list[dict]]:
    status, job = stack.call("POST", "/api/v1/synthetic/jobs", admin, body)
    assert status == expect, job
    return job, stack.receive()


def test_each_row_group_is_one_message_and_the_worker_of_the_last_one_finishes_the_job(stack, admin, calls):
    from shared.lake.store import open_store
    from shared.synthetic import jobs

    job, records = start(stack, admin, {"spec": spec()})
    job_id = job["job_id"]
    assert job["status"] == "running" and job["execution"] == "sqs" and job["groups_total"] == 3
    assert [json.loads(r["body"]) for r in records] == [{"job_id": job_id, "group": g} for g in range(3)]
    token, key = job_key(job_id)
    assert key is not None and not key.disabled  # the route made the job's key; the worker derives the same

    for record in records[:2]:
        assert worker(record) == {"batchItemFailures": []}
    assert stack.metadata(job_id)["status"] == "running"
    assert f"synthetic/{job_id}/README.md" not in stack.objects(f"synthetic/{job_id}/")
    assert len(calls) == 8  # two rows a group, two LLM cells a row

    parts = stack.objects(f"synthetic/{job_id}/data/")
    assert worker(records[0]) == {"batchItemFailures": []}  # a duplicate of a group written: no call, no write
    assert len(calls) == 8 and stack.objects(f"synthetic/{job_id}/data/") == parts

    assert worker(records[2]) == {"batchItemFailures": []}
    meta = stack.metadata(job_id)
    assert meta["status"] == "completed" and meta["rows_done"] == 6 == meta["num_records"], meta
    assert meta["usage"]["sim/fast"]["calls"] == 12 == len(calls)  # each group made once
    assert sorted(stack.objects(f"synthetic/{job_id}/data/")) == [
        f"synthetic/{job_id}/data/part-{g:05d}.parquet" for g in range(3)]
    rows = jobs.read_rows(open_store(f"s3://{stack.bucket}"), job_id)
    assert sorted(rows.column("_row").to_pylist()) == list(range(6))
    assert all(i.startswith("gen-") for i in rows.column("_facts_request_id").to_pylist())  # the gateway's ids
    card = stack.s3.get_object(Bucket=stack.bucket, Key=f"synthetic/{job_id}/README.md")["Body"].read().decode()
    assert "License-Safe" in card
    assert job_key(job_id)[1].disabled  # the job's end disabled its key

    for record in records:  # duplicates after the end: nothing made, nothing changed
        assert worker(record) == {"batchItemFailures": []}
    assert len(calls) == 12 and stack.metadata(job_id) == meta
    status, again = stack.call("POST", "/api/v1/synthetic/jobs", admin, {"spec": spec()})
    assert status == 200 and again["status"] == "completed" and stack.receive() == []  # the same job, done


def test_two_workers_making_the_same_group_at_once_write_it_once(stack, admin, monkeypatch):
    """SQS delivers at least once: a second delivery may run while the first still makes the group."""
    from shared.synthetic.client import GatewayClient

    job, records = start(stack, admin, {"spec": spec()})
    both_started, started, real = threading.Barrier(2, timeout=30), set(), GatewayClient.complete

    async def complete(self, body, window, **options):
        if len(started) < 2:  # each twin's first call waits for the other's; nothing waits after them
            started.add(threading.get_ident())
            both_started.wait()
        return await real(self, body, window, **options)

    monkeypatch.setattr(GatewayClient, "complete", complete)
    answers: list[dict] = []
    twins = [threading.Thread(target=lambda: answers.append(worker(records[1]))) for _ in range(2)]
    for t in twins:
        t.start()
    for t in twins:
        t.join(60)
    assert answers == [{"batchItemFailures": []}] * 2
    assert list(stack.objects(f"synthetic/{job['job_id']}/data/")) == [
        f"synthetic/{job['job_id']}/data/part-00001.parquet"]
    assert len(started) == 2  # both made it; the second write found the first's part (If-None-Match)
    assert worker(records[0]) == worker(records[2]) == {"batchItemFailures": []}
    meta = stack.metadata(job["job_id"])
    assert meta["status"] == "completed" and meta["rows_done"] == 6, meta


def test_a_failing_group_is_reported_back_alone_and_its_retry_finishes_the_job(stack, admin, monkeypatch):
    from shared.errors import StorageError
    from shared.synthetic import jobs

    job, records = start(stack, admin, {"spec": spec()})
    real = jobs.Outputs.write_group

    def flaky(self, job, group, usage):
        if group.index == 1:
            raise StorageError("S3 is having a bad minute")
        return real(self, job, group, usage)

    monkeypatch.setattr(jobs.Outputs, "write_group", flaky)
    answer = worker(*records)  # a batch of three (the template's BatchSize is 1; the handler takes any)
    assert answer == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}
    assert stack.metadata(job["job_id"])["status"] == "running"  # a first try: SQS retries it
    monkeypatch.setattr(jobs.Outputs, "write_group", real)
    retry = {**records[1], "attributes": {**records[1]["attributes"], "ApproximateReceiveCount": "2"}}
    assert worker(retry) == {"batchItemFailures": []}
    meta = stack.metadata(job["job_id"])
    assert meta["status"] == "completed" and meta["rows_done"] == 6, meta


def test_the_last_try_of_a_failing_group_fails_the_job_and_submitting_it_again_resumes_it(stack, admin, monkeypatch):
    from shared.errors import StorageError
    from shared.synthetic import jobs

    job, records = start(stack, admin, {"spec": spec()})
    job_id = job["job_id"]
    assert worker(records[0], records[2]) == {"batchItemFailures": []}
    real = jobs.Outputs.write_group

    def broken(self, job, group, usage):
        raise StorageError("S3 is down")

    monkeypatch.setattr(jobs.Outputs, "write_group", broken)
    tries = int(load()["Resources"]["SyntheticGroupQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
    last = {**records[1], "attributes": {**records[1]["attributes"], "ApproximateReceiveCount": str(tries)}}
    assert worker(last) == {"batchItemFailures": [{"itemIdentifier": last["messageId"]}]}  # on to the DLQ
    meta = stack.metadata(job_id)
    assert meta["status"] == "failed" and meta["stopped_reason"].startswith("row group 1 failed its last try"), meta
    assert "StorageError: S3 is down" in meta["stopped_reason"] and meta["rows_done"] == 4
    assert job_key(job_id)[1].disabled
    assert worker(records[1]) == {"batchItemFailures": []}  # a replay (from the DLQ): the job is over, nothing made
    assert stack.metadata(job_id) == meta

    monkeypatch.setattr(jobs.Outputs, "write_group", real)
    again, queued = start(stack, admin, {"spec": spec()})
    assert again["job_id"] == job_id and again["status"] == "running"
    assert [json.loads(r["body"])["group"] for r in queued] == [1]  # only the group missing
    assert not job_key(job_id)[1].disabled
    assert worker(*queued) == {"batchItemFailures": []}
    meta = stack.metadata(job_id)
    assert meta["status"] == "completed" and meta["rows_done"] == 6 and meta["stopped_reason"] is None, meta


def test_a_job_cancelled_while_its_last_group_is_made_stays_cancelled(stack, admin, monkeypatch):
    from shared.synthetic.client import GatewayClient

    job, records = start(stack, admin, {"spec": spec()})
    assert worker(records[0], records[1]) == {"batchItemFailures": []}
    real, cancelled = GatewayClient.complete, []

    async def cancel_first(self, body, window, **options):
        if not cancelled:  # the operator cancels while the last group is being made
            import asyncio

            path = f"/api/v1/synthetic/jobs/{job['job_id']}/cancel"
            cancelled.append(await asyncio.to_thread(stack.call, "POST", path, admin))
        return await real(self, body, window, **options)

    monkeypatch.setattr(GatewayClient, "complete", cancel_first)
    assert worker(records[2]) == {"batchItemFailures": []}
    assert cancelled[0][0] == 200, cancelled
    meta = stack.metadata(job["job_id"])
    assert meta["status"] == "failed" and meta["stopped_reason"] == "cancelled", meta


def broken_spec() -> dict:
    """A job whose model refuses every call and which gives up at the first failed attempt."""
    job = spec("broken", budget={"max_failed_rows": 0})
    job["model_configs"][0]["model"] = "sim/broken"
    return job


def test_the_worker_that_spends_the_failure_budget_ends_the_job_and_later_messages_make_nothing(stack, admin,
                                                                                                  calls):
    job, records = start(stack, admin, {"spec": broken_spec()})
    assert worker(records[0]) == {"batchItemFailures": []}  # the job's end, not a retry
    meta = stack.metadata(job["job_id"])
    assert meta["status"] == "failed" and "failure budget" in meta["stopped_reason"], meta
    assert job_key(job["job_id"])[1].disabled
    made = len(calls)
    assert worker(records[1], records[2]) == {"batchItemFailures": []}
    assert len(calls) == made and stack.metadata(job["job_id"]) == meta


def test_a_job_another_worker_ended_meanwhile_keeps_that_workers_reason(stack, admin, monkeypatch):
    """Two workers stop the same job: the second's reason (often the first's disabled key) does not replace the
    first's."""
    from shared.lake.store import open_store
    from shared.synthetic import jobs
    from shared.synthetic.client import GatewayClient

    job, records = start(stack, admin, {"spec": broken_spec()})
    real = GatewayClient.complete

    async def first_ends_it(self, body, window, **options):
        if jobs.status(open_store(f"s3://{stack.bucket}"), job["job_id"])["status"] == "running":
            jobs.finish(_job(stack, job["job_id"]), open_store(f"s3://{stack.bucket}"), stopped="the first reason")
        return await real(self, body, window, **options)

    monkeypatch.setattr(GatewayClient, "complete", first_ends_it)
    assert worker(records[1]) == {"batchItemFailures": []}
    assert stack.metadata(job["job_id"])["stopped_reason"] == "the first reason"


def _job(stack: Stack, job_id: str):
    from functions.gateway.state import gateway
    from shared.lake.store import open_store
    from shared.synthetic.fanout import load_job

    return load_job(open_store(f"s3://{stack.bucket}"), job_id, {m.id for m in gateway().catalog})


def test_a_group_not_made_in_the_time_left_is_given_back_unwritten(stack, admin):
    from functions.synthetic.handler import DEADLINE_MARGIN_SECONDS

    slow = spec("slow")
    slow["model_configs"][0]["model"] = "sim/slow-1s"
    job, records = start(stack, admin, {"spec": slow})
    answer = worker(records[0], seconds=DEADLINE_MARGIN_SECONDS + 0.3)  # 0.3 s for calls of 1 s each
    assert answer == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    assert stack.objects(f"synthetic/{job['job_id']}/data/") == {}
    assert stack.metadata(job["job_id"])["status"] == "running"


def test_a_message_for_a_job_that_is_not_there_is_reported_back(stack):
    record = {**EVENT, "body": json.dumps({"job_id": "nope-0123456789ab", "group": 0})}
    assert worker(record) == {"batchItemFailures": [{"itemIdentifier": EVENT["messageId"]}]}
