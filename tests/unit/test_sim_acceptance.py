"""The balancing claims, checked in the simulator against the real core.

Shorter runs than `python -m simulator` prints, each run done once and
shared by the tests that look at it, so the suite stays quick.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.__main__ import main
from simulator.metrics import RunResult, jain, percentile
from simulator.report import checks, max_overtaken_by, run_experiment, run_one
from simulator.scenarios import EXPERIMENTS, Experiment

# Simulated seconds per experiment: long enough for each scenario's events
# (W5's slowdown at half time, the slow agent's middle third).
DURATION = {"w5": 30.0, "slow-agent": 30.0, "fairness": 15.0, "priority": 20.0, "aging": 10.0, "cache": 10.0,
            "errors": 15.0}


def only(exp: Experiment, *labels: str) -> Experiment:
    return replace(exp, runs=tuple(r for r in exp.runs if r.label in labels))


@functools.cache
def result(name: str, label: str) -> RunResult:
    exp = EXPERIMENTS[name](DURATION[name])
    [run] = [r for r in exp.runs if r.label == label]
    return run_one(run, seed=1)


@pytest.mark.parametrize(("name", "labels"), [
    ("w5", ("oracle", "hybrid")),
    ("slow-agent", ("hybrid", "round-robin")),
    ("fairness", ("hybrid, fair share",)),
    ("priority", ("hybrid, high alone", "hybrid, high + low flood")),
    ("aging", ("hybrid, aging bound 2 s",)),
    ("errors", ("hybrid, outlier ejection", "hybrid, no ejection")),
])
def test_acceptance_bar(name: str, labels: tuple[str, ...]) -> None:
    exp = only(EXPERIMENTS[name](DURATION[name]), *labels)
    found = checks(exp, [result(name, label) for label in labels])
    assert found, name
    for c in found:
        assert c.ok, f"{name}: {c.claim}: {c.measured}"


def test_without_fair_share_the_flooding_tenant_takes_most_of_the_fleet() -> None:
    fifo = result("fairness", "hybrid, one queue (FIFO)")
    assert fifo.jain() < 0.9
    shares = fifo.throughput_by_tenant()
    assert shares["flood"] > 2 * shares["steady"]


def test_strict_priority_starves_low_priority_work_that_aging_serves() -> None:
    aged = result("aging", "hybrid, aging bound 2 s")
    strict = result("aging", "hybrid, strict priority")
    assert aged.summary("low").max_wait_s <= 2.0
    assert strict.summary("low").max_wait_s > 5 * aged.summary("low").max_wait_s


def test_latency_aware_strategies_beat_blind_ones_on_w5() -> None:
    assert result("w5", "hybrid").summary().p99_ms < 0.7 * result("w5", "least-loaded").summary().p99_ms


def test_cache_affinity_raises_the_hit_rate() -> None:
    assert result("cache", "hybrid").cache_hit_rate() > result("cache", "round-robin").cache_hit_rate() + 0.1


def test_runs_are_reproducible_and_seeds_matter() -> None:
    run = EXPERIMENTS["w5"](10.0).runs[1]
    a, b, c = run_one(run, 3), run_one(run, 3), run_one(run, 4)
    assert a.summary() == b.summary() and a.agent_share == b.agent_share
    assert a.summary() != c.summary()


def test_metrics() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert jain([1.0, 1.0]) == 1.0 and jain([1.0, 0.0]) == 0.5


def test_overtaking_measure() -> None:
    assert 0.0 < max_overtaken_by(result("aging", "hybrid, aging bound 2 s")) <= 2.0
    [few] = run_experiment(only(EXPERIMENTS["aging"](3.0), "hybrid, strict priority"), seed=1)
    assert max_overtaken_by(few) > 0.5  # strict priority: lows overtaken by highs from much later


def test_cli_prints_tables_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    assert main(["aging", "--duration", "5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "p99 ms" in printed and "[ok]" in printed
    data = json.loads(out.read_text())
    assert data["experiments"][0]["name"] == "aging" and data["experiments"][0]["checks"]


def test_micro_benchmark_runs() -> None:
    from simulator.micro import batched, trickle
    assert batched("hybrid", 2000)["dispatch"] > 0
    assert trickle("round-robin", 2000)["dispatch"] > 0
