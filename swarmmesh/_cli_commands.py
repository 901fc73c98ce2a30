"""What each client subcommand of ``swarmmesh`` does, and the exit codes it returns.

Kept apart from the parser (``_cli_args``) and the entry point (``cli``) so that
the work of a subcommand (reading the payload, building the spec, calling the
client, printing a table or JSON, choosing the exit code) reads in one place.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from swarmmesh import _render as render
from swarmmesh._render_profile import profile_text
from swarmmesh._table import format_table
from swarmmesh.client import AsyncClient
from swarmmesh.types import TaskInfo, TaskSpec, TaskState

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TASK_FAILED = 3
EXIT_INTERRUPTED = 130

#: The exit codes above as ``swarmmesh --help`` explains them.
EXIT_CODES_HELP = """Exit codes: 0 success; 1 error (the coordinator refused the request or could
not be reached, or a local problem such as an unreadable payload file);
2 usage error; 3 a waited-for task finished but did not succeed;
130 interrupted.
"""


class CLIError(Exception):
    """A user mistake detected locally; printed without a traceback."""


Command = Callable[[AsyncClient, argparse.Namespace], Awaitable[int]]


def client_command(command: Command) -> Callable[[argparse.Namespace], int]:
    """``command`` as a subcommand's ``func``: run it with a client of ``--coordinator``."""

    def run(ns: argparse.Namespace) -> int:
        async def go() -> int:
            async with AsyncClient(ns.coordinator, timeout=ns.rpc_timeout) as client:
                return await command(client, ns)

        return asyncio.run(go())

    return run


def _emit(ns: argparse.Namespace, human: str, data: Any) -> None:
    print(render.dumps(data) if ns.output_json else human)


def read_payload(ns: argparse.Namespace) -> tuple[bytes | str, str]:
    """The submit payload and its content type from PAYLOAD / --json / --content-type."""
    raw: bytes | str
    if ns.payload is None:
        raw = b""
    elif ns.payload == "-":
        raw = sys.stdin.buffer.read()
    elif ns.payload.startswith("@"):
        path = Path(ns.payload[1:])
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CLIError(f"cannot read payload file {str(path)!r}: {exc.strerror or exc}") from None
    else:
        raw = ns.payload
    if not ns.payload_json:
        return raw, ns.content_type
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text or "null")
    except UnicodeDecodeError:
        raise CLIError("PAYLOAD is not UTF-8 text, so it cannot be JSON") from None
    except json.JSONDecodeError as exc:
        raise CLIError(
            f"PAYLOAD is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return compact.encode("utf-8"), ns.content_type or "application/json"


def spec_from_args(ns: argparse.Namespace) -> TaskSpec:
    payload, content_type = read_payload(ns)
    return TaskSpec(
        kind=ns.kind,
        payload=payload,
        content_type=content_type,
        required_labels=dict(ns.label),
        preferred_labels=dict(ns.prefer),
        priority=ns.priority,
        tenant=ns.tenant,
        timeout_ms=ns.timeout_ms,
        idempotency_key=ns.idempotency_key,
        cache_key=ns.cache_key,
        dependencies=tuple(ns.depends_on),
        max_attempts=ns.max_attempts,
    )


def _finished(ns: argparse.Namespace, tasks: list[TaskInfo]) -> int:
    if ns.output_json:
        print(render.dumps(tasks[0] if len(tasks) == 1 else tasks))
    elif len(tasks) == 1:
        print(render.task_detail(tasks[0]))
    else:
        ok = sum(t.ok for t in tasks)
        print(render.tasks_table(tasks))
        print(f"\n{ok} succeeded, {len(tasks) - ok} did not")
    return EXIT_OK if all(t.ok for t in tasks) else EXIT_TASK_FAILED


async def cmd_submit(client: AsyncClient, ns: argparse.Namespace) -> int:
    if ns.count > 1 and ns.idempotency_key:
        raise CLIError("--idempotency-key with --count > 1 would submit a single task")
    spec = spec_from_args(ns)
    submitted = await client.submit_many([spec] * ns.count, batch_size=min(ns.count, 1000))
    if not ns.wait:
        if ns.output_json:
            print(render.dumps(submitted))
        else:
            for s in submitted:
                print(s.task_id + ("  (deduplicated: an existing task)" if s.deduplicated else ""))
        return EXIT_OK
    results = await client.wait_all([s.task_id for s in submitted], timeout=ns.wait_timeout)
    return _finished(ns, list(results.values()))


async def cmd_tasks(client: AsyncClient, ns: argparse.Namespace) -> int:
    states = [s for group in ns.state for s in group]
    page = await client.list_tasks(states, kind=ns.kind, tenant=ns.tenant, agent_id=ns.agent, limit=ns.limit)
    if ns.output_json:
        print(render.dumps({"tasks": page.tasks, "total": page.total}))
    elif not page.tasks:
        print("no matching tasks")
    else:
        print(render.tasks_table(page.tasks))
        print(f"\n{len(page.tasks)} of {page.total} matching task(s)")
    return EXIT_OK


async def cmd_task(client: AsyncClient, ns: argparse.Namespace) -> int:
    if ns.wait:
        return _finished(ns, [await client.wait(ns.task_id, timeout=ns.wait_timeout)])
    task = await client.get(ns.task_id)
    _emit(ns, render.task_detail(task), task)
    return EXIT_OK


async def cmd_cancel(client: AsyncClient, ns: argparse.Namespace) -> int:
    tasks = await client.cancel(ns.task_ids)
    rows = [
        (t.task_id, t.state.value, "" if t.state is TaskState.CANCELLED else "already finished")
        for t in tasks
    ]
    _emit(ns, format_table(("TASK ID", "STATE", "NOTE"), rows), tasks)
    return EXIT_OK


async def cmd_requeue(client: AsyncClient, ns: argparse.Namespace) -> int:
    if bool(ns.task_ids) == ns.all_dead:
        raise CLIError("name the dead letters to requeue (ID...) or give --all-dead, one of the two")
    if ns.task_ids and (ns.kind or ns.tenant or ns.limit):
        raise CLIError("--kind, --tenant and --limit choose dead letters for --all-dead; with IDs leave them out")
    page = await client.requeue(
        ns.task_ids, all_dead_letters=ns.all_dead, kind=ns.kind, tenant=ns.tenant, limit=ns.limit
    )
    if ns.output_json:
        print(render.dumps({"tasks": page.tasks, "total": page.total}))
    elif not page.tasks:
        print("no dead letters to requeue")
    else:
        print(render.tasks_table(page.tasks))
        print(f"\nrequeued {len(page.tasks)} of {page.total} dead letter(s)")
    return EXIT_OK


async def cmd_agents(client: AsyncClient, ns: argparse.Namespace) -> int:
    agents = await client.agents(include_gone=ns.include_gone)
    _emit(ns, render.agents_table(agents) if agents else "no agents connected", agents)
    return EXIT_OK


async def cmd_drain(client: AsyncClient, ns: argparse.Namespace) -> int:
    agent = await client.drain_agent(ns.agent_id)
    _emit(ns, f"agent {agent.agent_id}: {agent.state.value} ({agent.in_flight} task(s) in flight)", agent)
    return EXIT_OK


async def cmd_stats(client: AsyncClient, ns: argparse.Namespace) -> int:
    stats = await client.stats()
    _emit(ns, render.stats_text(stats), stats)
    return EXIT_OK


async def cmd_invalidate(client: AsyncClient, ns: argparse.Namespace) -> int:
    result = await client.invalidate(ns.dependencies, wait=ns.wait)
    _emit(ns, render.invalidate_text(result), result)
    return EXIT_OK


async def cmd_profile(client: AsyncClient, ns: argparse.Namespace) -> int:
    if not 0 <= ns.history <= 10_000:
        raise CLIError(f"--history {ns.history}: give 0 to 10000 points")
    if ns.window is not None and ns.window > 3600:
        raise CLIError(f"--window {ns.window:g}: at most 3600 seconds")
    profile = await client.profile(window=ns.window, kind=ns.kind, agent_id=ns.agent, history_points=ns.history)
    _emit(ns, profile_text(profile), profile)
    return EXIT_OK
