"""The ``swarmmesh`` command line: its argument types and its parser.

Only what argv means lives here (flags, defaults, help texts, which function
each subcommand runs); what the subcommands do is in ``_cli_commands`` and
``_cli_delegate``, and ``cli.main`` runs the result.
"""

from __future__ import annotations

import argparse
import os

from swarmmesh import __version__
from swarmmesh._cli_commands import (
    EXIT_CODES_HELP,
    client_command,
    cmd_agents,
    cmd_cancel,
    cmd_drain,
    cmd_invalidate,
    cmd_profile,
    cmd_requeue,
    cmd_stats,
    cmd_submit,
    cmd_task,
    cmd_tasks,
)
from swarmmesh._cli_delegate import DELEGATES, delegate
from swarmmesh.client import DEFAULT_ADDRESS
from swarmmesh.types import TaskState

ENV_COORDINATOR = "SWARMMESH_COORDINATOR"


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
        epilog=EXIT_CODES_HELP,
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
    p.set_defaults(func=client_command(cmd_submit))

    p = sub.add_parser("tasks", parents=[common, output], help="list tasks, newest first")
    p.add_argument(
        "--state",
        type=states_arg,
        action="append",
        default=[],
        metavar="S",
        help="pending, assigned, succeeded, failed, cancelled, dead_letter (repeatable or comma-separated)",
    )
    p.add_argument("--kind", default="", help="only this kind")
    p.add_argument("--tenant", default="", help="only this tenant")
    p.add_argument(
        "--agent", default="", metavar="AGENT_ID", help="only tasks held or finished by this agent"
    )
    p.add_argument(
        "--limit", type=positive_int, default=100, metavar="N", help="at most N tasks (default 100)"
    )
    p.set_defaults(func=client_command(cmd_tasks))

    p = sub.add_parser("task", parents=[common, output], help="show one task")
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--wait", action="store_true", help="wait until it is finished")
    p.add_argument(
        "--wait-timeout", type=seconds_arg, default=None, metavar="S", help="stop waiting after S seconds"
    )
    p.set_defaults(func=client_command(cmd_task))

    p = sub.add_parser("cancel", parents=[common, output], help="cancel tasks")
    p.add_argument("task_ids", metavar="ID", nargs="+")
    p.set_defaults(func=client_command(cmd_cancel))

    p = sub.add_parser(
        "requeue",
        parents=[common, output],
        help="send dead letters back to the queue",
        description="Send DEAD_LETTER tasks (failed with an error their kind retries, every attempt spent) "
        "back to the queue, each with a new run of attempts. With IDs, all or nothing: an unknown id or a "
        "task that is not a dead letter fails the whole request.",
    )
    p.add_argument("task_ids", metavar="ID", nargs="*", help="a dead letter's task id")
    p.add_argument("--all-dead", action="store_true", help="every dead letter (newest first, up to --limit)")
    p.add_argument("--kind", default="", help="with --all-dead: only this kind")
    p.add_argument("--tenant", default="", help="with --all-dead: only this tenant")
    p.add_argument(
        "--limit", type=positive_int, default=0, metavar="N",
        help="with --all-dead: at most N (default 1000, at most 10000)",
    )
    p.set_defaults(func=client_command(cmd_requeue))

    p = sub.add_parser("agents", parents=[common, output], help="list agents")
    p.add_argument("--all", dest="include_gone", action="store_true", help="include agents that are gone")
    p.set_defaults(func=client_command(cmd_agents))

    p = sub.add_parser(
        "drain", parents=[common, output], help="let an agent finish its work and take no more"
    )
    p.add_argument("agent_id", metavar="AGENT_ID")
    p.set_defaults(func=client_command(cmd_drain))

    p = sub.add_parser("stats", parents=[common, output], help="cluster counters and agents")
    p.set_defaults(func=client_command(cmd_stats))

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
    p.set_defaults(func=client_command(cmd_invalidate))

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
    p.set_defaults(func=client_command(cmd_profile))

    p = sub.add_parser(
        "demo",
        help="start a local mesh (coordinator + 3 agents) and run a mixed workload",
        description=demo_run.__doc__,
    )
    demo_run.add_arguments(p)
    p.set_defaults(func=demo_run.run)
    return parser
