"""The sidecar's one stream to the coordinator: register, coalesced writes, frames applied, reconnects.

Modules, each importing only those below it:

manager: `ConnectionManager`, the stream's life: register, writer/reader/heartbeat tasks, reconnect
inbound: what each field of a coordinator frame does to the runner, the cache and the counters
outbox: `Outbox`, what the next frame to the coordinator carries, and when it is worth sending
held: `HeldResults`, results kept until the coordinator answers them, across an outage too
channel: the gRPC channel's options and our jittered reconnect backoff
counters: `ConnectionCounters`, and warnings that repeat at most every few seconds
"""
