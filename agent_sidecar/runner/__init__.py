"""Running assignments: bounded slots, credits, deadlines, cancels, and the way through the cache.

Modules, each importing only those below it:

runner: `Runner`, at most `capacity` attempts in flight, each slot's credit given back exactly once
cache_path: `CachePath`, a cacheable attempt's lookup, single-flight, store and refresh-ahead
outcomes: what the end of an attempt becomes (success, handler error, deadline) and `RunnerCounters`
slot: `Slot`, one accepted attempt as the runner holds it, and `TaskKey`
"""
