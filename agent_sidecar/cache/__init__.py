"""The sidecar's local result cache, kept in sync with the coordinator's invalidation log.

Modules, from the outside in:

result_cache: `ResultCache`, the cache as the event loop sees it: lifecycle, counters, sync point
worker: the cache thread: store calls queued on the loop and run there in batches
store: `ResultStore`: diskcache plus the dependency index, TTLs, size limit, self-healing
index: the dependency index and sync point, in a SQLite file beside the cache
entry: `Entry` and the byte frame it is stored in, never pickled
config: `CacheConfig`, its flags and environment variables, default directories

The runner's way through the cache (lookup, single-flight, refresh-ahead) is
`agent_sidecar.runner.cache_path`: it runs handlers, which this package never
does.
"""
