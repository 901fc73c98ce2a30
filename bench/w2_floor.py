"""W2's floor: the same open-loop load over the same path, with nothing but gRPC on it.

The path of a W2 task is client -> coordinator -> agent -> coordinator ->
client, four stream messages between processes. Here a relay process stands
for the coordinator and four echo processes for the sidecars: the client
writes an 8-byte arrival number on its stream to the relay, the relay writes
it on the stream of the next echo process (round robin), which writes it
back, and the relay writes it back to the client. Messages stay bytes (no
protobuf), nothing is queued or batched, and a message is read and written
by the same task where only one write may be in flight on a stream.

Arrivals, pacing and the latency's start (the intended time) are W2's, on
the same event loop and gRPC engine, so W2 minus this is what the mesh adds
on this machine in the same run: its protocol (the submission's ack, the
task's records and conversions) and its Python.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from bench.grpc_floor import start_listener, stop_all
from bench.pacer import mechanism, paced
from bench.procstat import CpuMeter, self_pid
from bench.stats import latency_summary_ms, poisson_offsets
from swarmmesh import eventloop

SERVICE = "bench.Relay"
METHOD = f"/{SERVICE}/Stream"
_ID = struct.Struct("<Q")
# About a small assignment's size on the wire.
_PAD = bytes(56)


def _stream_server(handler: Any) -> grpc.aio.Server:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Stream": grpc.stream_stream_rpc_method_handler(handler)}),))  # bytes in, bytes out
    return server


async def _echo(request_iterator: object, context: grpc.aio.ServicerContext) -> None:
    while (msg := await context.read()) is not grpc.aio.EOF:
        await context.write(msg)


class _Relay:
    """Forwards a client's messages round robin over one stream per echo process, and back."""

    def __init__(self, calls: list[grpc.aio.StreamStreamCall]) -> None:
        self.calls = calls
        self._client: grpc.aio.ServicerContext | None = None
        self._to_client = asyncio.Lock()

    async def back(self, call: grpc.aio.StreamStreamCall) -> None:
        async for msg in call:
            if self._client is not None:
                async with self._to_client:
                    await self._client.write(msg)

    async def serve(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        self._client = context
        i = 0
        while (msg := await context.read()) is not grpc.aio.EOF:
            await self.calls[i].write(msg)
            i = (i + 1) % len(self.calls)


async def _serve(port_file: Path, role: str, echo_ports: list[str]) -> None:
    backs: list[asyncio.Task[None]] = []
    if role == "echo":
        server = _stream_server(_echo)
    else:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in echo_ports]
        relay = _Relay([ch.stream_stream(METHOD)() for ch in channels])
        backs = [asyncio.create_task(relay.back(c)) for c in relay.calls]
        server = _stream_server(relay.serve)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port_file.write_text(str(port))
    try:
        await server.wait_for_termination()
    finally:
        for t in backs:
            t.cancel()


async def _open_loop(call: grpc.aio.StreamStreamCall, rate: float, duration_s: float, seed: int
                     ) -> dict[str, Any]:
    schedule = poisson_offsets(rate, duration_s, seed)
    intended: list[float] = [0.0] * len(schedule)
    finished: list[float] = [0.0] * len(schedule)
    got = 0

    async def collect() -> None:
        nonlocal got
        while got < len(schedule):
            msg = await call.read()
            if msg is grpc.aio.EOF:
                raise RuntimeError("the relay ended the stream")
            finished[_ID.unpack_from(msg)[0]] = time.perf_counter()
            got += 1

    collector = asyncio.create_task(collect())
    sending = asyncio.Lock()
    numbers = iter(range(len(schedule)))

    async def send(at: float) -> None:
        n = next(numbers)
        intended[n] = at
        async with sending:  # one write in flight per stream
            await call.write(_ID.pack(n) + _PAD)

    try:
        sent_late = await paced(schedule, send)
        await asyncio.wait_for(asyncio.shield(collector), timeout=60)
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "tasks": len(schedule),
        "latency": latency_summary_ms([f - a for f, a in zip(finished, intended, strict=True)]),
        "send_lateness": latency_summary_ms(sent_late),
        "pacer": mechanism(),
    }


async def run(workdir: Path, *, rate: float = 1000.0, duration_s: float = 10.0, echoes: int = 4,
              seed: int = 1) -> dict[str, Any]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        ports = []
        for i in range(echoes):
            procs[f"echo-{i}"], port = start_listener("bench.w2_floor", workdir / f"echo-{i}.port", "echo")
            ports.append(str(port))
        procs["relay"], relay_port = start_listener("bench.w2_floor", workdir / "relay.port", "relay", *ports)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{relay_port}") as channel:
            call = channel.stream_stream(METHOD)()
            await _open_loop(call, rate, min(1.0, duration_s), seed + 1)  # warm-up
            meter = CpuMeter({**{k: p.pid for k, p in procs.items()}, "client": self_pid()})
            meter.start()
            result = await _open_loop(call, rate, duration_s, seed)
            cpu = meter.stop()
            await call.done_writing()
    finally:
        stop_all(procs.values(), 10)
    result["echoes"] = echoes
    result["cpu_percent_by_process"] = {k: v / cpu.wall_s * 100 for k, v in cpu.seconds.items()}
    return result


if __name__ == "__main__":
    eventloop.run(_serve(Path(sys.argv[1]), sys.argv[2], sys.argv[3:]))  # the mesh's loop and engine
