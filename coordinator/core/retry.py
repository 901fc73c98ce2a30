"""Retry policies per task kind: which failed attempts run again, after how long,
and when a task has had its chances and becomes a dead letter.

Like the rest of the core this is clock-free (time is passed in) and its only
randomness, the backoff's jitter, comes from the `random.Random` the core was
given, so the simulator and the tests replay the same schedule. The decisions
are here; MeshCore applies them, every state change through its `_transition`.
The rules a user sees are written down in docs/retries.md.
"""

from __future__ import annotations

import enum
import heapq
import random
from dataclasses import dataclass, field
from typing import TypeVar

from coordinator.core.model import CoreError, StatusCode, TaskRecord, TaskSpec, TaskState

# Error types a policy retries when it does not say which: what a handler's
# exception reports (the sidecar's type for any exception, and the one a
# handler sets to call a failure transient).
DEFAULT_RETRY_ON = frozenset({"handler_error", "transient"})
# Never retried, whatever a policy lists: the task's own time budget is spent,
# or a client asked for it to stop.
NEVER_RETRY = frozenset({"deadline_exceeded", "cancelled"})
ANY_ERROR = "*"
# A policy under this kind applies to every kind without one of its own.
ANY_KIND = "*"
# The exponent of the backoff stops growing here: the cap has long been reached,
# and a float power of a large attempt number would overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one task kind's failed attempts are retried."""

    # Attempts in all, the first one included; 0 = the coordinator's default.
    # A task's own TaskSpec.max_attempts, when set, wins.
    max_attempts: int = 0
    # Backoff before attempt n + 1, in seconds: a uniform draw from
    # [0, min(max_s, initial_s * multiplier ** (n - 1))] ("full jitter").
    initial_s: float = 1.0
    multiplier: float = 2.0
    max_s: float = 60.0
    # TaskOutcome.error_type values that retry; "*" = every type but NEVER_RETRY.
    retry_on: frozenset[str] = DEFAULT_RETRY_ON

    def retries(self, error_type: str) -> bool:
        if error_type in NEVER_RETRY:
            return False
        return error_type in self.retry_on or ANY_ERROR in self.retry_on

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after attempt `attempt` (1-based) failed."""
        cap = min(self.max_s, self.initial_s * self.multiplier ** min(attempt - 1, _MAX_EXPONENT))
        return rng.uniform(0.0, cap) if cap > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RetryConfig:
    # (kind, policy) pairs; the kind "*" covers kinds without their own. Kinds
    # with no policy at all never retry a handler's failure.
    policies: tuple[tuple[str, RetryPolicy], ...] = field(default_factory=tuple)


class Verdict(enum.Enum):
    FAIL = "fail"  # final: the error is not one the kind retries
    RETRY = "retry"  # back to PENDING, after the backoff
    DEAD_LETTER = "dead_letter"  # it would retry, but the attempts are spent


class Retries:
    """The policies, and the tasks waiting out a backoff before they queue again.

    A waiting task is PENDING with `retry_at` set; it is in no queue until
    `due` hands it back. A task that leaves PENDING meanwhile (cancelled,
    expired) leaves a stale entry behind, dropped when it comes due: entries
    live at most one backoff (max_s), so they cannot pile up.
    """

    def __init__(self, config: RetryConfig, default_max_attempts: int, rng: random.Random) -> None:
        self._policies = dict(config.policies)
        self._fallback = self._policies.pop(ANY_KIND, None)
        self._default_max_attempts = default_max_attempts
        self._rng = rng
        self._waiting: list[tuple[float, int, TaskRecord]] = []

    def policy(self, kind: str) -> RetryPolicy | None:
        return self._policies.get(kind, self._fallback)

    def max_attempts(self, spec: TaskSpec) -> int:
        """Attempts one run of the task may take (a requeue starts a new run)."""
        if spec.max_attempts:
            return spec.max_attempts
        p = self.policy(spec.kind)
        return p.max_attempts if p is not None and p.max_attempts else self._default_max_attempts

    def judge(self, rec: TaskRecord, error_type: str, now: float) -> tuple[Verdict, float]:
        """What follows the failed attempt rec.attempt, and the backoff in seconds for a retry."""
        p = self._policies.get(rec.spec.kind, self._fallback)
        if p is None or not p.retries(error_type):
            return Verdict.FAIL, 0.0
        tried = rec.attempt - rec.run_start
        if tried >= rec.max_attempts:
            return Verdict.DEAD_LETTER, 0.0
        delay = p.backoff_s(tried, self._rng)
        if rec.deadline is not None and now + delay >= rec.deadline:
            # The retry could not start before the task's deadline: its time is spent.
            return Verdict.FAIL, 0.0
        return Verdict.RETRY, delay

    def rearm(self, rec: TaskRecord, now: float, default_timeout_ms: int) -> None:
        """Ready a dead letter for a new run: a full budget of attempts, and its
        deadline (if it has one) counted again from now. Attempt numbers go on
        counting, since they fence late results of the earlier run."""
        rec.last_failure, rec.outcome, rec.finished_at = rec.outcome, None, None
        rec.run_start = rec.attempt
        timeout_ms = rec.spec.timeout_ms or default_timeout_ms
        if timeout_ms:
            rec.deadline = now + timeout_ms / 1000

    # -- the backoff's waiting set ----------------------------------------------

    def hold(self, rec: TaskRecord, due: float) -> None:
        rec.retry_at = due
        heapq.heappush(self._waiting, (due, rec.seq, rec))

    def forget(self, rec: TaskRecord) -> None:
        """rec stops waiting (it left PENDING); its entry goes stale."""
        rec.retry_at = None

    def due(self, now: float) -> list[TaskRecord]:
        """The waiting tasks whose backoff has run out, to be queued again."""
        heap = self._waiting
        out: list[TaskRecord] = []
        while heap and heap[0][0] <= now:
            due, _, rec = heapq.heappop(heap)
            if rec.retry_at == due and rec.state is TaskState.PENDING:
                rec.retry_at = None
                out.append(rec)
        return out

    def __len__(self) -> int:
        """Entries held, stale ones included (what memory the waiting set pins)."""
        return len(self._waiting)


def retry_reason(rec: TaskRecord, now: float) -> str:
    """Why a task waiting out its backoff is PENDING."""
    o = rec.last_failure
    error = (o.error or o.error_type) if o is not None else "an error"
    wait = max(0.0, (rec.retry_at or now) - now)
    return f"retrying in {wait:.1f} s after attempt {rec.attempt} failed: {error}"


def check_requeue(recs: list[TaskRecord]) -> None:
    """All or nothing: every task must be a dead letter."""
    for rec in recs:
        if rec.state is not TaskState.DEAD_LETTER:
            raise CoreError(
                StatusCode.FAILED_PRECONDITION,
                f"task {rec.task_id!r} is {rec.state.name}, not DEAD_LETTER: only dead letters can be requeued",
            )


# -- the one-line form of a policy (flags and environment) -------------------------

POLICY_FORM = "KIND=max_attempts:N,backoff:INITIAL-MAX,multiplier:M,on:TYPE|TYPE"
_KEYS = ("max_attempts", "backoff", "multiplier", "on")
_MAX_BACKOFF_S = 86_400.0
_N = TypeVar("_N", int, float)


def parse_retry_policies(text: str) -> tuple[tuple[str, RetryPolicy], ...]:
    """"KIND=key:value,...;KIND2=..." -> (kind, policy) pairs; ValueError naming the bad part.

    e.g. "ocr=max_attempts:5,backoff:0.5-30,on:timeout|transient;*=max_attempts:3"."""
    out: dict[str, RetryPolicy] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kind, sep, body = part.partition("=")
        kind = kind.strip()
        if not sep or not kind:
            raise ValueError(f"retry_policy: {part!r} is not {POLICY_FORM}")
        if kind in out:
            raise ValueError(f"retry_policy: kind {kind!r} has two policies")
        out[kind] = _parse_policy(kind, body)
    return tuple(out.items())


def format_retry_policies(policies: tuple[tuple[str, RetryPolicy], ...]) -> str:
    """The one-line form parse_retry_policies reads back."""
    return ";".join(
        f"{kind}=max_attempts:{p.max_attempts},backoff:{p.initial_s:g}-{p.max_s:g},multiplier:{p.multiplier:g},"
        f"on:{'|'.join(sorted(p.retry_on))}"
        for kind, p in policies
    )


def _parse_policy(kind: str, body: str) -> RetryPolicy:
    values: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in body.split(","))):
        key, sep, raw = (s.strip() for s in item.partition(":"))
        if not sep or key not in _KEYS:
            raise ValueError(f"retry_policy[{kind!r}]: {item!r} is not KEY:VALUE with KEY one of {', '.join(_KEYS)}")
        if key in values:
            raise ValueError(f"retry_policy[{kind!r}]: {key} is given twice")
        values[key] = raw
    p = RetryPolicy()
    try:
        max_attempts = _number(values.get("max_attempts", "0"), "max_attempts", int, 0, 1000)
        initial_s, max_s = p.initial_s, p.max_s
        if "backoff" in values:
            first, dash, last = values["backoff"].partition("-")
            initial_s = _number(first, "backoff", float, 0.0, _MAX_BACKOFF_S)
            max_s = _number(last, "backoff", float, initial_s, _MAX_BACKOFF_S) if dash else max(initial_s, p.max_s)
        multiplier = _number(values.get("multiplier", str(p.multiplier)), "multiplier", float, 1.0, 100.0)
        retry_on = p.retry_on
        if "on" in values:
            retry_on = frozenset(t.strip() for t in values["on"].split("|"))
            if "" in retry_on:
                raise ValueError(f"on: {values['on']!r} names an empty error type")
            never = sorted(retry_on & NEVER_RETRY)
            if never:
                raise ValueError(f"on: {', '.join(never)} is never retried (the task's deadline, or a cancel, is final)")
    except ValueError as e:
        raise ValueError(f"retry_policy[{kind!r}]: {e}") from None
    return RetryPolicy(max_attempts, initial_s, multiplier, max_s, retry_on)


def _number(raw: str, key: str, kind: type[_N], low: _N, high: _N) -> _N:
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # NaN fails both comparisons
        raise ValueError(f"{key}: {raw!r} is not a number from {low:g} to {high:g}")
    return value
