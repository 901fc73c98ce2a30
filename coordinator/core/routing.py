"""Which strategy routes which task kind: one per coordinator, overridable per kind."""

from __future__ import annotations

import random
from collections.abc import Callable

from coordinator.core.affinity import CacheAffinity
from coordinator.core.balancer import STRATEGY_NAMES, BalancerConfig, Strategy
from coordinator.core.hybrid import Hybrid
from coordinator.core.strategies import ExpertiseMatch, LeastLoaded, PerformanceAware, RoundRobin

_FACTORIES: dict[str, Callable[[BalancerConfig, random.Random], Strategy]] = {
    "hybrid": Hybrid,
    "round-robin": RoundRobin,
    "least-loaded": LeastLoaded,
    "performance": PerformanceAware,
    "expertise": ExpertiseMatch,
    "cache-affinity": CacheAffinity,
}
assert tuple(_FACTORIES) == STRATEGY_NAMES


def check_strategy(name: str, where: str = "strategy") -> str:
    """An error message for an unknown strategy name, empty when it is known."""
    if name in _FACTORIES:
        return ""
    return f"{where}: {name!r} is not a strategy; choose one of {', '.join(STRATEGY_NAMES)}"


def parse_overrides(text: str) -> tuple[tuple[str, str], ...]:
    """"kind=strategy,kind2=strategy2" -> pairs; ValueError naming the bad part."""
    out: list[tuple[str, str]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, name = part.partition("=")
        kind, name = kind.strip(), name.strip()
        if not sep or not kind:
            raise ValueError(f"strategy_overrides: {part!r} is not KIND=STRATEGY")
        problem = check_strategy(name, f"strategy_overrides[{kind!r}]")
        if problem:
            raise ValueError(problem)
        out.append((kind, name))
    return tuple(out)


class Router:
    def __init__(self, config: BalancerConfig, default: Strategy | None = None) -> None:
        rng = random.Random(config.seed)
        problem = check_strategy(config.strategy)
        if problem and default is None:
            raise ValueError(problem)
        instances: dict[str, Strategy] = {}

        def get(name: str) -> Strategy:
            if name not in instances:
                problem = check_strategy(name)
                if problem:
                    raise ValueError(problem)
                instances[name] = _FACTORIES[name](config, rng)
            return instances[name]

        self.default: Strategy = default if default is not None else get(config.strategy)
        self._by_kind: dict[str, Strategy] = {kind: get(name) for kind, name in config.overrides}

    def for_kind(self, kind: str) -> Strategy:
        return self._by_kind.get(kind, self.default)

    def strategies(self) -> list[Strategy]:
        return [self.default, *self._by_kind.values()]
