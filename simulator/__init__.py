"""A deterministic simulator for the coordinator's balancing decisions.

It drives the real `coordinator.core.MeshCore` (submit, dispatch, results,
ticks) with simulated agents and a simulated clock (an event heap), so a
strategy is judged by the code that runs in production, not by a model of it.
Runs are seeded: the same seed gives the same numbers. `python -m simulator`
prints the tables; `--help` lists scenarios and options.

Modules:

__main__: `python -m simulator`: run the experiments and print their tables
scenarios: the experiments: each a set of runs (a scenario and a strategy) compared in one table
model: what a simulated run is made of: agents, arrival streams, a scenario
engine: `Simulation`, the event loop: simulated clients and agents around a real MeshCore
oracle: a strategy that knows every agent's true mean service time
metrics: what a run measured: latency percentiles, waits, utilization, fairness
report: running experiments, printing their tables, checking the acceptance bars
micro: a micro-benchmark of the core's hot path
"""
