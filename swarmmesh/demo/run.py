"""``swarmmesh demo``: start a local mesh, run a mixed workload, report, shut down.

The mesh is real: a coordinator process and three sidecar processes (text,
math and vision agents running :mod:`swarmmesh.demo.handlers`) on loopback
ports chosen by the OS. About 1% of the tasks are ``math.stats`` with an empty
list; they fail on purpose to show how errors come back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from swarmmesh._render_profile import finding_text
from swarmmesh._table import format_table, truncate
from swarmmesh.client import AsyncClient
from swarmmesh.demo.mesh import LocalMesh, MeshError
from swarmmesh.demo.workload import AGENTS, FAILING_KIND, Workload, build_workload
from swarmmesh.errors import SwarmMeshError
from swarmmesh.types import ClusterStats, Profile, TaskInfo

__all__ = ["add_arguments", "main", "run"]

SUBMIT_BATCH = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", type=int, default=3000, metavar="N", help="tasks to run (default: 3000)")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the mesh up after the workload and print its address, until Ctrl-C",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--seed", type=int, default=7, help="workload seed (default: 7)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="give up on the workload after S seconds (default: 120)",
    )


# -- progress -------------------------------------------------------------------


class Progress:
    """One self-overwriting status line on a terminal; silent otherwise."""

    def __init__(self, total: int, out: TextIO, *, enabled: bool) -> None:
        self.total = total
        self.out = out
        self.enabled = enabled and out.isatty()
        self.start = time.perf_counter()
        self._last = 0.0
        self._width = 0

    def _show(self, line: str) -> None:
        self.out.write("\r" + line.ljust(self._width))
        self.out.flush()
        self._width = len(line)

    def submitted(self, count: int) -> None:
        if self.enabled:
            self._show(f"  submitted {count}/{self.total}")

    def update(self, done: int, failed: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        rate = done / (now - self.start) if now > self.start else 0.0
        self._show(f"  {done}/{self.total} done  |  {rate:,.0f} tasks/s  |  {failed} failed")

    def finish(self) -> None:
        if self.enabled and self._width:
            self.out.write("\n")
            self.out.flush()


# -- workload -------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything the summary needs from one workload run."""

    workload: Workload
    task_ids: list[str]
    results: dict[str, TaskInfo]
    submit_s: float
    wall_s: float
    stats: ClusterStats | None = None
    intentional: set[str] = field(default_factory=set)


async def run_workload(client: AsyncClient, workload: Workload, progress: Progress) -> Outcome:
    start = progress.start = time.perf_counter()
    task_ids: list[str] = []
    specs = workload.specs
    for offset in range(0, len(specs), SUBMIT_BATCH):
        submitted = await client.submit_many(specs[offset : offset + SUBMIT_BATCH], batch_size=SUBMIT_BATCH)
        task_ids.extend(s.task_id for s in submitted)
        progress.submitted(len(task_ids))
    submit_s = time.perf_counter() - start
    results: dict[str, TaskInfo] = {}
    failed = 0
    async with contextlib.aclosing(client.as_completed(task_ids)) as stream:
        async for task in stream:
            results[task.task_id] = task
            failed += not task.ok
            progress.update(len(results), failed)
    progress.update(len(results), failed, force=True)
    progress.finish()
    wall_s = time.perf_counter() - start
    outcome = Outcome(workload, task_ids, results, submit_s, wall_s)
    outcome.intentional = {task_ids[i] for i in workload.failing}
    with contextlib.suppress(SwarmMeshError):
        outcome.stats = await client.stats()
    return outcome


# -- summary --------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (which need not be sorted)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1e3:.2f}"


def agent_rows(results: Sequence[TaskInfo]) -> list[tuple[object, ...]]:
    by_agent: dict[str, list[TaskInfo]] = defaultdict(list)
    for task in results:
        by_agent[task.agent_id or "(none)"].append(task)
    rows: list[tuple[object, ...]] = []
    everything: list[float] = []
    for agent_id in sorted(by_agent):
        tasks = by_agent[agent_id]
        lat = [t.latency_s for t in tasks if t.latency_s is not None]
        handler = [t.outcome.duration_us / 1e6 for t in tasks if t.outcome is not None]
        everything += lat
        rows.append(
            (
                agent_id,
                len(tasks),
                sum(not t.ok for t in tasks),
                _ms(sum(lat) / len(lat) if lat else math.nan),
                _ms(percentile(lat, 99)),
                _ms(sum(handler) / len(handler) if handler else math.nan),
            )
        )
    rows.append(
        (
            "total",
            len(results),
            sum(not t.ok for t in results),
            _ms(sum(everything) / len(everything) if everything else math.nan),
            _ms(percentile(everything, 99)),
            "",
        )
    )
    return rows


def summarize(outcome: Outcome) -> tuple[str, bool]:
    """The printed summary, and whether the run was correct."""
    results = [outcome.results[i] for i in outcome.task_ids if i in outcome.results]
    n = len(outcome.workload.specs)
    distinct = len(set(outcome.task_ids))
    finished = sum(t.terminal for t in results)
    intentional = [outcome.results[i] for i in outcome.intentional if i in outcome.results]
    expected_failed = sum(not t.ok for t in intentional)
    unexpected = [t for t in results if not t.ok and t.task_id not in outcome.intentional]
    lines = [
        format_table(
            ("AGENT", "TASKS", "FAILED", "MEAN ms", "P99 ms", "HANDLER ms"),
            agent_rows(results),
            align="lrrrrr",
        ),
        "",
        "  MEAN/P99 ms: latency measured by the coordinator, task accepted -> result recorded",
        "  (TaskInfo.created_at -> finished_at); it includes queue wait, as every task is submitted up front.",
        "  HANDLER ms: mean handler wall time as measured by the sidecar.",
        "",
        f"wall time        {outcome.wall_s:.2f} s  (submitting {outcome.submit_s:.2f} s)",
        f"throughput       {len(results) / outcome.wall_s:,.0f} tasks/s"
        if outcome.wall_s > 0
        else "throughput       -",
        f"exactly once     {n} submitted, {distinct} distinct task ids, {finished} finished"
        + (" - ok" if n == distinct == finished else " - MISMATCH"),
    ]
    ok = n == distinct == finished and not unexpected and expected_failed == len(outcome.intentional)
    stats = outcome.stats
    if stats is not None:
        recorded = stats.succeeded_total + stats.failed_total + stats.cancelled_total
        lines.append(
            f"coordinator      recorded {stats.succeeded_total} succeeded + {stats.failed_total} failed"
            f" = {recorded}; {stats.reassigned_total} reassigned, {stats.stale_results_total} stale results rejected"
        )
        ok = ok and recorded == n
    example = next((t.error for t in intentional if t.error), "")
    lines.append(
        f"intentional      {len(outcome.intentional)} {FAILING_KIND} tasks with an empty list, "
        f"{expected_failed} failed as designed" + (f': "{truncate(example, 70)}"' if example else "")
    )
    lines.append(f"unexpected       {len(unexpected)} failures")
    for task in unexpected[:5]:
        lines.append(f"  {task.task_id} {task.kind}: [{task.error_type}] {truncate(task.error, 90)}")
    lines += ["", "sample results:"]
    seen: set[str] = set()
    for task in results:
        if task.ok and task.kind not in seen:
            seen.add(task.kind)
            try:
                text = json.dumps(task.output_json(), separators=(",", ":"))
            except ValueError:
                text = task.output_text() if task.output else "(empty)"
            lines.append(f"  {task.kind:<17} {task.agent_id:<13} {truncate(text, 80)}")
    return "\n".join(lines), ok


def profile_summary(p: Profile) -> str:
    """Where the workload's time went, per kind, and what the profiler makes of it."""
    rows: list[tuple[object, ...]] = []
    for k in p.kinds:
        total = k.phase("total")
        if total is None or not total.count:
            continue
        shares = [k.phase(name) for name in ("queue", "transport", "cache", "execution")]
        rows.append((k.kind, total.count, *(f"{s.share * 100:.0f}%" if s else "-" for s in shares),
                     _ms(total.p50_ms / 1000), _ms(total.p99_ms / 1000)))
    lines = ["where the time went (swarmmesh profile): share of each task's time per phase", ""]
    lines.append(format_table(("KIND", "TASKS", "QUEUE", "TRANSPORT", "CACHE", "EXECUTION", "P50 ms", "P99 ms"),
                              rows, align="lrrrrrrr"))
    if p.findings:
        shown = p.findings[:3]  # most severe first
        lines += ["", "what the profiler says:"]
        lines += [finding_text(f) for f in shown]
        if len(p.findings) > len(shown):
            lines.append(f"... and {len(p.findings) - len(shown)} more: swarmmesh profile")
    else:
        lines += ["", "the profiler found nothing to act on"]
    return "\n".join(lines)


# -- entry points ---------------------------------------------------------------


async def _run(ns: argparse.Namespace, phase: list[str]) -> int:
    out = sys.stdout

    def say(message: str) -> None:
        if not ns.quiet:
            print(message, file=out, flush=True)

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    workdir = Path(tempfile.mkdtemp(prefix="swarmmesh-demo-"))
    mesh = LocalMesh(workdir, AGENTS, log=say)
    failed = True
    try:
        say(f"starting a local mesh (logs in {workdir})")
        phase[0] = "starting"
        await mesh.start()
        code = 0
        async with AsyncClient(mesh.address) as client:
            if ns.tasks > 0:
                workload = build_workload(ns.tasks, seed=ns.seed)
                say(f"running {ns.tasks} tasks across {len(AGENTS)} agents")
                phase[0] = "running"
                async with asyncio.timeout(ns.timeout):
                    outcome = await run_workload(
                        client, workload, Progress(ns.tasks, out, enabled=not ns.quiet)
                    )
                text, ok = summarize(outcome)
                print("\n" + text, file=out, flush=True)
                profile = await client.profile(window=max(60.0, outcome.wall_s * 2))
                print("\n" + profile_summary(profile), file=out, flush=True)
                code = 0 if ok else 1
            if ns.keep_running:
                phase[0] = "serving"
                print(
                    f"\nmesh running: coordinator at {mesh.address}\n"
                    f"  try: swarmmesh --coordinator {mesh.address} agents\n"
                    f"       swarmmesh --coordinator {mesh.address} submit math.primes '{{\"n\": 100000}}' "
                    "--json --label math --wait\n"
                    "press Ctrl-C to stop",
                    file=out,
                    flush=True,
                )
                await asyncio.Event().wait()
        failed = code != 0
        return code
    except asyncio.CancelledError:
        failed = False  # stopped on purpose (Ctrl-C / SIGTERM): nothing to inspect
        raise
    except TimeoutError as exc:
        if isinstance(exc, SwarmMeshError):
            raise
        print(f"demo: workload did not finish within {ns.timeout:.0f} s", file=sys.stderr)
        return 1
    finally:
        if task is not None:
            loop.remove_signal_handler(signal.SIGTERM)
        say("stopping the mesh")
        mesh.stop()
        if failed:
            print(f"demo: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(ns: argparse.Namespace) -> int:
    """Run the demo with parsed arguments (see :func:`add_arguments`); returns an exit code."""
    if ns.tasks < 0:
        print("demo: --tasks must be >= 0", file=sys.stderr)
        return 2
    phase = ["init"]
    try:
        return asyncio.run(_run(ns, phase))
    except MeshError as exc:
        print(f"demo: could not start the mesh: {exc}", file=sys.stderr)
        return 1
    except SwarmMeshError as exc:
        print(f"demo: {exc.code_name}: {exc.details}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        if phase[0] == "serving":
            return 0
        print("demo: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swarmmesh demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
