"""The leak detector's verdicts on memory traces: steady growth is a leak, nothing else is."""

from __future__ import annotations

import math
import random

import pytest

from coordinator.core.model import AllocationSite
from coordinator.profile.leaks import assess, fit, growing_sites

WINDOW = 300.0
KIB = 1024


def trace(fn: object, seconds: float = 300, step: float = 2.0, seed: int = 1) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(t, fn(t, rng)) for t in (i * step for i in range(int(seconds / step) + 1))]  # type: ignore[operator]


def judge(points: list[tuple[float, float]]) -> tuple[bool, float, str]:
    v = assess(points, WINDOW, min_samples=10, min_growth=16 * KIB, min_r2=0.6)
    return v.leaking, v.growth_bytes_per_s, v.reason


def test_fit_recovers_a_line() -> None:
    t = fit([(float(x), 3.0 * x + 7) for x in range(10)])
    assert t is not None
    assert t.slope == pytest.approx(3.0) and t.at(0) == pytest.approx(7.0) and t.r2 == pytest.approx(1.0)
    assert fit([(1.0, 2.0)]) is None and fit([(1.0, 2.0), (1.0, 3.0)]) is None


def test_steady_growth_with_noise_is_a_leak() -> None:
    leaking, rate, _ = judge(trace(lambda t, r: 300e6 + 40 * KIB * t + r.gauss(0, 2e6)))
    assert leaking and rate == pytest.approx(40 * KIB, rel=0.1)


def test_growth_under_garbage_collection_is_a_leak() -> None:
    # A sawtooth whose floor keeps rising: what a leak looks like under a collector.
    leaking, rate, _ = judge(trace(lambda t, r: 300e6 + 60 * KIB * t + 5e6 * ((t % 30) / 30)))
    assert leaking and rate == pytest.approx(60 * KIB, rel=0.1)


@pytest.mark.parametrize(("name", "fn", "reason"), [
    ("flat", lambda t, r: 300e6 + r.gauss(0, 3e6), "growth below the threshold"),
    ("sawtooth", lambda t, r: 300e6 + 80e6 * ((t % 50) / 50), "memory does not follow a line"),
    ("slow growth", lambda t, r: 300e6 + 4 * KIB * t, "growth below the threshold"),
    ("gc cycles", lambda t, r: 300e6 + 60e6 * abs(math.sin(t / 40)), "growth below the threshold"),
    ("warm-up then flat", lambda t, r: 300e6 + 150e6 * min(1.0, t / 100) + r.gauss(0, 1e6),
     "growth levelled off"),
    # A step fits a line fairly well (R² ~0.75), but only one quarter rises.
    ("one step", lambda t, r: 300e6 + (100e6 if t > 150 else 0), "growth does not persist"),
])
def test_no_leak(name: str, fn: object, reason: str) -> None:
    leaking, _, why = judge(trace(fn))
    assert not leaking, name
    assert why == reason, name


def test_a_short_trace_is_too_early_to_call() -> None:
    leaking, rate, why = judge(trace(lambda t, r: 300e6 + 50 * KIB * t, seconds=200))
    assert not leaking and why == "window not covered yet"
    assert rate == pytest.approx(50 * KIB)  # the growth is still reported
    assert judge(trace(lambda t, r: 1e8, seconds=10))[2] == "too few samples"


def test_only_the_window_is_fitted() -> None:
    # An hour of flat memory, then five minutes of steady growth: judged on the last five minutes.
    points = trace(lambda t, r: 300e6 + (40 * KIB * (t - 3300) if t > 3300 else 0), seconds=3600, step=5)
    leaking, rate, _ = judge(points)
    assert leaking and rate == pytest.approx(40 * KIB, rel=0.05)


def test_growing_sites_rank_by_growth_then_by_size() -> None:
    before = (AllocationSite("a.py:1", 100, 1), AllocationSite("b.py:2", 5000, 10))
    now = (AllocationSite("a.py:1", 4000, 40), AllocationSite("b.py:2", 5100, 11), AllocationSite("c.py:3", 50, 1))
    assert [(s.where, grew) for s, grew in growing_sites(before, now)] == [
        ("a.py:1", 3900), ("b.py:2", 100), ("c.py:3", 50)]
    assert [(s.where, grew) for s, grew in growing_sites((), now, top=2)] == [("b.py:2", 0), ("a.py:1", 0)]
