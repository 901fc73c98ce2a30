"""Numbers a sidecar reports in heartbeats: per-kind latency and process memory."""

from __future__ import annotations

import logging
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
