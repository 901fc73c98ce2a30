"""A load tool: many simulated agents in one process, each on its own stream.

`python -m bench.fleet --coordinator ADDR --agents 1250 --prefix f0-` opens
one MeshService.Connect stream per agent (spread over several channels, so
several HTTP/2 connections), heartbeats each at the given period with a
random phase, answers every assignment at once, and records how long each
assignment took from the client's submit (the payload carries the submit
time; all processes share this machine's clock). On SIGTERM it writes a JSON
report to --out and exits.

Each agent keeps its own phase, as separate sidecars do. Sleeping a period
after each write completed does not: agents whose writes complete in the
same event-loop pass stay in step from then on, ever more of them, and
bunched heartbeats cost the coordinator less than real ones.

One process stands in for a thousand sidecars, so its own delays must not
pass for the coordinator's. A heartbeat write costs it about 90 µs; after
the process has been off the CPU for a while, a thousand per-agent timers
would all be due at once and the assignment that arrived meanwhile would be
read only after the whole backlog (10-45 ms passes). So one `Heartbeats`
schedule sends them, a few per event-loop pass, and reads get in between.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import grpc

from swarmmesh.heap import HeapPolicy
from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc, types_pb2

SUBMIT_TIME = struct.Struct("<d")
SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED
HEARTBEAT = mesh_pb2.SidecarFrame(heartbeat=mesh_pb2.Heartbeat(free_slots=4, memory_rss_bytes=50 << 20))


class Heartbeats:
    """Every agent's heartbeat in this process on one schedule, at most
    `per_pass` writes before the event loop reads its sockets again."""

    NAP_S = 0.01  # the longest sleep, so agents added meanwhile start on time

    def __init__(self, period_s: float, per_pass: int = 8) -> None:
        self._period = period_s
        self._per_pass = per_pass
        self._due: list[tuple[float, int, FakeAgent, grpc.aio.StreamStreamCall]] = []
        self._seq = 0

    def add(self, agent: FakeAgent, call: grpc.aio.StreamStreamCall) -> None:
        """Heartbeat `agent` on `call` from a random phase within the period on, until the call ends."""
        self._seq += 1
        due = asyncio.get_running_loop().time() + random.uniform(0, self._period)
        heapq.heappush(self._due, (due, self._seq, agent, call))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self._period
        while True:
            now = loop.time()
            sent = 0
            while self._due and self._due[0][0] <= now and sent < self._per_pass:
                due, seq, agent, call = heapq.heappop(self._due)
                if agent.beat(call):  # a stream that has ended drops out of the schedule
                    # Periods missed while the process was off the CPU are skipped, as a
                    # sidecar's own loop would, and the agent keeps its phase.
                    missed = int((now - due) // period)
                    heapq.heappush(self._due, (due + (missed + 1) * period, seq, agent, call))
                sent += 1
            if sent == self._per_pass:
                await asyncio.sleep(0)  # more may be due: the loop reads its sockets first
            else:
                await asyncio.sleep(min(self._due[0][0] - now if self._due else period, self.NAP_S))


class FakeAgent:
    def __init__(self, agent_id: str, stub: mesh_pb2_grpc.MeshServiceStub, heartbeats: Heartbeats,
                 latencies: list[float], registered: asyncio.Event | None) -> None:
        self.agent_id = agent_id
        self._stub = stub
        self._heartbeats = heartbeats
        self._latencies = latencies
        self._registered = registered
        self._call: grpc.aio.StreamStreamCall | None = None
        self._writing = asyncio.Lock()  # grpc.aio takes one write at a time per call
        self._beating: asyncio.Future[None] | None = None
        self.heartbeats = 0
        self.failures = 0

    async def run(self) -> None:
        """Keep one stream up, reconnecting after a failure, as a real sidecar does."""
        while True:
            try:
                await self._stream()
                return
            except grpc.aio.AioRpcError as e:
                self.failures += 1
                if self.failures <= 3:
                    print(f"{self.agent_id}: stream failed ({e.code().name}: {e.details()}); retrying",
                          file=sys.stderr, flush=True)
                await asyncio.sleep(random.uniform(0.05, 0.5))

    def beat(self, call: grpc.aio.StreamStreamCall) -> bool:
        """Send one heartbeat on `call` unless it is no longer this agent's stream (then False)."""
        if call is not self._call:
            return False
        if self._beating is None or self._beating.done():  # else the last one is still being written
            self._beating = asyncio.ensure_future(self._send(call, HEARTBEAT, True))
        return True

    async def _send(self, call: grpc.aio.StreamStreamCall, frame: mesh_pb2.SidecarFrame, beat: bool) -> None:
        async with self._writing:
            if call.done():
                return
            try:
                await call.write(frame)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                return  # the stream ended under it; run() reconnects
        if beat:
            self.heartbeats += 1

    async def _stream(self) -> None:
        call = self._stub.Connect()
        await call.write(mesh_pb2.SidecarFrame(register=mesh_pb2.Register(
            agent_id=self.agent_id, capacity=4, credits=4, version="fleet")))
        self._call = call
        self._heartbeats.add(self, call)
        try:
            while True:
                frame = await call.read()
                if frame is grpc.aio.EOF:
                    return
                if frame.HasField("registered") and self._registered is not None:
                    self._registered.set()
                if frame.assignments:
                    now = time.time()
                    results = []
                    for a in frame.assignments:
                        if len(a.payload) == SUBMIT_TIME.size:
                            self._latencies.append(now - SUBMIT_TIME.unpack(a.payload)[0])
                        results.append(mesh_pb2.TaskResult(task_id=a.task_id, attempt=a.attempt, state=SUCCEEDED))
                    await self._send(call, mesh_pb2.SidecarFrame(results=results, credits=len(results)), False)
        finally:
            self._call = None
            call.cancel()


async def main_async(ns: argparse.Namespace) -> None:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.keepalive_time_ms", 60_000)]
    channels = [grpc.aio.insecure_channel(ns.coordinator, options=[*options, ("swarmmesh.fleet", i)])
                for i in range(ns.channels)]
    stubs = [mesh_pb2_grpc.MeshServiceStub(c) for c in channels]
    latencies: list[float] = []
    ready = [asyncio.Event() for _ in range(ns.agents)]
    heartbeats = Heartbeats(ns.heartbeat_s)
    schedule = asyncio.create_task(heartbeats.run())
    agents = [FakeAgent(f"{ns.prefix}{i}", stubs[i % len(stubs)], heartbeats, latencies, ready[i])
              for i in range(ns.agents)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    runners: list[asyncio.Task[None]] = []
    for i, agent in enumerate(agents):
        runners.append(asyncio.create_task(agent.run()))
        if i % 100 == 99:
            await asyncio.sleep(0.01)  # a gentle ramp rather than thousands of handshakes at once
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), timeout=120)
    if ns.ready_file:
        Path(ns.ready_file).write_text(json.dumps({"agents": ns.agents}))
    # The same collector schedule as a real sidecar's: this process stands in
    # for many of them, and its pauses would count against the coordinator.
    with HeapPolicy():
        await stop.wait()
    for t in [schedule, *runners]:
        t.cancel()
    await asyncio.gather(schedule, *runners, return_exceptions=True)
    for c in channels:
        await c.close()
    Path(ns.out).write_text(json.dumps({"latencies_s": latencies,
                                        "heartbeats": sum(a.heartbeats for a in agents),
                                        "stream_failures": sum(a.failures for a in agents)}))


def spread(agents: int, processes: int) -> list[int]:
    """How many of `agents` each of `processes` load tools runs: as even as it goes."""
    return [agents // processes + (1 if i < agents % processes else 0) for i in range(processes)]


def spawn_fleets(address: str, agents: int, processes: int, workdir: Path, prefix: str, *,
                 heartbeat_s: float = 1.0) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """`agents` simulated agents spread over `processes` load tools named prefix-0, prefix-1, ...;
    returns their names and processes."""
    names = [f"{prefix}-{i}" for i in range(processes)]
    return names, [spawn_fleet(address, n, workdir, name, heartbeat_s=heartbeat_s)
                   for n, name in zip(spread(agents, processes), names, strict=True)]


async def wait_ready(workdir: Path, names: list[str], procs: list[subprocess.Popen[bytes]],
                     timeout: float) -> None:
    """Wait until every load tool in `names` (spawned as `procs`) has all its agents registered."""
    paths = [workdir / f"{name}.ready" for name in names]
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a fleet process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError("fleet processes did not connect in time")
        await asyncio.sleep(0.2)


def spawn_fleet(address: str, agents: int, workdir: Path, name: str, *,
                heartbeat_s: float = 1.0) -> subprocess.Popen[bytes]:
    """Start a load tool process named `name`: its agent ids start with
    "name-", it writes `name.ready` once all are registered, `name.json` on
    SIGTERM and its output to `name.log`, all in workdir."""
    with (workdir / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", "--coordinator", address, "--agents", str(agents),
             "--prefix", f"{name}-", "--heartbeat-s", str(heartbeat_s),
             "--ready-file", str(workdir / f"{name}.ready"), "--out", str(workdir / f"{name}.json")],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coordinator", required=True)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--prefix", default="fleet-")
    p.add_argument("--channels", type=int, default=16, help="HTTP/2 connections to spread streams over")
    p.add_argument("--heartbeat-s", type=float, default=1.0)
    p.add_argument("--ready-file", default="")
    p.add_argument("--out", required=True)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
