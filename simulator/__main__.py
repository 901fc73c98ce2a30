"""python -m simulator: run the experiments and print their tables.

    python -m simulator                      # every experiment, 60 simulated seconds each
    python -m simulator w5 slow-agent        # some of them
    python -m simulator --duration 20 --seed 7 --json out.json
    python -m simulator --micro              # microseconds per dispatch in the core
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from simulator.micro import micro
from simulator.report import as_json, checks, run_experiment, table
from simulator.scenarios import DEFAULT_DURATION_S, EXPERIMENTS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="*", metavar="NAME", help=f"any of {', '.join(EXPERIMENTS)} (default: all)")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="simulated seconds per run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--micro", action="store_true", help="measure the core's dispatch cost instead")
    p.add_argument("--tasks", type=int, default=100_000, help="tasks for --micro")
    ns = p.parse_args(argv)
    if ns.micro:
        print(micro(ns.tasks))
        return 0
    unknown = [n for n in ns.experiments if n not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    names = ns.experiments or list(EXPERIMENTS)
    done = []
    failed = 0
    for name in names:
        exp = EXPERIMENTS[name](ns.duration)
        t0 = time.perf_counter()
        results = run_experiment(exp, ns.seed)
        print(table(exp, results))
        for c in checks(exp, results):
            failed += not c.ok
            print(f"  [{'ok' if c.ok else 'FAIL'}] {c.claim}: {c.measured}")
        print(f"  ({time.perf_counter() - t0:.1f} s wall, seed {ns.seed})\n")
        sys.stdout.flush()
        done.append((exp, results))
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(as_json(done, ns.seed), f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
