"""The profiler: where time goes per kind and agent, bottlenecks, leaks, history.

Plain objects like the core, with time passed in; the coordinator's shell
feeds them on its event loop and answers ProfileService from them.

Modules:

profiler: `Profiler`, the facade: a core listener, a tick, and reports
config: the profiler's settings: windows, history, and the thresholds behind each finding
samples: finished attempts, recorded cheaply and read back per window
percentiles: percentiles of sampled attempts, where each sample stands for several
window: one window's attempts, summed per kind, per agent and per (kind, agent)
occupancy: slots held over time, from the intervals that held them: busy time without sampling
busy: how busy agents were over a report's window, and while a kind's tasks waited
fleet: each agent over time: slots held, memory, cache events, allocation sites
leaks: is an agent's memory leaking? A straight-line fit that has to earn its verdict
cache_log: the coordinator's own record of cache invalidations and warm-ups, over time
insight: one report's reading of the mesh: profiles per kind and agent, and the findings behind them
diagnosis: findings about task kinds: pure functions from a kind's figures to what to do
diagnosis_cache: the cold_cache finding: why a kind's cache misses what it computed recently
agent_health: findings about agents: one slower than its peers, one whose memory leaks
history: the coordinator's history: a row per interval in SQLite, downsampled as it ages
forecast: where queue depth and utilization are heading at their trend
report: what the profiler answers with: plain frozen data, converted at the service boundary
fmt: figures as a person reads them in a finding's sentence
"""
