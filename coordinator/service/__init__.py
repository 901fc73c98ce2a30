"""The coordinator's shell: gRPC adapters over the core, and where its decisions take effect.

Each part is given the parts it uses, never the server that assembles them
(coordinator/server.py).

Modules:

task_service: `TaskService`, the client API: unary calls, a thin adapter over the core
session: `TaskService.Session`, a client's submissions and awaited results on one stream
mesh_service: `MeshService.Connect`, one bidirectional stream per sidecar
agent_session: `AgentSession`, the coordinator's end of one sidecar stream: an outbox and its writer
effects: `AgentSessions`, the agents' open streams, where the core's decisions take effect
profile_service: `ProfileService`, a thin adapter over the profiler
durability: replies that wait for the journal's commit, so a client is told OK only for what is on disk
shutdown: a coordinator stopping: new work refused with a retry hint, in-flight work finished, streams ended
watch: fan-out of task state changes to WatchTasks streams
cache_sync: the shell around the invalidation log: broadcasts, report tallies, warm-up submissions
ticker: `Ticker`, the coordinator's clock, the one task that drives the core's sweeps
status: gRPC statuses for the core's errors, what every service answers a caller's mistake with
convert: the wire boundary: swarmmesh.v1 messages to and from the core's domain types
convert_profile: the profile's wire boundary: the profiler's report to swarmmesh.v1.Profile
"""
