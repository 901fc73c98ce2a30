"""Checks on what callers send, each failure naming the offending field."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.model import CoreError, Registration, StatusCode, TaskSpec

MAX_ID_CHARS = 128
MAX_LABEL_LEVEL = 100
MAX_PRIORITY = 1000
MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000
MAX_ATTEMPTS = 100
MAX_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits on accepted input (bytes and counts)."""

    max_payload_bytes: int = 4 * 1024 * 1024
    max_batch: int = 10_000
    max_labels: int = 64
    max_dependencies: int = 256
    max_key_chars: int = 512
    max_trace_entries: int = 16


def invalid(field: str, problem: str) -> CoreError:
    return CoreError(StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")


def too_large(size: int, limits: Limits) -> str:
    """Why a payload or a result's output of `size` bytes is refused, naming the setting."""
    return f"is {size} bytes, the limit is {limits.max_payload_bytes} (max_payload_bytes)"


def _name_problem(value: str, max_chars: int, required: bool) -> str:
    """What is wrong with a name, or "" (runs for several fields of every task: keep it lean)."""
    if not value:
        return "is required" if required else ""
    if len(value) > max_chars:
        return f"is {len(value)} characters, the limit is {max_chars}"
    # A printable character that is whitespace can only be the ASCII space: every other one
    # is in a Unicode "Other" or "Separator" category, which isprintable() rejects.
    if not value.isprintable() or " " in value:
        return f"{value[:40]!r} has whitespace or control characters"
    return ""


def check_name(field: str, value: str, max_chars: int = MAX_ID_CHARS, *, required: bool = True) -> None:
    problem = _name_problem(value, max_chars, required)
    if problem:
        raise invalid(field, problem)


def check_labels(field: str, labels: tuple[tuple[str, int], ...], limits: Limits) -> None:
    if len(labels) > limits.max_labels:
        raise invalid(field, f"has {len(labels)} labels, the limit is {limits.max_labels}")
    for name, level in labels:
        check_name(f"{field}[{name[:40]!r}]", name, 64)
        if not 0 <= level <= MAX_LABEL_LEVEL:
            raise invalid(f"{field}[{name!r}]", f"level {level} is outside 0..{MAX_LABEL_LEVEL}")


def check_spec(index: int, spec: TaskSpec, limits: Limits) -> None:
    # Field names are formatted only for a problem: this runs for every task submitted.
    problem = _name_problem(spec.kind, MAX_ID_CHARS, True)
    if problem:
        raise invalid(f"tasks[{index}].kind", problem)
    if len(spec.payload) > limits.max_payload_bytes:
        # Over a limit, not malformed: the same bytes fit a coordinator configured for more.
        raise CoreError(StatusCode.RESOURCE_EXHAUSTED,
                        f"tasks[{index}].payload: {too_large(len(spec.payload), limits)}")
    ct = spec.content_type
    # Spaces are allowed: parameters are part of a media type ("text/plain; charset=utf-8").
    if len(ct) > MAX_ID_CHARS:
        raise invalid(f"tasks[{index}].content_type", f"is {len(ct)} characters, the limit is {MAX_ID_CHARS}")
    if ct and not ct.isprintable():
        raise invalid(f"tasks[{index}].content_type", f"{ct[:40]!r} has control characters")
    if spec.required_labels:
        check_labels(f"tasks[{index}].required_labels", spec.required_labels, limits)
    if spec.preferred_labels:
        check_labels(f"tasks[{index}].preferred_labels", spec.preferred_labels, limits)
    if not -MAX_PRIORITY <= spec.priority <= MAX_PRIORITY:
        raise invalid(f"tasks[{index}].priority", f"{spec.priority} is outside -{MAX_PRIORITY}..{MAX_PRIORITY}")
    problem = _name_problem(spec.tenant, MAX_ID_CHARS, True)
    if problem:
        raise invalid(f"tasks[{index}].tenant", problem)
    if spec.timeout_ms > MAX_TIMEOUT_MS:
        raise invalid(f"tasks[{index}].timeout_ms", f"{spec.timeout_ms} is more than 7 days")
    if len(spec.idempotency_key) > limits.max_key_chars:
        raise invalid(f"tasks[{index}].idempotency_key", f"is longer than {limits.max_key_chars} characters")
    if len(spec.cache_key) > limits.max_key_chars:
        raise invalid(f"tasks[{index}].cache_key", f"is longer than {limits.max_key_chars} characters")
    if len(spec.dependencies) > limits.max_dependencies:
        raise invalid(f"tasks[{index}].dependencies", f"has {len(spec.dependencies)} entries, the limit is {limits.max_dependencies}")
    for i, dep in enumerate(spec.dependencies):
        check_name(f"tasks[{index}].dependencies[{i}]", dep, limits.max_key_chars)
    if len(spec.trace_context) > limits.max_trace_entries:
        raise invalid(f"tasks[{index}].trace_context", f"has more than {limits.max_trace_entries} entries")
    for key, value in spec.trace_context:
        if len(key) > 64 or len(value) > 1024:
            raise invalid(f"tasks[{index}].trace_context[{key[:40]!r}]", "key over 64 or value over 1024 characters")
    if spec.max_attempts > MAX_ATTEMPTS:
        raise invalid(f"tasks[{index}].max_attempts", f"{spec.max_attempts} is more than {MAX_ATTEMPTS}")


def check_batch(specs: list[TaskSpec], limits: Limits) -> None:
    if not specs:
        raise invalid("tasks", "is empty: submit at least one task")
    if len(specs) > limits.max_batch:
        raise invalid("tasks", f"has {len(specs)} tasks, the limit per call is {limits.max_batch}")
    for i, spec in enumerate(specs):
        check_spec(i, spec, limits)


def check_registration(reg: Registration, limits: Limits) -> None:
    check_name("register.agent_id", reg.agent_id)
    check_labels("register.labels", reg.labels, limits)
    for i, kind in enumerate(sorted(reg.kinds)):
        check_name(f"register.kinds[{i}]", kind)
    if not 1 <= reg.capacity <= MAX_CAPACITY:
        raise invalid("register.capacity", f"{reg.capacity} is outside 1..{MAX_CAPACITY}")
    if reg.credits > reg.capacity:
        raise invalid("register.credits", f"{reg.credits} is more than capacity {reg.capacity}")
    if len(reg.held) > reg.capacity:
        raise invalid("register.held", f"{len(reg.held)} tasks is more than capacity {reg.capacity}")
    check_name("register.version", reg.version, required=False)
