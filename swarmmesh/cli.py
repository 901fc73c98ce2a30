"""The ``swarmmesh`` command: run the processes, submit and inspect work.

Exit codes: 0 success; 1 error (the coordinator refused the request or could
not be reached, or a local problem such as an unreadable payload file);
2 usage error; 3 a waited-for task finished but did not succeed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from swarmmesh import __version__
from swarmmesh import _render as render
from swarmmesh._render_profile import profile_text
from swarmmesh._table import format_table
from swarmmesh.client import DEFAULT_ADDRESS, AsyncClient
from swarmmesh.errors import SwarmMeshError, Unavailable
from swarmmesh.types import TaskInfo, TaskSpec, TaskState

__all__ = ["build_parser", "main"]

ENV_COORDINATOR = "SWARMMESH_COORDINATOR"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TASK_FAILED = 3
EXIT_INTERRUPTED = 130

#: Subcommands that hand every further argument to another program's ``main(argv)``.
DELEGATES: dict[str, tuple[str, str]] = {
    "coordinator": ("coordinator.__main__", "run the coordinator server"),
    "sidecar": ("agent_sidecar.__main__", "run an agent sidecar"),
    "bench": ("bench.__main__", "run the benchmark suite (W1 throughput, W2 latency, W3 many agents)"),
}
# Global options that may precede a delegated subcommand: option -> takes a value.
_GLOBAL_OPTIONS = {"--coordinator": True, "--rpc-timeout": True, "--json": False}


class CLIError(Exception):
    """A user mistake detected locally; printed without a traceback."""


# -- argument types -------------------------------------------------------------


def label_arg(text: str) -> tuple[str, int]:
    """``NAME=LEVEL`` (or ``NAME``, meaning any level) -> ``(name, level)``."""
    name, sep, level = text.partition("=")
    name = name.strip()
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME=LEVEL, got {text!r}")
    if not sep:
        return name, 0
    try:
        value = int(level)
    except ValueError:
        raise argparse.ArgumentTypeError(f"level in {text!r} must be a non-negative integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"level in {text!r} must be a non-negative integer")
    return name, value


def states_arg(text: str) -> list[TaskState]:
    """``failed`` or ``pending,assigned`` -> task states."""
    try:
        return [TaskState.parse(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


# -- parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from swarmmesh.demo import run as demo_run

    parser = argparse.ArgumentParser(
        prog="swarmmesh",
        description="swarmmesh: a gRPC agent mesh. Run the coordinator and sidecars, submit and follow tasks.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--coordinator",
        metavar="ADDR",
        default=os.environ.get(ENV_COORDINATOR) or DEFAULT_ADDRESS,
        help=f"coordinator address (env {ENV_COORDINATOR}; default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--rpc-timeout", type=seconds_arg, default=30.0, metavar="S", help="deadline per request (default 30)"
    )
    parser.add_argument(
        "--json", dest="output_json", action="store_true", help="print JSON instead of tables"
    )
    parser.add_argument("--version", action="version", version=f"swarmmesh {__version__}")

    # Accept the global options after the subcommand too, without overriding them when absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--coordinator", metavar="ADDR", default=argparse.SUPPRESS, help="coordinator address"
    )
    common.add_argument("--rpc-timeout", type=seconds_arg, metavar="S", default=argparse.SUPPRESS)
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", dest="output_json", action="store_true", default=argparse.SUPPRESS, help="print JSON"
    )

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, (_module, help_text) in DELEGATES.items():
        p = sub.add_parser(
            name, help=f"{help_text} (further arguments go to it; try `swarmmesh {name} --help`)"
        )
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=lambda ns, _name=name: delegate(_name, ns.args))

    p = sub.add_parser(
        "submit",
        parents=[common],
        help="submit a task",
        description="Submit a task (or --count copies). PAYLOAD is text, @FILE for a file's bytes, or - for stdin. "
        "Note: here --json means PAYLOAD is JSON; for JSON output put --json before the subcommand.",
    )
    p.add_argument("kind", metavar="KIND", help="task kind, e.g. math.primes")
    p.add_argument("payload", metavar="PAYLOAD", nargs="?", help="payload text, @FILE or - (stdin)")
    p.add_argument(
        "--json", dest="payload_json", action="store_true", help="PAYLOAD is JSON (sent as application/json)"
    )
    p.add_argument("--content-type", default="", metavar="TYPE", help="payload MIME type")
    p.add_argument(
        "--label",
        type=label_arg,
        action="append",
        default=[],
        metavar="NAME=LEVEL",
        help="required agent label at or above LEVEL (repeatable; NAME alone = any level)",
    )
    p.add_argument(
        "--prefer",
        type=label_arg,
        action="append",
        default=[],
        metavar="NAME=LEVEL",
        help="preferred agent label (repeatable)",
    )
    p.add_argument("--priority", type=int, default=0, help="-1000..1000, higher runs first (default 0)")
    p.add_argument("--tenant", default="", help="owner for fair share and limits")
    p.add_argument(
        "--timeout-ms",
        type=int,
        default=0,
        metavar="N",
        help="time budget to the result (0 = server default)",
    )
    p.add_argument(
        "--idempotency-key", default="", metavar="K", help="same key (per tenant) returns the same task"
    )
    p.add_argument("--cache-key", default="", metavar="K", help="key of the result in the agents' caches")
    p.add_argument(
        "--depends-on",
        action="append",
        default=[],
        metavar="NAME",
        help="name the cached result is built from (repeatable)",
    )
    p.add_argument(
        "--max-attempts", type=int, default=0, metavar="N", help="hand-outs allowed after lost leases"
    )
    p.add_argument("--count", type=positive_int, default=1, metavar="N", help="submit N identical tasks")
    p.add_argument("--wait", action="store_true", help="wait for the result(s) and print them")
    p.add_argument(
        "--wait-timeout", type=seconds_arg, default=None, metavar="S", help="stop waiting after S seconds"
    )
    p.set_defaults(func=_client_command(cmd_submit))

    p = sub.add_parser("tasks", parents=[common, output], help="list tasks, newest first")
    p.add_argument(
        "--state",
        type=states_arg,
        action="append",
        default=[],
        metavar="S",
        help="pending, assigned, succeeded, failed, cancelled (repeatable or comma-separated)",
    )
    p.add_argument("--kind", default="", help="only this kind")
    p.add_argument("--tenant", default="", help="only this tenant")
    p.add_argument(
        "--agent", default="", metavar="AGENT_ID", help="only tasks held or finished by this agent"
    )
    p.add_argument(
        "--limit", type=positive_int, default=100, metavar="N", help="at most N tasks (default 100)"
    )
    p.set_defaults(func=_client_command(cmd_tasks))

    p = sub.add_parser("task", parents=[common, output], help="show one task")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--wait", action="store_true", help="wait until it is finished")
    p.add_argument(
        "--wait-timeout", type=seconds_arg, default=None, metavar="S", help="stop waiting after S seconds"
    )
    p.set_defaults(func=_client_command(cmd_task))

    p = sub.add_parser("cancel", parents=[common, output], help="cancel tasks")
    p.add_argument("task_ids", metavar="ID", nargs="+")
    p.set_defaults(func=_client_command(cmd_cancel))

    p = sub.add_parser("agents", parents=[common, output], help="list agents")
    p.add_argument("--all", dest="include_gone", action="store_true", help="include agents that are gone")
    p.set_defaults(func=_client_command(cmd_agents))

    p = sub.add_parser(
        "drain", parents=[common, output], help="let an agent finish its work and take no more"
    )
    p.add_argument("agent_id", metavar="AGENT_ID")
    p.set_defaults(func=_client_command(cmd_drain))

    p = sub.add_parser("stats", parents=[common, output], help="cluster counters and agents")
    p.set_defaults(func=_client_command(cmd_stats))

    p = sub.add_parser(
        "invalidate",
        parents=[common, output],
        help="drop cached results that depend on names, on every agent",
        description="Drop, on every agent, the cached results that depend on a NAME or are keyed by one, "
        "transitively. Agents that are disconnected catch up when they reconnect.",
    )
    p.add_argument("dependencies", metavar="NAME", nargs="+", help="dependency name or cache key")
    p.add_argument(
        "--wait", type=seconds_arg, default=None, metavar="S",
        help="wait up to S seconds for agents' reports (default: the coordinator's, 2 s)",
    )
    p.set_defaults(func=_client_command(cmd_invalidate))

    p = sub.add_parser(
        "profile",
        parents=[common, output],
        help="where time goes per kind and agent, what limits the mesh, and what to do",
        description="Phases (queue, transport, cache, execution) per task kind, agents' utilization, "
        "slowdown and memory growth, then findings with recommendations, forecasts and history.",
    )
    p.add_argument("--window", type=seconds_arg, default=None, metavar="S",
                   help="tasks finished in the last S seconds (default: the coordinator's; at most 3600)")
    p.add_argument("--kind", default="", help="only this task kind")
    p.add_argument("--agent", default="", metavar="AGENT_ID", help="only this agent")
    p.add_argument("--history", type=int, default=0, metavar="N",
                   help="include the newest N points of the coordinator's history (at most 10000)")
    p.set_defaults(func=_client_command(cmd_profile))

    p = sub.add_parser(
        "demo",
        help="start a local mesh (coordinator + 3 agents) and run a mixed workload",
        description=demo_run.__doc__,
    )
    demo_run.add_arguments(p)
    p.set_defaults(func=demo_run.run)
    return parser


# -- delegated subcommands ------------------------------------------------------


def split_delegated(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """If ``argv`` names a delegated subcommand (after global options), return it and its arguments.

    A global ``--coordinator`` is forwarded to the sidecar, which needs it too.
    """
    coordinator: str | None = None
    i = 0
    while i < len(argv):
        token = argv[i]
        option, eq, value = token.partition("=")
        if option in _GLOBAL_OPTIONS:
            takes_value = _GLOBAL_OPTIONS[option]
            if takes_value and not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            if option == "--coordinator":
                coordinator = value
            i += 1
            continue
        if token in DELEGATES:
            rest = list(argv[i + 1 :])
            if token == "sidecar" and coordinator is not None:
                rest = ["--coordinator", coordinator, *rest]
            return token, rest
        return None
    return None


def delegate(name: str, argv: list[str]) -> int:
    module_name = DELEGATES[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"swarmmesh: error: {name} is not installed ({module_name} not found)", file=sys.stderr)
            return EXIT_ERROR
        raise
    result = module.main(argv)
    return int(result or 0)


# -- client subcommands ---------------------------------------------------------

Command = Callable[[AsyncClient, argparse.Namespace], Awaitable[int]]


def _client_command(command: Command) -> Callable[[argparse.Namespace], int]:
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


# -- entry point ----------------------------------------------------------------


def _error(message: str) -> None:
    print(f"swarmmesh: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    delegated = split_delegated(args)
    if delegated is not None:
        return delegate(*delegated)
    parser = build_parser()
    ns = parser.parse_args(args)
    if getattr(ns, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(ns.func(ns))
    except Unavailable as exc:
        _error(f"cannot reach the coordinator at {ns.coordinator} ({exc.code_name}: {exc.details})")
        print(
            f"  start one with `swarmmesh coordinator`, or point --coordinator / {ENV_COORDINATOR} at it",
            file=sys.stderr,
        )
    except SwarmMeshError as exc:
        _error(f"{exc.code_name}: {exc.details}")
        for note in getattr(exc, "__notes__", ()):
            print(f"  {note}", file=sys.stderr)
    except CLIError as exc:
        _error(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, and keep Python from
        # complaining while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
