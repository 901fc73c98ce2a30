"""Capacity forecasts: where queue depth and utilization are heading at their trend.

A least squares line through the history points of the last
`forecast_window_s` (each at the middle of its span) and the live value now.
It takes at least MIN_POINTS points over five minutes, and a fit with R² of
at least MIN_R2, to call anything a trend: queue depth under bursty load
jumps about, and a line through noise or through one burst would promise
doom or relief at random.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.profile import fmt
from coordinator.profile.leaks import fit
from coordinator.profile.report import Forecast, HistoryPoint

MIN_POINTS = 3
MIN_SPAN_S = 300.0
MIN_R2 = 0.25


def queue_threshold(configured: float, capacity: float) -> float:
    """The queue depth worth a warning: as configured, else ten times the fleet's slots (at least 100)."""
    return configured if configured > 0 else max(100.0, 10.0 * capacity)


def _trend(points: Sequence[tuple[float, float]]) -> tuple[float, bool]:
    """(slope per second, whether it is a trend worth extrapolating)."""
    if len(points) < MIN_POINTS or points[-1][0] - points[0][0] < MIN_SPAN_S:
        return 0.0, False
    trend = fit(points)
    if trend is None:
        return 0.0, False
    return trend.slope, trend.r2 >= MIN_R2


def _seconds(current: float, threshold: float, slope: float, trending: bool) -> float:
    if current >= threshold:
        return 0.0
    if trending and slope > 0:
        return (threshold - current) / slope
    return -1.0


def queue_depth(history: Sequence[HistoryPoint], now: float, current: float, threshold: float) -> Forecast:
    points = [(h.at + h.span_s / 2, h.queue_depth) for h in history] + [(now, current)]
    slope, trending = _trend(points)
    per_h = slope * 3600
    secs = _seconds(current, threshold, slope, trending)
    limit = fmt.count(threshold)
    if not trending:
        enough = len(points) >= MIN_POINTS and points[-1][0] - points[0][0] >= MIN_SPAN_S
        summary = (f"queue at {fmt.count(current)}, no clear trend" if enough
                   else f"queue at {fmt.count(current)}; not enough history for a trend yet")
        if current >= threshold:
            summary += f", above {limit}: add capacity"
    elif secs == 0:
        summary = (f"queue at {fmt.count(current)} is above {limit} and "
                   + (f"grows {fmt.count(per_h)} tasks/h: add capacity" if per_h > 0
                      else f"shrinks {fmt.count(-per_h)} tasks/h"))
    elif secs > 0:
        summary = (f"queue grows {fmt.count(per_h)} tasks/h: at this trend it exceeds {limit} "
                   f"in {fmt.secs(secs)}; add capacity")
    else:
        summary = (f"queue at {fmt.count(current)}, "
                   + (f"shrinking {fmt.count(-per_h)} tasks/h" if per_h < 0 else "flat"))
    return Forecast("queue_depth", current, per_h, secs, threshold, summary)


def utilization(history: Sequence[HistoryPoint], now: float, current: float) -> Forecast:
    points = [(h.at + h.span_s / 2, h.in_flight / h.capacity) for h in history if h.capacity > 0]
    points.append((now, current))
    slope, trending = _trend(points)
    per_h = slope * 3600
    secs = _seconds(current, 1.0, slope, trending)
    if secs == 0:
        summary = f"the fleet is fully busy ({fmt.pct(current)}): add agents or capacity"
    elif secs > 0:
        summary = (f"utilization {fmt.pct(current)}, rising {per_h * 100:.1f} points/h: at this trend the fleet "
                   f"is fully busy in {fmt.secs(secs)}; add agents before then")
    elif trending:
        summary = (f"utilization {fmt.pct(current)}, "
                   + (f"falling {-per_h * 100:.1f} points/h" if per_h < 0 else "flat"))
    else:
        summary = f"utilization {fmt.pct(current)}, no clear trend"
    return Forecast("utilization", current, per_h, secs, 1.0, summary)
