"""The swarmmesh benchmark suite: real processes on loopback, figures as JSON.

Run `swarmmesh bench --help` (or `python -m bench`). Workloads are defined in
the design notes: W1 throughput, W2 open-loop latency, W3 many agents, W4
result-cache hit rate; docs/benchmarks.md gives the method and the figures.

Modules:

__main__: `swarmmesh bench` / `python -m bench`: run workloads, print a table, write JSON
w1_throughput: W1: many no-op tasks through 8 sidecars from one client
w1_sequential: sequential round trips: one task at a time, submit to result
w1_tracing: W1 with tracing: off, every trace, 1% of traces, a collector that is down
w2_latency: W2: open-loop Poisson arrivals; submit-to-result latency at the client
w2_floor: W2's floor: the same open-loop load over the same path, with nothing but gRPC
w3_agents: W3: thousands of connected agents heartbeating at 1 Hz, light task load
w4_cache: W4: the mesh's result-cache hit rate against one shared LRU of the same size
grpc_floor: what gRPC in Python costs by itself on this machine, in the same run
dask_peer: W1 and sequential latency on Dask distributed, in the same run
fleet: a load tool: many simulated agents in one process, each on its own stream
pacer: releasing open-loop arrivals on time
mesh: starting a benchmark mesh: the demo's `LocalMesh` with no-op agents
handlers: handlers that do no work at all, so the mesh's own cost is what shows
otlp_sink: a collector stand-in that accepts OTLP trace exports and counts them
procstat: CPU time and memory of a set of processes, measured between two points
stats: percentiles and small summaries of samples
report: medians across runs, and the table a person reads
"""

import swarmmesh  # noqa: F401  (first: it chooses gRPC's I/O engine before grpc is imported)
