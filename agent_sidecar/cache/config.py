"""The result cache's settings: one frozen object, its flags and environment variables.

| field            | flag                         | environment variable               |
|------------------|------------------------------|------------------------------------|
| enabled          | --no-cache                   | SWARMMESH_NO_CACHE=1               |
| directory        | --cache-dir                  | SWARMMESH_CACHE_DIR                |
| size_mb          | --cache-size-mb              | SWARMMESH_CACHE_SIZE_MB            |
| eviction         | --cache-eviction             | SWARMMESH_CACHE_EVICTION           |
| default_ttl_s    | --cache-default-ttl          | SWARMMESH_CACHE_DEFAULT_TTL        |
| ttls             | --cache-ttl KIND=SECONDS     | SWARMMESH_CACHE_TTLS="a=60,b=5"    |
| cacheable_kinds  | --cacheable-kind KIND        | SWARMMESH_CACHEABLE_KINDS="a,b"    |
| refresh_fraction | --cache-refresh-fraction     | SWARMMESH_CACHE_REFRESH_FRACTION   |
| refresh_max      | --cache-refresh-max          | SWARMMESH_CACHE_REFRESH_MAX        |
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from agent_sidecar.options import FieldPicker, arg_type, default_agent_id, split_list
from swarmmesh.switch import parse_switch

# Short names accepted on the command line -> diskcache's eviction policies.
EVICTION_POLICIES = {
    "lru": "least-recently-used",
    "lrs": "least-recently-stored",
    "lfu": "least-frequently-used",
    "none": "none",
}
_SAFE_DIR_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class CacheConfig:
    """How a sidecar caches task results (see docs/cache.md)."""

    # False: no cache at all; cache keys are ignored and every task runs.
    enabled: bool = True
    # Directory of this agent's cache; empty = a per-agent directory under
    # $XDG_CACHE_HOME (or ~/.cache), see `resolve_directory`.
    directory: str = ""
    # Soft limit on the cache's size on disk, in MiB (database and value files).
    size_mb: float = 1024.0
    # diskcache eviction policy applied when over the size limit: lru (every
    # hit is a small write), lrs (least recently stored), lfu, or none.
    eviction: str = "least-recently-used"
    # Seconds a result stays fresh when its kind has no entry in `ttls`; 0 = forever.
    default_ttl_s: float = 0.0
    # Task kind -> seconds a result of that kind stays fresh (0 = forever).
    ttls: Mapping[str, float] = field(default_factory=dict)
    # Kinds whose results are cached under a key derived from kind, content
    # type and payload when the task carries no cache key of its own.
    cacheable_kinds: frozenset[str] = frozenset()
    # A result hit at least twice in the last `refresh_fraction` of its TTL is
    # recomputed in the background before it expires; 0 turns that off.
    refresh_fraction: float = 0.2
    # Background refreshes at once, at most; never more than the free slots.
    refresh_max: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "ttls", MappingProxyType(dict(self.ttls)))
        object.__setattr__(self, "cacheable_kinds", frozenset(self.cacheable_kinds))
        object.__setattr__(self, "eviction", EVICTION_POLICIES.get(self.eviction, self.eviction))
        if self.eviction not in EVICTION_POLICIES.values():
            names = ", ".join(EVICTION_POLICIES)
            raise ValueError(f"cache.eviction: must be one of {names}, got {self.eviction!r}")
        if not self.size_mb > 0:
            raise ValueError(f"cache.size_mb: must be > 0, got {self.size_mb}")
        if self.default_ttl_s < 0:
            raise ValueError(f"cache.default_ttl_s: must be >= 0 seconds, got {self.default_ttl_s}")
        for kind, ttl in self.ttls.items():
            if not kind:
                raise ValueError("cache.ttls: kinds must not be empty")
            if ttl < 0:
                raise ValueError(f"cache.ttls[{kind!r}]: must be >= 0 seconds, got {ttl}")
        if not 0 <= self.refresh_fraction < 1:
            raise ValueError(f"cache.refresh_fraction: must be in [0, 1), got {self.refresh_fraction}")
        if self.refresh_max < 0:
            raise ValueError(f"cache.refresh_max: must be >= 0, got {self.refresh_max}")

    @property
    def size_limit_bytes(self) -> int:
        return max(1, int(self.size_mb * 1024 * 1024))

    def ttl_for(self, kind: str) -> float:
        """Seconds a result of `kind` stays fresh; 0 = no expiry."""
        return self.ttls.get(kind, self.default_ttl_s)

    def is_ephemeral(self, agent_id: str) -> bool:
        """True when the agent id is this process's default (hostname-pid): no later
        process can have that id, so its cache is temporary and removed on stop."""
        return not self.directory and agent_id == default_agent_id()

    def resolve_directory(self, agent_id: str) -> Path:
        """The configured directory, else one per agent id, so that a restarted
        agent with a stable id finds its cache again."""
        if self.directory:
            return Path(self.directory).expanduser()
        name = _SAFE_DIR_CHARS.sub("_", agent_id)
        if name != agent_id:
            # Two ids that sanitise alike must not share a cache.
            name += "-" + hashlib.sha256(agent_id.encode()).hexdigest()[:8]
        if self.is_ephemeral(agent_id):
            return Path(tempfile.gettempdir()) / f"swarmmesh-{os.getuid()}" / "sidecar-cache" / name
        base = os.environ.get("XDG_CACHE_HOME") or ""
        if not base:
            home = Path.home() if "HOME" in os.environ else None
            base = str(home / ".cache") if home is not None else ""
        if not base:
            base = os.path.join(tempfile.gettempdir(), f"swarmmesh-{os.getuid()}")
        return Path(base) / "swarmmesh" / "sidecar-cache" / name


# --- text forms shared by flags and environment variables -------------------


def parse_ttl(text: str) -> tuple[str, float]:
    """'kind=SECONDS' -> (kind, seconds)."""
    kind, sep, value = text.partition("=")
    kind = kind.strip()
    if not sep or not kind:
        raise ValueError(f"expected KIND=SECONDS, got {text!r}")
    try:
        seconds = float(value.strip())
    except ValueError:
        raise ValueError(f"TTL of kind {kind!r} must be a number of seconds, got {value.strip()!r}") from None
    if seconds < 0:
        raise ValueError(f"TTL of kind {kind!r} must be >= 0, got {seconds}")
    return kind, seconds


def parse_ttls(text: str) -> dict[str, float]:
    """'a=60,b=5' -> {'a': 60.0, 'b': 5.0}."""
    return dict(parse_ttl(part) for part in split_list(text))


def parse_kinds(text: str) -> frozenset[str]:
    return frozenset(split_list(text))


# --- argparse ----------------------------------------------------------------


ENV_HELP = (
    "SWARMMESH_NO_CACHE, SWARMMESH_CACHE_DIR, SWARMMESH_CACHE_SIZE_MB, SWARMMESH_CACHE_EVICTION, "
    "SWARMMESH_CACHE_DEFAULT_TTL, SWARMMESH_CACHE_TTLS (kind=seconds,...), SWARMMESH_CACHEABLE_KINDS (a,b), "
    "SWARMMESH_CACHE_REFRESH_FRACTION, SWARMMESH_CACHE_REFRESH_MAX"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Cache flags; unset ones stay None so the environment can fill them."""
    g = p.add_argument_group("result cache")
    g.add_argument("--no-cache", action="store_const", const=True, default=None, help="run without a cache")
    g.add_argument("--cache-dir", metavar="PATH", help="cache directory (default: per agent id under ~/.cache)")
    g.add_argument("--cache-size-mb", type=float, metavar="MB", help="soft size limit on disk (default 1024)")
    g.add_argument(
        "--cache-eviction",
        choices=sorted(EVICTION_POLICIES),
        help="eviction over the size limit: lru (default), lrs, lfu, none",
    )
    g.add_argument(
        "--cache-default-ttl", type=float, metavar="SECONDS", help="freshness of results (default 0 = forever)"
    )
    g.add_argument(
        "--cache-ttl",
        action="append",
        type=arg_type(parse_ttl),
        metavar="KIND=SECONDS",
        help="freshness of results of KIND; repeatable",
    )
    g.add_argument(
        "--cacheable-kind",
        action="append",
        metavar="KIND",
        help="cache KIND's results under a key derived from its payload when the task has none; repeatable",
    )
    g.add_argument(
        "--cache-refresh-fraction",
        type=float,
        metavar="F",
        help="recompute hot results in the last F of their TTL (default 0.2; 0 = off)",
    )
    g.add_argument(
        "--cache-refresh-max", type=int, metavar="N", help="background refreshes at once (default 2)"
    )


def from_namespace(ns: argparse.Namespace, env: Mapping[str, str]) -> CacheConfig:
    """Merge the cache flags over their environment variables."""
    pick = FieldPicker(env)
    no_cache = getattr(ns, "no_cache", None)
    pick("enabled", None if no_cache is None else not no_cache, "SWARMMESH_NO_CACHE", lambda s: not parse_switch(s))
    pick("directory", getattr(ns, "cache_dir", None), "SWARMMESH_CACHE_DIR")
    pick("size_mb", getattr(ns, "cache_size_mb", None), "SWARMMESH_CACHE_SIZE_MB", float)
    pick("eviction", getattr(ns, "cache_eviction", None), "SWARMMESH_CACHE_EVICTION")
    pick("default_ttl_s", getattr(ns, "cache_default_ttl", None), "SWARMMESH_CACHE_DEFAULT_TTL", float)
    ttls = getattr(ns, "cache_ttl", None)
    pick("ttls", None if ttls is None else dict(ttls), "SWARMMESH_CACHE_TTLS", parse_ttls)
    kinds = getattr(ns, "cacheable_kind", None)
    pick("cacheable_kinds", None if kinds is None else frozenset(kinds), "SWARMMESH_CACHEABLE_KINDS", parse_kinds)
    pick("refresh_fraction", getattr(ns, "cache_refresh_fraction", None), "SWARMMESH_CACHE_REFRESH_FRACTION", float)
    pick("refresh_max", getattr(ns, "cache_refresh_max", None), "SWARMMESH_CACHE_REFRESH_MAX", int)
    return CacheConfig(**pick.values)
