"""The coordinator's shell: gRPC adapters over the core, and where its decisions take effect.

The services (task_service, session, mesh_service, profile_service) translate
frames into calls on the core; `effects.AgentSessions` applies the core's
decisions to the agents' streams (`agent_session`); `cache_sync` broadcasts
invalidations and submits warm-ups; `watch` fans task updates out to watchers;
`ticker` gives the core the time. Each is given the parts it uses, never the
server that assembles them (coordinator/server.py).
"""
