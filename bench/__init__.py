"""The swarmmesh benchmark suite: real processes on loopback, figures as JSON.

Run `swarmmesh bench --help` (or `python -m bench`). Workloads are defined in
the design notes: W1 throughput, W2 open-loop latency, W3 many agents, W4 result-cache hit rate.
"""

import swarmmesh  # noqa: F401  (first: it chooses gRPC's I/O engine before grpc is imported)
