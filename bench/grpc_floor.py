"""What gRPC in Python costs by itself on this machine, measured in the same run:
the floor under the mesh's own figures.

- unary round trip between two processes through grpc.aio (an empty health check);
- server CPU per inbound stream message, many streams at a steady rate (a
  servicer that only reads), on the same event loop and gRPC engine as the mesh.

The streams come from the same load tool as W3's (`bench.fleet`), and the
server answers each registration, so the tool's agents reach the state they
reach against the coordinator (registered, its collector schedule on) before
the window: `stream_floor` is W3's heartbeat figure with nothing but gRPC
behind it. W3 runs it beside itself.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.fleet import spawn_fleets, wait_ready
from bench.stats import latency_summary_ms
from swarmmesh import eventloop
from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc


class _ReadOnly(mesh_pb2_grpc.MeshServiceServicer):
    """Answers a stream's registration, then only reads."""

    async def Connect(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        if first.HasField("register"):
            await context.write(mesh_pb2.CoordinatorFrame(registered=mesh_pb2.Registered(
                agent_id=first.register.agent_id, session=1, heartbeat_interval_ms=1000,
                lease_timeout_ms=10_000)))
        while await context.read() is not grpc.aio.EOF:
            pass


async def _serve(port_file: Path) -> None:
    server = grpc.aio.server(options=[("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                                      ("grpc.http2.max_ping_strikes", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    mesh_pb2_grpc.add_MeshServiceServicer_to_server(_ReadOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


def start_listener(module: str, port_file: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start `python -m module port_file *args`, a server that writes its port to `port_file`
    once it listens; return it and the port."""
    proc = subprocess.Popen([sys.executable, "-m", module, str(port_file), *args])
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{module} did not start")
        time.sleep(0.05)
    time.sleep(0.05)  # the port is written once the server listens; let the write finish
    return proc, int(port_file.read_text())


def stop_all(procs: Iterable[subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM every process, then wait up to `grace_s` seconds for each; kill what is left."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def stream_floor(workdir: Path, agents: int, *, processes: int = 4, heartbeat_s: float = 1.0,
                       window_s: float = 5.0) -> dict[str, Any]:
    """The read-only server's CPU while `agents` simulated agents (in `processes` load tools)
    heartbeat every `heartbeat_s` seconds, each on its own stream, once all have registered."""
    workdir.mkdir(parents=True, exist_ok=True)
    proc, port = start_listener("bench.grpc_floor", workdir / "floor.port")
    try:
        names, fleet = spawn_fleets(f"127.0.0.1:{port}", agents, processes, workdir, "floor",
                                    heartbeat_s=heartbeat_s)
        try:
            await wait_ready(workdir, names, fleet, 180)
            await asyncio.sleep(heartbeat_s * 2)  # every agent into its heartbeat rhythm, as in W3
            server = psutil.Process(proc.pid)
            c0 = sum(server.cpu_times()[:2])
            await asyncio.sleep(window_s)
            cpu = (sum(server.cpu_times()[:2]) - c0) / window_s
        finally:
            stop_all(fleet, 60)
    finally:
        stop_all([proc], 10)
    per_s = agents / heartbeat_s
    return {"stream_messages_per_s": per_s, "server_cpu_percent": cpu * 100,
            "server_cpu_us_per_message": cpu / per_s * 1e6}


async def run(workdir: Path, *, rounds: int = 2000, streams: int = 0, window_s: float = 5.0) -> dict[str, Any]:
    proc, port = start_listener("bench.grpc_floor", workdir / "floor.port")
    out: dict[str, Any] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            req = health_pb2.HealthCheckRequest()
            for _ in range(200):
                await stub.Check(req)
            samples = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await stub.Check(req)
                samples.append(time.perf_counter() - t0)
            out["unary_rtt"] = latency_summary_ms(samples)
    finally:
        stop_all([proc], 10)
    if streams:
        out.update(await stream_floor(workdir / "streams", streams, window_s=window_s))
    return out


if __name__ == "__main__":
    eventloop.run(_serve(Path(sys.argv[1])))  # the mesh's own loop, so the floor is comparable
