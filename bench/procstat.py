"""CPU time and memory of a set of processes, measured between two points."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


@dataclass(frozen=True)
class CpuSample:
    seconds: dict[str, float]
    wall_s: float

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


class CpuMeter:
    """CPU seconds spent by each named process between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: _cpu_s(p) for name, p in self._procs.items()}

    def stop(self) -> CpuSample:
        wall = time.monotonic() - self._t0
        return CpuSample({name: _cpu_s(p) - self._start[name] for name, p in self._procs.items()}, wall)


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def self_pid() -> int:
    return os.getpid()
