"""Agent handlers used by the integration tests (imported by real sidecar processes)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any


def _log_execution(ctx: Any, variable: str = "SWARMMESH_TEST_EXEC_LOG") -> None:
    # One O_APPEND write per execution: lets a test count how often each task ran.
    path = os.environ.get(variable)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.task_id} {ctx.attempt} {ctx.agent_id}\n".encode())
        finally:
            os.close(fd)


def echo(ctx: Any) -> dict[str, Any]:
    _log_execution(ctx)
    return {"agent": ctx.agent_id, "attempt": ctx.attempt, "kind": ctx.kind, "payload": ctx.payload.decode()}


async def sleepy(ctx: Any) -> dict[str, Any]:
    """Sleeps for payload {"ms": N}; async, so it holds a slot without a thread."""
    _log_execution(ctx)
    ms = json.loads(ctx.payload or b"{}").get("ms", 100)
    await asyncio.sleep(ms / 1000)
    return {"agent": ctx.agent_id, "attempt": ctx.attempt}


async def sleepy_noted(ctx: Any) -> dict[str, Any]:
    """sleepy, and a line in SWARMMESH_TEST_DONE_LOG once it is done: a test sees a task
    finish while no coordinator is there to be told."""
    result = await sleepy(ctx)
    _log_execution(ctx, "SWARMMESH_TEST_DONE_LOG")
    return result


async def paced(ctx: Any) -> dict[str, Any]:
    """Sleeps for payload {"ms": {agent_id: N}}: one payload, agents of different speeds."""
    _log_execution(ctx)
    ms = json.loads(ctx.payload or b"{}").get("ms", {}).get(ctx.agent_id, 10)
    await asyncio.sleep(ms / 1000)
    return {"agent": ctx.agent_id}


def boom(ctx: Any) -> None:
    raise ValueError(f"cannot handle {ctx.payload.decode()!r}")


class Transient(Exception):
    """A failure a retry policy can name: the sidecar reports its error_type."""

    error_type = "transient"


def fails_first(ctx: Any) -> dict[str, Any]:
    """Fails with a transient error on the task's first payload {"fail": N} runs (counted in
    the execution log, so across sidecars and requeues), then succeeds."""
    _log_execution(ctx)
    fail = json.loads(ctx.payload or b"{}").get("fail", 0)
    path = os.environ["SWARMMESH_TEST_EXEC_LOG"]
    with open(path) as f:
        runs = sum(1 for line in f if line.split(" ", 1)[0] == ctx.task_id)
    if runs <= fail:
        raise Transient(f"run {runs} of {fail} that fail")
    return {"agent": ctx.agent_id, "attempt": ctx.attempt, "runs": runs}


# Memory a planted leak keeps for the life of the sidecar process.
_LEAKED: list[bytearray] = []


async def leaky(ctx: Any) -> dict[str, Any]:
    """Keeps payload {"kib": N} (default 1024) alive forever, then sleeps {"ms": M}: a planted leak."""
    _log_execution(ctx)
    spec = json.loads(ctx.payload or b"{}")
    # Filled with a non-zero byte so every page is really resident, not a shared zero page.
    _LEAKED.append(bytearray(b"\x01") * (int(spec.get("kib", 1024)) * 1024))
    await asyncio.sleep(spec.get("ms", 10) / 1000)
    return {"agent": ctx.agent_id, "leaked_mib": len(_LEAKED)}


def traced(ctx: Any) -> dict[str, Any]:
    """Returns the trace context the handler was given (to check that user code continues the trace)."""
    _log_execution(ctx)
    return {"agent": ctx.agent_id, "trace_context": dict(ctx.trace_context)}
