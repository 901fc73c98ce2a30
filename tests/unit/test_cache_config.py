"""CacheConfig: validation, flags over environment, default directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sidecar.cache.config import CacheConfig, parse_ttl, parse_ttls
from agent_sidecar.config import build_parser, from_namespace
from agent_sidecar.options import default_agent_id


def parse(argv: list[str], env: dict[str, str] | None = None) -> CacheConfig:
    return from_namespace(build_parser().parse_args(argv), env or {}).cache


def test_defaults() -> None:
    c = CacheConfig()
    assert c.enabled and c.eviction == "least-recently-used" and c.size_limit_bytes == 1024 * 1024 * 1024
    assert c.ttl_for("anything") == 0.0 and c.cacheable_kinds == frozenset()


def test_flags() -> None:
    c = parse([
        "--cache-dir", "/tmp/x", "--cache-size-mb", "0.5", "--cache-eviction", "lfu",
        "--cache-ttl", "a=60", "--cache-ttl", "b=1.5", "--cache-default-ttl", "30",
        "--cacheable-kind", "a", "--cacheable-kind", "c", "--cache-refresh-fraction", "0.1",
        "--cache-refresh-max", "4",
    ])
    assert c.directory == "/tmp/x" and c.size_limit_bytes == 512 * 1024
    assert c.eviction == "least-frequently-used"
    assert dict(c.ttls) == {"a": 60.0, "b": 1.5} and c.ttl_for("a") == 60 and c.ttl_for("z") == 30
    assert c.cacheable_kinds == {"a", "c"} and c.refresh_fraction == 0.1 and c.refresh_max == 4
    assert not parse(["--no-cache"]).enabled


def test_environment_and_precedence() -> None:
    env = {
        "SWARMMESH_NO_CACHE": "1",
        "SWARMMESH_CACHE_TTLS": "a=5,b=6",
        "SWARMMESH_CACHEABLE_KINDS": "a,b",
        "SWARMMESH_CACHE_EVICTION": "lrs",
    }
    c = parse([], env)
    assert not c.enabled and dict(c.ttls) == {"a": 5, "b": 6} and c.cacheable_kinds == {"a", "b"}
    assert c.eviction == "least-recently-stored"
    c = parse(["--cache-ttl", "a=1", "--cache-eviction", "none"], env)
    assert dict(c.ttls) == {"a": 1} and c.eviction == "none"  # a flag replaces the variable whole
    with pytest.raises(ValueError, match="SWARMMESH_CACHE_SIZE_MB"):
        parse([], {"SWARMMESH_CACHE_SIZE_MB": "lots"})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"eviction": "random"}, "eviction"),
        ({"size_mb": 0}, "size_mb"),
        ({"default_ttl_s": -1}, "default_ttl_s"),
        ({"ttls": {"k": -1}}, "ttls"),
        ({"refresh_fraction": 1.0}, "refresh_fraction"),
        ({"refresh_max": -1}, "refresh_max"),
    ],
)
def test_invalid_values_name_their_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CacheConfig(**kwargs)  # type: ignore[arg-type]


def test_ttl_text() -> None:
    assert parse_ttl("k=2.5") == ("k", 2.5)
    assert parse_ttls("a=1, b=2") == {"a": 1.0, "b": 2.0}
    for bad in ("k", "=3", "k=x", "k=-1"):
        with pytest.raises(ValueError):
            parse_ttl(bad)


def test_directories(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    c = CacheConfig()
    assert c.resolve_directory("math-1") == tmp_path / "swarmmesh" / "sidecar-cache" / "math-1"
    odd = c.resolve_directory("a/b")
    assert odd.parent == tmp_path / "swarmmesh" / "sidecar-cache" and odd.name.startswith("a_b-")
    assert odd != c.resolve_directory("a_b")
    assert not c.is_ephemeral("math-1")
    # This process's default id can never come back: its cache is temporary.
    assert c.is_ephemeral(default_agent_id())
    assert not str(c.resolve_directory(default_agent_id())).startswith(str(tmp_path))
    assert CacheConfig(directory="~/x").resolve_directory("a") == Path("~/x").expanduser()
