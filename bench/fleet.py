"""A load tool: many simulated agents in one process, each on its own stream.

`python -m bench.fleet --coordinator ADDR --agents 1250 --prefix f0-` opens
one MeshService.Connect stream per agent (spread over several channels, so
several HTTP/2 connections), heartbeats each at the given period with a
random phase, answers every assignment at once, and records how long each
assignment took from the client's submit (the payload carries the submit
time; all processes share this machine's clock). On SIGTERM it writes a JSON
report to --out and exits.
"""

from __future__ import annotations

import argparse
import asyncio
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


class FakeAgent:
    def __init__(self, agent_id: str, stub: mesh_pb2_grpc.MeshServiceStub, period_s: float,
                 latencies: list[float], registered: asyncio.Event | None) -> None:
        self.agent_id = agent_id
        self._stub = stub
        self._period = period_s
        self._latencies = latencies
        self._registered = registered
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

    async def _stream(self) -> None:
        call = self._stub.Connect()
        await call.write(mesh_pb2.SidecarFrame(register=mesh_pb2.Register(
            agent_id=self.agent_id, capacity=4, credits=4, version="fleet")))
        beat = asyncio.create_task(self._beat(call))
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
                    await call.write(mesh_pb2.SidecarFrame(results=results, credits=len(results)))
        finally:
            beat.cancel()
            call.cancel()

    async def _beat(self, call: grpc.aio.StreamStreamCall) -> None:
        await asyncio.sleep(random.uniform(0, self._period))
        hb = mesh_pb2.SidecarFrame(heartbeat=mesh_pb2.Heartbeat(free_slots=4, memory_rss_bytes=50 << 20))
        while True:
            await call.write(hb)
            self.heartbeats += 1
            await asyncio.sleep(self._period)


async def main_async(ns: argparse.Namespace) -> None:
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.keepalive_time_ms", 60_000)]
    channels = [grpc.aio.insecure_channel(ns.coordinator, options=[*options, ("swarmmesh.fleet", i)])
                for i in range(ns.channels)]
    stubs = [mesh_pb2_grpc.MeshServiceStub(c) for c in channels]
    latencies: list[float] = []
    ready = [asyncio.Event() for _ in range(ns.agents)]
    agents = [FakeAgent(f"{ns.prefix}{i}", stubs[i % len(stubs)], ns.heartbeat_s, latencies, ready[i])
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
    for t in runners:
        t.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    for c in channels:
        await c.close()
    Path(ns.out).write_text(json.dumps({"latencies_s": latencies,
                                        "heartbeats": sum(a.heartbeats for a in agents),
                                        "stream_failures": sum(a.failures for a in agents)}))


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
