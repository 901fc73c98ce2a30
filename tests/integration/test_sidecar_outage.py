"""A sidecar through a coordinator outage, with real processes: kill -9 of the coordinator
while tasks run, a restart on the same address and journal, and every task completed
once, with the result the sidecar computed, by the one execution it had."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from swarmmesh.v1 import types_pb2
from tests.integration.conftest import Mesh
from tests.support import assert_eventually, free_port

pytestmark = pytest.mark.integration

SHORT_MS = 300  # finish while the coordinator is down
LONG_MS = 4000  # still running when it is back


def done_ids(log: Path) -> set[str]:
    return {line.split()[0] for line in log.read_text().splitlines()} if log.exists() else set()


def test_work_finished_while_the_coordinator_was_down_is_recorded_not_run_again(mesh: Mesh) -> None:
    address = f"127.0.0.1:{free_port()}"  # the restarted coordinator comes back where the first was
    mesh.start_coordinator(listen=address)
    done_log = mesh.tmp / "done.log"
    sidecar = mesh.start_sidecar("a", "--capacity", "4", "--reconnect-max", "0.3", handler="sleepy_noted",
                                 env={"SWARMMESH_TEST_DONE_LOG": str(done_log)})
    short = mesh.submit_json("nap", [{"ms": SHORT_MS}] * 2)
    long = mesh.submit_json("nap", [{"ms": LONG_MS}] * 2)
    assert_eventually(lambda: len(mesh.executions()) == 4, what="all four running")

    assert mesh.coordinator is not None
    mesh.coordinator.kill9()
    assert_eventually(lambda: done_ids(done_log) >= set(short), what="the short ones done with no coordinator")
    assert not done_ids(done_log) & set(long), "the long ones must still be running at the restart"
    mesh.start_coordinator(listen=address)

    tasks, _ = mesh.wait_all(short + long, timeout=60)
    for task_id in short + long:
        t = tasks[task_id]
        assert t.state == types_pb2.TASK_STATE_SUCCEEDED, (task_id, t)
        assert t.attempt == 1, (task_id, t.attempt)
        assert json.loads(t.outcome.output) == {"agent": "a", "attempt": 1}
    runs = Counter(task_id for task_id, _, _ in mesh.executions())
    assert runs == Counter({task_id: 1 for task_id in short + long}), runs

    log = sidecar.output()
    assert "registered with" in log
    dropped = [line for line in log.splitlines() if "dropped" in line and "result cache cleared" not in line]
    assert dropped == [], dropped
