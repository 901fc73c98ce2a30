"""Load for the scenarios: a thread that submits tasks in batches while a fault happens,
and keeps submitting through it.

A batch the coordinator does not answer (it died, or is shutting down) is sent
again with the same idempotency keys until it is answered: a batch that was
committed before its answer was lost comes back deduplicated, under the same
task ids, and the ledger would see any key acknowledged under two ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

import grpc

from swarmmesh.v1 import tasks_pb2_grpc, types_pb2
from tests.faults.ledger import RETRYABLE, Ledger, follow, submit


class Submitter:
    """Submits spec_of(0), spec_of(1), ... spec_of(total - 1) in batches of `batch`,
    `pace_s` apart (0 = as fast as the coordinator answers), until done or stopped."""

    def __init__(self, stub_of: Callable[[], tasks_pb2_grpc.TaskServiceStub], ledger: Ledger,
                 spec_of: Callable[[int], types_pb2.TaskSpec], total: int, *, batch: int = 10,
                 pace_s: float = 0.0, outage_s: float = 90.0) -> None:
        self._stub_of = stub_of
        self._ledger = ledger
        self._spec_of = spec_of
        self._total = total
        self._batch = batch
        self._pace_s = pace_s
        self._outage_s = outage_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-submitter", daemon=True)
        self.sent = 0  # tasks whose batch was answered
        self.resent = 0  # batches sent again after no answer
        self.error: BaseException | None = None

    def start(self) -> Submitter:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while self.sent < self._total and not self._stop.is_set():
                specs = [self._spec_of(i) for i in range(self.sent, min(self.sent + self._batch, self._total))]
                self._send(specs)
                self.sent += len(specs)
                if self._pace_s:
                    self._stop.wait(self._pace_s)
        except BaseException as e:  # handed to the test by stop()
            self.error = e

    def _send(self, specs: list[types_pb2.TaskSpec]) -> None:
        give_up = time.monotonic() + self._outage_s
        while True:
            try:
                submit(self._stub_of(), self._ledger, specs)
                return
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE or time.monotonic() > give_up:
                    raise
            self.resent += 1
            if self._stop.wait(0.05):  # a coordinator on its way back up, unless the test is done
                return

    def wait(self, timeout: float = 120.0) -> None:
        """Until every task was submitted; raises what stopped the thread."""
        self._thread.join(timeout)
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise self.error
        assert not self._thread.is_alive(), "the submitter did not stop"

    def __enter__(self) -> Submitter:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(30)


class Watcher:
    """Follows the ledger's outstanding tasks while a scenario runs, so that completions the
    coordinator reports before a fault are in the ledger to compare with what it says after."""

    def __init__(self, stub_of: Callable[[], tasks_pb2_grpc.TaskServiceStub], ledger: Ledger) -> None:
        self._stub_of = stub_of
        self._ledger = ledger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            ids = self._ledger.outstanding()
            if ids:
                try:
                    # Short watches: the tasks acknowledged meanwhile join the next one.
                    follow(self._stub_of(), self._ledger, ids, timeout=1.0)
                except grpc.RpcError:
                    pass  # a coordinator away, or a task it does not know: settle() judges that
            self._stop.wait(0.05)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(30)
