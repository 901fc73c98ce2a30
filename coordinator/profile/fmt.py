"""Figures as a person reads them in a finding's sentence."""

from __future__ import annotations


def secs(s: float) -> str:
    """A duration: '850 µs', '41 ms', '1.2 s', '4.5 min', '3.2 h', '2.1 days'."""
    s = abs(s)
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.0f} ms" if s >= 0.01 else f"{s * 1e3:.1f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def size(n: float) -> str:
    """Bytes in binary units: '512 B', '3.0 KiB', '120.5 MiB', '1.2 GiB'."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns at GiB


def byte_rate(per_s: float) -> str:
    """Growth in the unit that reads best: '1.5 MiB/min' or '40.0 MiB/h'."""
    per_min = per_s * 60
    if abs(per_min) >= 1024 * 1024:
        return f"{size(per_min)}/min"
    return f"{size(per_s * 3600)}/h"


def count(n: float) -> str:
    """'1,200', '3.5' for small fractions."""
    return f"{n:,.0f}" if abs(n) >= 10 or n == int(n) else f"{n:.1f}"


def labels(required: tuple[tuple[str, int], ...]) -> str:
    """Sidecar flags for required labels: '--label vision=2'."""
    return " ".join(f"--label {name}={level}" for name, level in required)
