"""The demo's mixed workload: deterministic task specs across three domains."""

from __future__ import annotations

import random
from dataclasses import dataclass

from swarmmesh.types import TaskSpec

__all__ = ["AGENTS", "DemoAgent", "Workload", "build_workload", "domain_of"]


@dataclass(frozen=True)
class DemoAgent:
    agent_id: str
    labels: dict[str, int]
    kinds: tuple[str, ...]
    capacity: int = 8


AGENTS: tuple[DemoAgent, ...] = (
    DemoAgent("text-agent", {"text": 3, "lang": 2}, ("text.wordcount", "text.sentiment", "text.summarize")),
    DemoAgent("math-agent", {"math": 3}, ("math.primes", "math.stats", "math.matmul")),
    DemoAgent("vision-agent", {"vision": 2}, ("vision.histogram", "vision.edges")),
)

#: The kind whose empty-list payload fails on purpose, to show error handling.
FAILING_KIND = "math.stats"

_SENTENCES = (
    "The new release is fast and reliable.",
    "Users love the clean interface and the helpful documentation.",
    "Some people found the first setup difficult.",
    "The team fixed the slow startup problem last week.",
    "Overall the feedback was great and the launch was a success.",
    "A few reports mention a crash when the network is noisy.",
    "Support answered every question within an hour.",
    "The old version was buggy and the upgrade path was painful.",
    "Benchmarks show the scheduler is twice as fast on small tasks.",
    "Nobody enjoyed the boring migration, but it went smoothly.",
    "Agents with the right expertise receive the matching tasks.",
    "Caching results near the agents keeps repeated work cheap.",
    "The coordinator keeps the queue, the registry and the leases.",
    "Heartbeats carry load, latency and cache statistics.",
    "It is not bad at all, in fact it is rather impressive.",
    "The dashboard was dull and the colours were ugly.",
)


def domain_of(kind: str) -> str:
    """The label a kind requires: ``math.primes`` -> ``math``."""
    return kind.split(".", 1)[0]


def _payload(kind: str, rng: random.Random) -> dict[str, object]:
    if kind.startswith("text."):
        text = " ".join(rng.sample(_SENTENCES, rng.randint(3, 8)))
        if kind == "text.wordcount":
            return {"text": text, "top": 3}
        if kind == "text.summarize":
            return {"text": text, "sentences": 2}
        return {"text": text}
    if kind == "math.primes":
        return {"n": rng.choice((1_000, 5_000, 20_000, 50_000))}
    if kind == "math.stats":
        return {"numbers": [round(rng.gauss(50, 15), 3) for _ in range(rng.randint(10, 200))]}
    if kind == "math.matmul":
        return {"n": rng.randint(4, 12), "seed": rng.randrange(1 << 30)}
    if kind == "vision.histogram":
        return {"width": 32, "height": 24, "seed": rng.randrange(1 << 30), "bins": 8}
    if kind == "vision.edges":
        return {"width": 24, "height": 24, "seed": rng.randrange(1 << 30), "threshold": 200}
    raise ValueError(f"no demo payload for kind {kind!r}")


@dataclass(frozen=True)
class Workload:
    specs: tuple[TaskSpec, ...]
    #: positions in ``specs`` of the tasks built to fail.
    failing: frozenset[int]


def build_workload(count: int, *, seed: int = 7, failure_rate: float = 0.01) -> Workload:
    """``count`` specs spread evenly over every demo kind, ~``failure_rate`` of them
    ``math.stats`` tasks with an empty list that fail on purpose."""
    rng = random.Random(seed)
    kinds = [kind for agent in AGENTS for kind in agent.kinds]
    n_failing = round(count * failure_rate) if count >= 20 else 0
    failing = frozenset(rng.sample(range(count), n_failing)) if n_failing else frozenset()
    specs: list[TaskSpec] = []
    for i in range(count):
        payload: dict[str, object]
        if i in failing:
            kind, payload = FAILING_KIND, {"numbers": []}
        else:
            kind = kinds[i % len(kinds)]
            payload = _payload(kind, rng)
        specs.append(TaskSpec(kind=kind, payload=payload, required_labels={domain_of(kind): 1}))
    return Workload(specs=tuple(specs), failing=failing)
