"""A self-contained demo mesh: one coordinator, three agents, a mixed workload.

Modules:

__main__: ``python -m swarmmesh.demo``, the same as ``swarmmesh demo``
run: ``swarmmesh demo``: start a local mesh, run the workload, report, shut down
mesh: `LocalMesh`, a throwaway local mesh: a coordinator and sidecars as child processes
workload: the mixed workload: deterministic task specs across three domains
handlers: example agent handlers: small, real, deterministic work
"""
