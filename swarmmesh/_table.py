"""Plain-text tables and value formatting for terminal output (no dependencies)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

__all__ = [
    "format_bytes",
    "format_duration",
    "format_kv",
    "format_table",
    "truncate",
]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("\n", " ")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    align: str | None = None,
    indent: str = "",
    gap: int = 2,
) -> str:
    """Render rows as a left/right-aligned table with a dashed rule under the headers.

    ``align`` has one letter per column, ``l`` or ``r``; by default a column is
    right-aligned when every non-empty value in it is a number. ``None`` shows
    as ``-`` and floats with two decimals (format them yourself for more).
    """
    raw = [list(r) for r in rows]
    ncols = len(headers)
    for i, row in enumerate(raw):
        if len(row) != ncols:
            raise ValueError(f"row {i} has {len(row)} cells, expected {ncols}")
    if align is None:
        align = "".join(
            "r"
            if any(r[c] is not None for r in raw) and all(r[c] is None or _is_number(r[c]) for r in raw)
            else "l"
            for c in range(ncols)
        )
    if len(align) != ncols or set(align) - {"l", "r"}:
        raise ValueError(f"align must have one of 'l'/'r' per column, got {align!r}")
    text = [[_cell(v) for v in row] for row in raw]
    widths = [max([len(headers[c])] + [len(r[c]) for r in text]) for c in range(ncols)]
    sep = " " * gap

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if a == "r" else cell.ljust(w)
            for cell, w, a in zip(cells, widths, align, strict=True)
        ]
        return (indent + sep.join(parts)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in text)
    return "\n".join(out)


def format_kv(pairs: Iterable[tuple[str, object]], *, indent: str = "") -> str:
    """Render ``key: value`` lines with the values aligned; multi-line values are indented."""
    items = [(k, _cell(v) if not isinstance(v, str) else v) for k, v in pairs]
    if not items:
        return ""
    width = max(len(k) for k, _ in items) + 1
    lines: list[str] = []
    for key, value in items:
        first, *rest = value.split("\n") if value else [""]
        lines.append(f"{indent}{(key + ':').ljust(width)} {first}".rstrip())
        lines.extend(f"{indent}{' ' * width} {more}".rstrip() for more in rest)
    return "\n".join(lines)


def truncate(text: str, limit: int) -> str:
    """Shorten to at most ``limit`` characters, marking the cut with an ellipsis."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def format_duration(seconds: float | None) -> str:
    """Compact human duration: ``850 µs``, ``12.3 ms``, ``4.2 s``, ``3m07s``, ``2h05m``."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``when`` was, e.g. ``4.2 s ago``."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    return format_duration((now - when).total_seconds()) + " ago"
