"""The demo: handler results on known inputs, the workload, the summary, the child command lines."""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from swarmmesh.demo import handlers
from swarmmesh.demo.mesh import coordinator_command, sidecar_command
from swarmmesh.demo.run import Outcome, agent_rows, percentile, summarize
from swarmmesh.demo.workload import AGENTS, FAILING_KIND, build_workload, domain_of
from swarmmesh.types import ClusterStats, TaskInfo, TaskOutcome, TaskSpec, TaskState


@dataclass
class Ctx:
    kind: str
    payload: bytes
    agent_id: str = "agent"
    task_id: str = "task"
    attempt: int = 1

    def json(self) -> Any:
        return json.loads(self.payload)

    def text(self) -> str:
        return self.payload.decode("utf-8")


def run(kind: str, payload: Any) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return handlers.dispatch(Ctx(kind, raw))


def test_wordcount() -> None:
    out = run("text.wordcount", {"text": "The cat and the hat. The cat sat!", "top": 2})
    assert out["words"] == 8
    assert out["unique"] == 5
    assert out["top"] == [["cat", 2], ["hat", 1]]  # stop words are not "top words"


def test_wordcount_accepts_plain_text() -> None:
    assert run("text.wordcount", b"hello hello world")["top"][0] == ["hello", 2]


def test_sentiment() -> None:
    assert run("text.sentiment", {"text": "Great, fast and reliable!"})["label"] == "positive"
    assert run("text.sentiment", {"text": "Slow, buggy and broken."})["label"] == "negative"
    neutral = run("text.sentiment", {"text": "The box is blue."})
    assert neutral == {"score": 0.0, "label": "neutral", "positive": 0, "negative": 0, "words": 4}
    negated = run("text.sentiment", {"text": "It is not good."})
    assert negated["negative"] == 1 and negated["positive"] == 0


def test_summarize_keeps_original_order() -> None:
    text = (
        "Agents run tasks. The weather is nice. Agents and tasks and agents again. "
        "Unrelated filler sentence here."
    )
    out = run("text.summarize", {"text": text, "sentences": 2})
    assert out["sentences"] == 4 and out["kept"] == 2
    assert out["summary"] == "Agents run tasks. Agents and tasks and agents again."


@pytest.mark.parametrize(
    ("n", "count", "largest"),
    [(0, 0, None), (2, 0, None), (3, 1, 2), (10, 4, 7), (100, 25, 97), (10_000, 1229, 9973)],
)
def test_primes(n: int, count: int, largest: int | None) -> None:
    assert run("math.primes", {"n": n}) == {"n": n, "count": count, "largest": largest}


def test_stats() -> None:
    out = run("math.stats", {"numbers": [2, 4, 4, 4, 5, 5, 7, 9]})
    assert out["mean"] == 5 and out["median"] == 4.5 and out["min"] == 2 and out["max"] == 9
    assert out["stdev"] == pytest.approx(statistics.stdev([2, 4, 4, 4, 5, 5, 7, 9]))
    assert run("math.stats", {"numbers": [3]})["stdev"] == 0.0


def test_stats_empty_list_fails_on_purpose() -> None:
    with pytest.raises(ValueError, match="at least one number"):
        run("math.stats", {"numbers": []})
    with pytest.raises(ValueError, match="list of numbers"):
        run("math.stats", {"numbers": ["x"]})


def test_matmul_explicit_and_generated() -> None:
    out = run("math.matmul", {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]})
    assert out["product"] == [[19, 22], [43, 50]]
    assert out["trace"] == 69 and out["sum"] == 134 and out["shape"] == [2, 2]
    generated = run("math.matmul", {"n": 10, "seed": 1})
    assert generated["shape"] == [10, 10] and "product" not in generated
    assert generated == run("math.matmul", {"n": 10, "seed": 1})  # deterministic
    with pytest.raises(ValueError, match="shapes"):
        run("math.matmul", {"a": [[1, 2]], "b": [[1, 2]]})


def test_synthetic_image_is_deterministic_and_in_range() -> None:
    img = handlers.synthetic_image(20, 10, seed=5)
    assert len(img) == 10 and all(len(row) == 20 for row in img)
    assert all(0 <= v <= 255 for row in img for v in row)
    assert img == handlers.synthetic_image(20, 10, seed=5)
    assert img != handlers.synthetic_image(20, 10, seed=6)


def test_histogram_counts_every_pixel() -> None:
    out = run("vision.histogram", {"width": 32, "height": 24, "seed": 3, "bins": 8})
    assert len(out["bins"]) == 8 and sum(out["bins"]) == 32 * 24
    assert 0 <= out["mean"] <= 255


def test_edges() -> None:
    out = run("vision.edges", {"width": 24, "height": 24, "seed": 3, "threshold": 200})
    assert 0 < out["edge_pixels"] <= 22 * 22
    assert out["edge_fraction"] == round(out["edge_pixels"] / (22 * 22), 4)
    none = run("vision.edges", {"width": 24, "height": 24, "seed": 3, "threshold": 2040})
    assert none["edge_pixels"] == 0


def test_dispatch_rejects_unknown_kinds_and_bad_payloads() -> None:
    with pytest.raises(LookupError, match="no demo handler"):
        run("audio.transcribe", {})
    with pytest.raises(ValueError, match="JSON object"):
        run("math.primes", [1])
    with pytest.raises(ValueError, match="'n'"):
        run("math.primes", {"n": -1})
    with pytest.raises(ValueError, match="pixels"):
        run("vision.edges", {"width": 4096, "height": 4096})


def test_every_kind_has_an_agent() -> None:
    served = {kind for agent in AGENTS for kind in agent.kinds}
    assert served == set(handlers.KINDS)
    for agent in AGENTS:
        for kind in agent.kinds:
            assert domain_of(kind) in agent.labels


def test_workload_mix_and_intentional_failures() -> None:
    wl = build_workload(3000, seed=1)
    assert len(wl.specs) == 3000 and len(wl.failing) == 30
    for i in wl.failing:
        assert wl.specs[i].kind == FAILING_KIND and wl.specs[i].payload == {"numbers": []}
    kinds = {s.kind for s in wl.specs}
    assert kinds == set(handlers.KINDS)
    assert all(s.required_labels == {domain_of(s.kind): 1} for s in wl.specs)
    assert build_workload(3000, seed=1) == wl
    assert build_workload(10).failing == frozenset()
    # every non-failing spec runs cleanly through its handler
    for i, spec in enumerate(wl.specs[:200]):
        if i not in wl.failing:
            run(spec.kind, spec.payload)


def test_percentile() -> None:
    assert percentile([], 99) != percentile([], 99)  # NaN
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile(list(reversed(values)), 100) == 100.0


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _done(task_id: str, kind: str, agent: str, ms: float, ok: bool = True) -> TaskInfo:
    outcome = TaskOutcome(output=b'{"r": 1}' if ok else b"", error="" if ok else "boom", duration_us=500)
    return TaskInfo(
        task_id=task_id,
        state=TaskState.SUCCEEDED if ok else TaskState.FAILED,
        spec=TaskSpec(kind),
        attempt=1,
        agent_id=agent,
        outcome=outcome,
        created_at=T0,
        finished_at=T0 + timedelta(milliseconds=ms),
    )


def test_agent_rows_and_summary() -> None:
    wl = build_workload(4, seed=1)
    wl = type(wl)(specs=wl.specs, failing=frozenset({3}))
    results = {
        "a": _done("a", "text.wordcount", "text-agent", 10),
        "b": _done("b", "math.primes", "math-agent", 20),
        "c": _done("c", "math.primes", "math-agent", 40),
        "d": _done("d", "math.stats", "math-agent", 5, ok=False),
    }
    rows = agent_rows(list(results.values()))
    assert rows[0] == ("math-agent", 3, 1, "21.67", "40.00", "0.50")
    assert rows[1][:3] == ("text-agent", 1, 0)
    assert rows[-1][:3] == ("total", 4, 1)
    outcome = Outcome(wl, ["a", "b", "c", "d"], results, submit_s=0.01, wall_s=0.5, intentional={"d"})
    outcome.stats = ClusterStats(succeeded_total=3, failed_total=1)
    text, ok = summarize(outcome)
    assert ok
    assert "4 submitted, 4 distinct task ids, 4 finished - ok" in text
    assert "1 math.stats tasks with an empty list, 1 failed as designed" in text
    assert "unexpected       0 failures" in text
    assert "8 tasks/s" in text
    # an unexpected failure or a lost task makes the run incorrect
    results["b"] = _done("b", "math.primes", "math-agent", 20, ok=False)
    assert not summarize(outcome)[1]
    del results["b"]
    assert not summarize(outcome)[1]


def test_child_command_lines(tmp_path: Path) -> None:
    ready = tmp_path / "coordinator.json"
    assert coordinator_command(ready) == [
        sys.executable, "-m", "coordinator", "--listen", "127.0.0.1:0", "--ready-file", str(ready),
    ]  # fmt: skip
    text_agent = AGENTS[0]
    assert sidecar_command(text_agent, "127.0.0.1:4000", tmp_path / "text.json") == [
        sys.executable, "-m", "agent_sidecar", "--coordinator", "127.0.0.1:4000", "--agent-id", "text-agent",
        "--label", "text=3", "--label", "lang=2",
        "--kinds", "text.wordcount,text.sentiment,text.summarize", "--capacity", "8",
        "--handler", "swarmmesh.demo.handlers:dispatch", "--ready-file", str(tmp_path / "text.json"),
    ]  # fmt: skip
    assert [a.agent_id for a in AGENTS] == ["text-agent", "math-agent", "vision-agent"]
    assert [a.labels for a in AGENTS] == [{"text": 3, "lang": 2}, {"math": 3}, {"vision": 2}]
