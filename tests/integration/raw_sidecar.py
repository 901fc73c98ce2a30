"""A sidecar written straight from the .proto, for tests that drive the stream by hand."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from types import TracebackType

import grpc

from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc
from tests.support import CHANNEL_OPTIONS


class RawSidecar:
    """A sidecar written straight from the .proto: one Connect stream, driven by hand."""

    def __init__(self, address: str, register: mesh_pb2.Register | None) -> None:
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._out: queue.Queue[mesh_pb2.SidecarFrame | None] = queue.Queue()
        if register is not None:
            self._out.put(mesh_pb2.SidecarFrame(register=register))
        self.frames = mesh_pb2_grpc.MeshServiceStub(self._channel).Connect(self._requests(), timeout=60)
        self._registered: list[mesh_pb2.Registered] = []
        self._assignments: list[mesh_pb2.Assignment] = []
        self._acks: list[mesh_pb2.ResultAck] = []
        self.recorded = 0
        self.assigned = 0  # assignments received in all
        self.drained_after: int | None = None  # how many had arrived when a drain frame came

    def _requests(self) -> Iterator[mesh_pb2.SidecarFrame]:
        while (frame := self._out.get()) is not None:
            yield frame

    def send(self, frame: mesh_pb2.SidecarFrame) -> None:
        self._out.put(frame)

    def _pump(self, have: Callable[[], bool], what: str) -> None:
        # Frames coalesce items (registered + assignments + acks in one), so
        # items are collected by kind rather than frame by frame.
        while not have():
            frame = next(self.frames, None)
            if frame is None:
                raise AssertionError(f"stream ended before {what}")
            if frame.HasField("registered"):
                self._registered.append(frame.registered)
            self._assignments.extend(frame.assignments)
            self.assigned += len(frame.assignments)
            self._acks.extend(frame.acks)
            self.recorded += frame.recorded
            if frame.drain and self.drained_after is None:
                self.drained_after = self.assigned

    def registered(self) -> mesh_pb2.Registered:
        self._pump(lambda: bool(self._registered), "registered")
        return self._registered.pop(0)

    def assignments(self, n: int = 1) -> list[mesh_pb2.Assignment]:
        self._pump(lambda: len(self._assignments) >= n, f"{n} assignments")
        out, self._assignments = self._assignments[:n], self._assignments[n:]
        return out

    def wait_recorded(self, n: int) -> None:
        # The count rides on the coordinator's next frame, which a heartbeat asks for.
        self.send(mesh_pb2.SidecarFrame(heartbeat=mesh_pb2.Heartbeat()))
        self._pump(lambda: self.recorded >= n, f"{n} recorded results")

    def drain_frame(self) -> int:
        """Wait for a frame with drain set; how many assignments came before it."""
        self._pump(lambda: self.drained_after is not None, "a drain frame")
        assert self.drained_after is not None
        return self.drained_after

    def acks(self, n: int = 1) -> list[mesh_pb2.ResultAck]:
        self._pump(lambda: len(self._acks) >= n, f"{n} acks")
        out, self._acks = self._acks[:n], self._acks[n:]
        return out

    def close(self) -> None:
        self._out.put(None)
        self.frames.cancel()
        self._channel.close()

    def __enter__(self) -> RawSidecar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
