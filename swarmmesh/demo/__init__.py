"""A self-contained demo mesh: one coordinator, three agents, a mixed workload."""
