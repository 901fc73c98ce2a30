"""The profiler: where time goes per kind and agent, bottlenecks, leaks, history."""
