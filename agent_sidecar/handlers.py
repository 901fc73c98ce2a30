"""Handler adapters: what a handler sees (TaskContext), what it may return, how it is found.

A handler is any callable `handler(ctx: TaskContext) -> bytes | str | dict | list |
int | float | bool | Result | None`, or an `async def` with the same shape. It is
named in configuration as "module:function" (a dotted attribute path after the
colon is allowed, e.g. "pkg.mod:Class.method").
"""

from __future__ import annotations

import importlib
import inspect
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent_sidecar.config import ANY_KIND

OCTET_STREAM = "application/octet-stream"
TEXT_PLAIN = "text/plain"
APPLICATION_JSON = "application/json"

Handler = Callable[["TaskContext"], Any]


class HandlerLoadError(ValueError):
    """A handler spec could not be turned into a callable."""


class _CancelFlag:
    # A plain attribute rather than threading.Event: handlers only poll it, and
    # an Event (lock + condition) per task costs more than the rest of the context.
    __slots__ = ("is_set",)

    def __init__(self) -> None:
        self.is_set = False


@dataclass(frozen=True, slots=True)
class Result:
    """Explicit handler output, for when the content type matters."""

    output: bytes
    content_type: str = OCTET_STREAM


@dataclass(frozen=True, slots=True)
class TaskContext:
    """One attempt of one task, as handed to a handler."""

    task_id: str
    attempt: int
    kind: str
    payload: bytes
    content_type: str
    tenant: str
    priority: int
    # time.monotonic() value after which the coordinator gives up on this
    # attempt; None when the assignment carried no time limit.
    deadline: float | None
    # W3C trace context ("traceparent", "tracestate") of the task's trace.
    trace_context: Mapping[str, str]
    agent_id: str
    cache_key: str = ""
    dependencies: tuple[str, ...] = ()
    # Set when the attempt is cancelled, past its deadline or the sidecar stops.
    # A sync handler's thread cannot be interrupted, so long loops should poll
    # `cancelled()` to give their slot back early.
    _cancel: _CancelFlag = field(default_factory=_CancelFlag, repr=False, compare=False)
    # Filled by depends_on(); None (not an empty list) so that tasks which
    # never declare anything pay nothing for it.
    _declared: list[str] | None = field(default=None, repr=False, compare=False)

    def depends_on(self, *names: str) -> None:
        """Declare more names this result is built from, beyond the task's own
        dependencies: a document id, or the cache key of another result it used.
        Invalidating any of them drops this result from the cache."""
        declared = self._declared
        if declared is None:
            declared = []
            object.__setattr__(self, "_declared", declared)
        declared.extend(str(n) for n in names if n)

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)

    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")

    def remaining(self) -> float | None:
        """Seconds until the deadline (may be negative), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def cancelled(self) -> bool:
        """True once the result of this attempt is no longer wanted."""
        return self._cancel.is_set


def dependencies_of(ctx: TaskContext) -> tuple[str, ...]:
    """The task's dependencies plus the ones its handler declared."""
    declared = ctx._declared
    return ctx.dependencies + tuple(declared) if declared else ctx.dependencies


def context_for_rerun(ctx: TaskContext, *, attempt: int, deadline: float | None) -> TaskContext:
    """Another run of the same task: a cancel of `ctx` does not reach it, and
    it declares its dependencies afresh."""
    return replace(ctx, attempt=attempt, deadline=deadline, _cancel=_CancelFlag(), _declared=None)


def request_cancel(ctx: TaskContext) -> None:
    """Tell a running handler (via ctx.cancelled()) that its result is no longer wanted."""
    ctx._cancel.is_set = True


def to_output(value: object) -> tuple[bytes, str]:
    """Convert a handler's return value to (output bytes, content type).

    Raises TypeError/ValueError for values that have no faithful wire form
    (arbitrary objects, NaN/Infinity in JSON), which the runner reports as a
    handler error rather than guessing.
    """
    if value is None:
        return b"", ""
    if isinstance(value, Result):
        return bytes(value.output), value.content_type
    if isinstance(value, bytes):
        return value, OCTET_STREAM
    if isinstance(value, bytearray | memoryview):
        return bytes(value), OCTET_STREAM
    if isinstance(value, str):
        return value.encode("utf-8"), TEXT_PLAIN
    if isinstance(value, dict | list | tuple | int | float | bool):
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8"), APPLICATION_JSON
    raise TypeError(
        f"handler returned {type(value).__name__}; expected bytes, str, dict, list, number, bool, Result or None"
    )


def load_handler(spec: str) -> Handler:
    """Import "module:function" and return the callable it names."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise HandlerLoadError(f"handler {spec!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerLoadError(f"handler {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerLoadError(
                f"handler {spec!r}: {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(obj):
        raise HandlerLoadError(f"handler {spec!r}: {attr_path!r} is a {type(obj).__name__}, not callable")
    return obj  # type: ignore[no-any-return]


def is_async_handler(fn: Handler) -> bool:
    """True for `async def` functions, partials of them and objects with an async __call__."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects, not a callability test
    return call is not None and inspect.iscoroutinefunction(call)


@dataclass(frozen=True, slots=True)
class HandlerEntry:
    fn: Handler
    # Decided once at registration; the runner picks thread pool or event loop from it.
    is_async: bool
    name: str


class HandlerRegistry:
    """Task kind -> handler, with an optional default for every other kind."""

    def __init__(self) -> None:
        self._by_kind: dict[str, HandlerEntry] = {}
        self._default: HandlerEntry | None = None

    @classmethod
    def from_specs(cls, handlers: Mapping[str, str], default: str | None = None) -> HandlerRegistry:
        """Load every "module:function" spec now, so a typo fails at startup."""
        registry = cls()
        for kind, spec in handlers.items():
            registry.register(kind, load_handler(spec), name=spec)
        if default is not None:
            registry.register(ANY_KIND, load_handler(default), name=default)
        return registry

    def register(self, kind: str, fn: Handler, *, name: str | None = None) -> None:
        """Add or replace the handler for `kind` ("*" = the default handler)."""
        if not callable(fn):
            raise HandlerLoadError(f"handler for kind {kind!r} is not callable")
        entry = HandlerEntry(fn=fn, is_async=is_async_handler(fn), name=name or _callable_name(fn))
        if kind == ANY_KIND:
            self._default = entry
        else:
            self._by_kind[kind] = entry

    def lookup(self, kind: str) -> HandlerEntry | None:
        return self._by_kind.get(kind, self._default)

    def __len__(self) -> int:
        return len(self._by_kind) + (self._default is not None)

    @property
    def has_default(self) -> bool:
        return self._default is not None

    def advertised_kinds(self, configured: Iterable[str] = ()) -> list[str]:
        """Kinds to put in Register: the configured ones, else what the handlers cover.

        An empty list tells the coordinator "every kind", which is only true
        with a default handler.
        """
        configured = list(configured)
        if configured:
            missing = [k for k in configured if self.lookup(k) is None]
            if missing:
                raise ValueError(f"kinds: no handler for {', '.join(map(repr, missing))}")
            return configured
        if self._default is not None:
            return []
        return sorted(self._by_kind)


def _callable_name(fn: Handler) -> str:
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"
