"""Stopping the local stack (`make run`) loses no usage record, whatever the signal and whoever gets it.

The order that guarantees it: uvicorn stops accepting and finishes the calls in flight, the meter writes what
is pending into moto, and only then is moto stopped (it saves on the way out). Ctrl-C and `kill` reach the whole
process group, so the moto child ignores those signals and is stopped by the gateway (which closes its stdin).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, LocalProcess, _wait_healthy

pytestmark = pytest.mark.e2e
CALLS = 40


class GroupLeader(LocalProcess):
    """`python -m infra.local` as the leader of its own process group, as a terminal runs `make run`."""

    def start(self) -> "GroupLeader":
        self.proc = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        _wait_healthy(self.url, self.proc)
        return self

    def children(self) -> list[int]:
        assert self.proc is not None
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in text.split()]

    def wait(self, timeout: float = 60) -> int:
        """Wait for the gateway's own exit (the output pipe stays open while any child still holds it)."""
        assert self.proc is not None
        self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def read_output(self) -> str:
        assert self.proc is not None
        self.output, _ = self.proc.communicate(timeout=30)
        return self.output


def _call(stack: LocalProcess) -> str:
    body = json.dumps({"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(stack.url + "/api/v1/chat/completions", data=body, method="POST", headers={
        "Authorization": f"Bearer {stack.key('dev-key')}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())["id"]


def _recorded(stack: LocalProcess, gen_id: str) -> bool:
    req = urllib.request.Request(f"{stack.url}/api/v1/generation?id={gen_id}",
                                 headers={"Authorization": f"Bearer {stack.key('dev-key')}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        assert e.code == 404, e.read()
        return False


def _journal(state_dir: Path) -> list[str]:
    path = state_dir / "usage.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["item"]["id"]["S"] for line in lines if json.loads(line)["table"] == "UsageTable"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("to, sig", [("group", signal.SIGTERM), ("group", signal.SIGINT), ("process", signal.SIGTERM),
                                     ("process", signal.SIGINT), ("group-twice", signal.SIGINT)],
                         ids=["group-SIGTERM", "group-SIGINT", "process-SIGTERM", "process-SIGINT", "Ctrl-C-twice"])
def test_a_signal_right_after_the_calls_loses_no_record(tmp_path, to, sig):
    # A long flush interval keeps every record pending until shutdown: what a busy gateway has in its meter
    # when the signal comes. Only the final flush, into a moto that is still up, can save them.
    stack = GroupLeader(tmp_path, {"SWITCHYARD_METER_FLUSH_SECONDS": "60"}).start()
    try:
        ids = [_call(stack) for _ in range(CALLS)]
        children = stack.children()  # moto and the usage exporter
        assert len(children) == 2
        if to.startswith("group"):
            os.killpg(stack.proc.pid, sig)
            if to == "group-twice":  # a second Ctrl-C makes uvicorn skip its lifespan shutdown (the meter flush)
                time.sleep(0.05)
                os.killpg(stack.proc.pid, sig)
        else:
            stack.proc.send_signal(sig)
        stack.wait()
    finally:
        if stack.proc.poll() is None:
            stack.proc.kill()
            stack.proc.wait()
    assert not any(_alive(pid) for pid in children), "a child outlived the gateway (a restart would race its save)"
    output = stack.read_output()
    if to != "group-twice":  # a forced exit cancels uvicorn's lifespan task, which uvicorn logs with a traceback
        assert "Traceback" not in output, output
    journal = _journal(tmp_path)
    assert sorted(journal) == sorted(ids), f"{len(set(journal) & set(ids))}/{CALLS} recorded"
    again = GroupLeader(tmp_path, {}).start()
    try:
        assert all(_recorded(again, gen_id) for gen_id in ids)
    finally:
        again.stop()


def test_the_moto_child_saves_and_exits_when_the_gateway_dies(tmp_path):
    stack = GroupLeader(tmp_path, {}).start()
    try:
        ids = [_call(stack) for _ in range(5)]
        deadline = time.monotonic() + 10
        while json.loads(urllib.request.urlopen(stack.url + "/health").read())["metering_backlog"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _kill_and_outlive_nothing(stack, children=2)  # no flush, no clean-up: only the children's own watch
    finally:
        if stack.proc.poll() is None:
            stack.proc.kill()
    assert sorted(_journal(tmp_path)) == sorted(ids)


def test_state_files_are_private(tmp_path):
    state = tmp_path / "state"
    stack = GroupLeader(state, {}).start()
    try:
        _call(stack)
    finally:
        stack.stop()
    assert state.stat().st_mode & 0o777 == 0o700
    for name in ("tables.json", "usage.jsonl", "pepper", "dev-key", "admin-key"):
        assert (state / name).stat().st_mode & 0o777 == 0o600, name


def test_the_flows_child_exits_with_the_stack_even_when_the_gateway_is_killed(tmp_path):
    stack = GroupLeader(tmp_path, {"SWITCHYARD_FLOWS": "1"}).start()
    try:
        _kill_and_outlive_nothing(stack, children=3)  # moto, the usage exporter and the flows
    finally:
        if stack.proc.poll() is None:
            stack.proc.kill()


def _kill_and_outlive_nothing(stack: GroupLeader, *, children: int) -> None:
    """SIGKILL the gateway; every child must notice on its own and exit within 30 s."""
    pids = stack.children()
    assert len(pids) == children, pids
    stack.proc.kill()
    stack.wait()
    stack.read_output()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a child outlived the killed gateway"
        time.sleep(0.1)
