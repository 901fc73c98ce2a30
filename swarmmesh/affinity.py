"""Keeping a process's threads on chosen CPUs.

A grpc.aio process hands every message between two threads: gRPC's poller
thread completes the read and wakes the event loop's thread through a
socket. When the two run on different CPUs each hand-off is a cross-CPU
wake-up, which on a virtual machine is an interrupt through the hypervisor.
On one CPU it is a switch between two threads.
Measured on 2 cores with the coordinator pinned to one CPU against left to
the OS (alternated runs): W3's heartbeat CPU was lower in 12 of 14 pairs
(median 30.7% against 32.7% of a core in the first 11). But on a busy
machine W2's tail was worse in all 3 pairs (p99 5.6-10.2 ms against
4.0-6.1): pinned threads cannot leave a CPU that other processes also land
on.

So it suits a process that has a CPU to itself, and it is off by default.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

#: The kernel's CPU list syntax, as in /proc/self/status: "0", "0,2", "0-3,8".
SYNTAX = "a CPU list such as 0, 0,2 or 0-3"


def parse_cpus(spec: str) -> frozenset[int]:
    """The CPUs named by `spec`; ValueError names what is wrong. An empty spec names none."""
    cpus: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if dash else lo
        except ValueError:
            raise ValueError(f"{part!r} is not a CPU number or range ({SYNTAX})") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"{part!r} is not a CPU number or range ({SYNTAX})")
        cpus.update(range(lo, hi + 1))
    if not cpus and spec.strip():
        raise ValueError(f"{spec!r} names no CPU ({SYNTAX})")
    return frozenset(cpus)


def format_cpus(cpus: Iterable[int]) -> str:
    """`cpus` as a CPU list, ranges joined: {0, 1, 2, 5} -> "0-2,5"."""
    out: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu != run[-1] + 1:
            out.append(_span(run))
            run = []
        run.append(cpu)
    if run:
        out.append(_span(run))
    return ",".join(out)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def allowed() -> frozenset[int] | None:
    """The CPUs this process may run on; None where the platform cannot pin threads."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return frozenset(os.sched_getaffinity(0))


def problem(cpus: frozenset[int]) -> str:
    """Why this process cannot be pinned to `cpus`; empty when it can."""
    may = allowed()
    if may is None:
        return "this platform cannot pin threads to CPUs"
    outside = cpus - may
    if outside:
        return f"CPU {format_cpus(outside)} is not one this process may use (it may use {format_cpus(may)})"
    return ""


def pin_process(cpus: frozenset[int]) -> None:
    """Put every thread of this process on `cpus`. Threads started later inherit the setting
    from the thread that starts them, so this covers them too."""
    why = problem(cpus)
    if why:
        raise OSError(why)
    threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            pass  # that thread has ended since the listing
