"""How ``swarmmesh profile`` shows a profile: phases per kind, agents, findings
with what to do, forecasts and history, for a person reading a terminal."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC

from swarmmesh._table import format_bytes, format_duration, format_table
from swarmmesh.types import AgentProfile, Finding, Forecast, HistoryPoint, KindProfile, PhaseStats, Profile

__all__ = ["profile_text", "sparkline"]

_PHASE_ORDER = ("queue", "transport", "cache", "execution", "total")
_SPARKS = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 60


def _ms(value: float) -> str:
    return format_duration(value / 1000)


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _phase_rows(phases: Sequence[PhaseStats]) -> list[tuple[object, ...]]:
    order = {name: i for i, name in enumerate(_PHASE_ORDER)}
    rows: list[tuple[object, ...]] = []
    for p in sorted(phases, key=lambda p: order.get(p.phase, len(order))):
        if p.max_ms == 0 and p.phase != "total":
            continue  # e.g. no cache lookups: nothing to read in a row of zeros
        share = "" if p.phase == "total" else _pct(p.share)
        rows.append((p.phase, p.count, _ms(p.mean_ms), _ms(p.p50_ms), _ms(p.p90_ms), _ms(p.p99_ms),
                     _ms(p.max_ms), share))
    return rows


def kind_text(k: KindProfile) -> str:
    failed = f", {k.failed} failed" if k.failed else ""
    head = (f"kind {k.kind}: {k.succeeded} succeeded{failed}, {k.throughput_per_s:.1f}/s; now {k.queued} queued, "
            f"{k.in_flight} in flight on {k.agents} agent(s) with {k.capacity} slot(s)")
    if k.cache_lookups:
        head += f"; cache hit rate {_pct(k.cache_hit_rate)} of {k.cache_lookups} lookup(s)"
    if not k.phases:
        return head + "\n  (no task finished in the window)"
    table = format_table(("PHASE", "COUNT", "MEAN", "P50", "P90", "P99", "MAX", "SHARE"), _phase_rows(k.phases),
                         align="lrrrrrrr", indent="  ")
    return head + "\n" + table


def _phase_ms(a: AgentProfile, phase: str, pick: Callable[[PhaseStats], float]) -> str:
    p = a.phase(phase)
    return _ms(pick(p)) if p is not None and p.count else "-"


def _growth(a: AgentProfile) -> str:
    if not a.memory_growth_bytes_per_s:
        return "-"
    sign = "-" if a.memory_growth_bytes_per_s < 0 else "+"
    return f"{sign}{format_bytes(int(abs(a.memory_growth_bytes_per_s)))}/s"


def agents_text(agents: Sequence[AgentProfile]) -> str:
    rows = [
        (
            a.agent_id,
            a.succeeded,
            a.failed,
            f"{_pct(a.utilization)} of {a.capacity}",
            f"{a.slowdown:.1f}x" if a.slowdown else "-",
            _phase_ms(a, "execution", lambda p: p.p50_ms),
            _phase_ms(a, "total", lambda p: p.p99_ms),
            _pct(a.cache_hit_rate) if a.cache_hit_rate else "-",
            format_bytes(a.memory_rss_bytes) if a.memory_rss_bytes else "-",
            _growth(a),
        )
        for a in agents
    ]
    headers = ("AGENT", "DONE", "FAILED", "BUSY", "SLOWDOWN", "EXEC P50", "TOTAL P99", "CACHE HIT", "RSS",
               "MEMORY GROWTH")
    return format_table(headers, rows, align="lrrrrrrrrr")


def _figure(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def finding_text(f: Finding) -> str:
    subject = f" ({f.subject})" if f.subject else ""
    lines = [f"{f.severity.value:<8}  {f.category}{subject}", f"  {f.summary}"]
    lines += [f"  -> {r}" for r in f.recommendations]
    if f.figures:
        lines.append("  figures: " + ", ".join(f"{k}={_figure(v)}" for k, v in sorted(f.figures.items())))
    return "\n".join(lines)


def _when(f: Forecast) -> str:
    if f.seconds_to_threshold < 0:
        return "never at this trend"
    if f.seconds_to_threshold == 0:
        return "already"
    return "in " + format_duration(f.seconds_to_threshold)


def forecasts_text(forecasts: Sequence[Forecast]) -> str:
    rows = [(f.metric, _figure(f.current), f"{f.slope_per_hour:+.3g}", _figure(f.threshold), _when(f), f.summary)
            for f in forecasts]
    return format_table(("METRIC", "NOW", "PER HOUR", "THRESHOLD", "CROSSES", "SUMMARY"), rows, align="lrrrll")


def sparkline(values: Sequence[float], width: int = _SPARK_WIDTH) -> str:
    """Values as a row of block characters, averaged down to at most ``width``."""
    clean = [v for v in values if math.isfinite(v)]
    if not clean:
        return ""
    if len(clean) > width:
        step = len(clean) / width
        clean = [sum(chunk) / len(chunk) for i in range(width)
                 if (chunk := clean[int(i * step):max(int((i + 1) * step), int(i * step) + 1)])]
    lo, hi = min(clean), max(clean)
    if hi == lo:
        return _SPARKS[0 if hi == 0 else 3] * len(clean)
    top = len(_SPARKS) - 1
    return "".join(_SPARKS[round((v - lo) / (hi - lo) * top)] for v in clean)


_HISTORY_SERIES: tuple[tuple[str, Callable[[HistoryPoint], float], Callable[[float], str]], ...] = (
    ("queue depth", lambda h: h.queue_depth, _figure),
    ("in flight", lambda h: h.in_flight, _figure),
    ("busy", lambda h: h.in_flight / h.capacity if h.capacity else 0.0, _pct),
    ("agents ready", lambda h: h.agents_ready, _figure),
    ("tasks/s", lambda h: h.throughput_per_s, lambda v: f"{v:.1f}"),
    ("failures/s", lambda h: h.failures_per_s, lambda v: f"{v:.2f}"),
    ("total p99", lambda h: h.p99_total_ms, _ms),
    ("cache hit", lambda h: h.cache_hit_rate, _pct),
)


def history_text(history: Sequence[HistoryPoint]) -> str:
    first, last = history[0], history[-1]
    span = ""
    if first.at is not None and last.at is not None:
        start = first.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        covered = (last.at - first.at).total_seconds() + last.span_s
        span = f" from {start} UTC over {format_duration(covered)}"
    rows = []
    for name, get, fmt in _HISTORY_SERIES:
        values = [get(h) for h in history]
        rows.append((name, fmt(min(values)), fmt(max(values)), fmt(values[-1]), sparkline(values)))
    table = format_table(("FIGURE", "MIN", "MAX", "LAST", "OLDEST -> NEWEST"), rows, align="lrrrl")
    return f"{len(history)} point(s){span}\n{table}"


def profile_text(p: Profile) -> str:
    when = p.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if p.generated_at else "-"
    parts = [f"profile of the last {format_duration(p.window_s)} (at {when})"]
    if p.kinds:
        parts += [kind_text(k) for k in p.kinds]
    else:
        parts.append("no task kinds seen in the window")
    if p.agents:
        parts.append("agents\n" + agents_text(p.agents))
    if p.findings:
        parts.append("findings (most severe first)\n" + "\n\n".join(finding_text(f) for f in p.findings))
    else:
        parts.append("findings: none, the mesh looks healthy")
    if p.forecasts:
        parts.append("forecasts\n" + forecasts_text(p.forecasts))
    if p.history:
        parts.append("history\n" + history_text(p.history))
    return "\n\n".join(parts)
