"""Numbers a sidecar reports in heartbeats: per-kind latency, process memory and where it is allocated."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import tracemalloc
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)

# Weight of the newest sample. 0.2 follows a change within ~10 tasks while one
# outlier moves the average by only a fifth of its excess.
EWMA_ALPHA = 0.2


@dataclass(slots=True)
class KindStats:
    """Latency and outcome counts for one task kind."""

    ewma_ms: float = 0.0
    completed: int = 0
    failed: int = 0
    samples: int = 0

    def observe(self, duration_ms: float, ok: bool, alpha: float = EWMA_ALPHA) -> None:
        # The first sample seeds the average; starting from 0 would make a new
        # kind look fast to a performance-aware balancer for its first tasks.
        if self.samples == 0:
            self.ewma_ms = duration_ms
        else:
            self.ewma_ms += alpha * (duration_ms - self.ewma_ms)
        self.samples += 1
        if ok:
            self.completed += 1
        else:
            self.failed += 1


class LatencyTracker:
    """Per-kind KindStats, filled in by the runner and read by heartbeats."""

    def __init__(self, alpha: float = EWMA_ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha: must be in (0, 1], got {alpha}")
        self._alpha = alpha
        self._kinds: dict[str, KindStats] = {}

    def observe(self, kind: str, duration_us: int, ok: bool) -> None:
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = KindStats()
        stats.observe(duration_us / 1000.0, ok, self._alpha)

    def get(self, kind: str) -> KindStats | None:
        return self._kinds.get(kind)

    def snapshot(self) -> dict[str, KindStats]:
        """A copy, so a heartbeat being built never sees a half-updated entry."""
        return {
            kind: KindStats(s.ewma_ms, s.completed, s.failed, s.samples) for kind, s in self._kinds.items()
        }


class ProcessMemory:
    """Resident set size of this process; 0 when the platform will not tell."""

    def __init__(self) -> None:
        self._process: psutil.Process | None
        try:
            self._process = psutil.Process()
        except Exception:  # psutil raises platform-specific errors
            log.debug("psutil cannot inspect this process; memory will report 0", exc_info=True)
            self._process = None

    def rss_bytes(self) -> int:
        if self._process is None:
            return 0
        try:
            return int(self._process.memory_info().rss)
        except Exception:
            return 0


class AllocationSites:
    """The largest live allocation sites of this process (tracemalloc), for heartbeats.

    A snapshot walks every traced block, tens of milliseconds on a large heap,
    so one is taken at most every `every_s` seconds, in a worker thread, and
    heartbeats in between repeat the last result. Tracing starts with `start`
    and stops with `stop` (only if it was started here).
    """

    def __init__(self, top: int, every_s: float = 10.0) -> None:
        self._top = top
        self._every = every_s
        self._at = -math.inf
        self._sites: list[tuple[str, int, int]] = []
        self._started_here = False

    def start(self) -> None:
        if self._top > 0 and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_here = True

    def stop(self) -> None:
        if self._started_here:
            tracemalloc.stop()
            self._started_here = False

    async def sites(self) -> list[tuple[str, int, int]]:
        """(where, bytes, blocks) of the top sites, largest first; recomputed when due."""
        now = time.monotonic()
        if tracemalloc.is_tracing() and now - self._at >= self._every:
            self._at = now
            try:
                self._sites = await asyncio.to_thread(self.compute)
            except Exception:  # a heartbeat must go out regardless
                log.debug("tracemalloc snapshot failed", exc_info=True)
        return self._sites

    def compute(self) -> list[tuple[str, int, int]]:
        snapshot = tracemalloc.take_snapshot().filter_traces((
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
            tracemalloc.Filter(False, "<unknown>"),
        ))
        out = []
        for stat in snapshot.statistics("lineno")[: self._top]:
            frame = stat.traceback[0]
            out.append((f"{_short_path(frame.filename)}:{frame.lineno}", stat.size, stat.count))
        return out


def _short_path(path: str) -> str:
    """Installed packages from their package on, project files relative to the working directory."""
    marker = "site-packages" + os.sep
    i = path.rfind(marker)
    if i >= 0:
        return path[i + len(marker):]
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel
