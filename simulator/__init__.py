"""A deterministic simulator for the coordinator's balancing decisions.

It drives the real `coordinator.core.MeshCore` (submit, dispatch, results,
ticks) with simulated agents and a simulated clock (an event heap), so a
strategy is judged by the code that runs in production, not by a model of it.
Runs are seeded: the same seed gives the same numbers. `python -m simulator`
prints the tables; `--help` lists scenarios and options.
"""
