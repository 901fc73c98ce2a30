"""Running experiments, printing their tables and checking the acceptance bars."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.engine import Simulation
from simulator.metrics import RunResult
from simulator.oracle import Oracle
from simulator.scenarios import Experiment, Run


def run_one(run: Run, seed: int) -> RunResult:
    if run.strategy == "oracle":
        sim = Simulation(run.scenario, lambda s: Oracle(s.true_mean), seed=seed)
    else:
        sim = Simulation(run.scenario, run.strategy, seed=seed)
    result = sim.run()
    result.strategy = run.label
    return result


def run_experiment(exp: Experiment, seed: int, progress: Callable[[str], None] | None = None
                   ) -> list[RunResult]:
    out = []
    for run in exp.runs:
        if progress:
            progress(f"  {exp.name}: {run.label} ...")
        out.append(run_one(run, seed))
    return out


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:,.1f}"


def table(exp: Experiment, results: list[RunResult]) -> str:
    head = ["run", "tasks", "p50 ms", "p99 ms", "p99.9 ms", "util", "jain"]
    if exp.focus:
        head += [f"{exp.focus} p50", f"{exp.focus} p99", f"{exp.focus} max wait s"]
    if exp.name == "cache":
        head.append("hit rate")
    if any(r.summary().failed for r in results):
        head.append("failed")
    if any(r.rejected for r in results):
        head.append("rejected")
    rows = [head]
    for r in results:
        s = r.summary()
        row = [r.strategy, f"{s.tasks:,}", _ms(s.p50_ms), _ms(s.p99_ms), _ms(s.p999_ms),
               f"{r.utilization:.0%}", "-" if math.isnan(r.jain()) else f"{r.jain():.3f}"]
        if exp.focus:
            f = r.summary(exp.focus)
            row += [_ms(f.p50_ms), _ms(f.p99_ms), f"{f.max_wait_s:.2f}"]
        if exp.name == "cache":
            row.append(f"{r.cache_hit_rate():.1%}")
        if "failed" in head:
            row.append(f"{s.failed:,} ({s.failed / max(s.tasks, 1):.1%})")
        if "rejected" in head:
            row.append(", ".join(f"{k} {v:,}" for k, v in sorted(r.rejected.items())) or "-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [f"{exp.name}: {exp.title}"]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in
                                      enumerate(zip(row, widths, strict=True))))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Check:
    experiment: str
    claim: str
    measured: str
    ok: bool


def _by_label(results: list[RunResult]) -> dict[str, RunResult]:
    return {r.strategy: r for r in results}


def checks(exp: Experiment, results: list[RunResult]) -> list[Check]:
    """The acceptance bars this experiment can speak to."""
    name = exp.name
    r = _by_label(results)
    out: list[Check] = []
    if name == "w5":
        h, o = r["hybrid"].summary().p99_ms, r["oracle"].summary().p99_ms
        out.append(Check(name, "hybrid p99 within 1.25x of the oracle's", f"{h:.1f} ms vs {o:.1f} ms "
                         f"({h / o:.2f}x)", h <= 1.25 * o))
    elif name == "slow-agent":
        h, rr = r["hybrid"].summary().p99_ms, r["round-robin"].summary().p99_ms
        out.append(Check(name, "hybrid p99 at least 3x better than round-robin's",
                         f"{h:.1f} ms vs {rr:.1f} ms ({rr / h:.1f}x)", rr >= 3 * h))
    elif name == "fairness":
        j = r["hybrid, fair share"].jain()
        out.append(Check(name, "Jain's index >= 0.95 over served throughput (equal weights, one floods 10x)",
                         f"{j:.3f}", j >= 0.95))
    elif name == "priority":
        alone = r["hybrid, high alone"].summary("high").p99_ms
        flooded = r["hybrid, high + low flood"].summary("high").p99_ms
        out.append(Check(name, "high-priority p99 within 10% with a low-priority flood",
                         f"{flooded:.1f} ms vs {alone:.1f} ms alone ({flooded / alone - 1:+.1%})",
                         flooded <= 1.10 * alone))
    elif name == "errors":
        on, off = r["hybrid, outlier ejection"].summary().failed, r["hybrid, no ejection"].summary().failed
        out.append(Check(name, "outlier ejection cuts failed tasks at least 10x",
                         f"{on:,} vs {off:,} without ejection", 10 * on <= off))
    elif name == "aging":
        run = exp.runs[0]
        res = r[run.label]
        bound = run.scenario.core.fairness.aging_bound_s
        wait = res.summary().max_wait_s
        passed = max_overtaken_by(res)
        out.append(Check(name, f"no task waits longer than the aging bound ({bound:g} s)",
                         f"longest wait {wait:.2f} s", wait <= bound))
        out.append(Check(name, "no task is overtaken by one of its tenant submitted more than the bound later",
                         f"largest such gap {passed:.2f} s", passed <= bound))
    return out


def max_overtaken_by(res: RunResult) -> float:
    """The largest (submitted[Y] - submitted[X]) over pairs of one tenant where
    Y was assigned strictly before X: how much later-submitted work overtook a task."""
    worst = 0.0
    by_tenant: dict[str, list[tuple[float, float]]] = {}
    for s in res.samples:
        by_tenant.setdefault(s.tenant, []).append((s.assigned, s.submitted))
    for pairs in by_tenant.values():
        pairs.sort()
        latest = -math.inf
        i = 0
        while i < len(pairs):
            j = i
            while j < len(pairs) and pairs[j][0] == pairs[i][0]:
                j += 1
            for _, submitted in pairs[i:j]:
                worst = max(worst, latest - submitted)
            for _, submitted in pairs[i:j]:
                latest = max(latest, submitted)
            i = j
    return worst


def as_json(experiments: list[tuple[Experiment, list[RunResult]]], seed: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "experiments": [
            {"name": e.name, "title": e.title, "runs": [r.as_dict() for r in rs],
             "checks": [{"claim": c.claim, "measured": c.measured, "ok": c.ok} for c in checks(e, rs)]}
            for e, rs in experiments
        ],
    }
