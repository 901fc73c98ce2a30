"""The coordinator's configuration: one frozen object, from flags and environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from coordinator.core.mesh import CoreConfig
from coordinator.core.validation import Limits


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Every field maps to a flag `--field-name` and an env var `SWARMMESH_FIELD_NAME`."""

    # host:port to serve on; port 0 picks a free port (see ready_file).
    listen: str = "127.0.0.1:7070"
    # Seconds between sidecar heartbeats (told to sidecars at registration).
    heartbeat_interval_s: float = 1.0
    # Seconds without any frame from a sidecar before its tasks are re-queued.
    lease_timeout_s: float = 10.0
    # Seconds between lease, deadline and retention sweeps.
    tick_interval_s: float = 0.2
    # Default task time budget in milliseconds; 0 = no deadline unless the task sets one.
    default_timeout_ms: int = 0
    # How many times a task may be handed out when agents die holding it.
    default_max_attempts: int = 5
    # Seconds past a deadline before the coordinator fails a task an agent still holds.
    deadline_grace_s: float = 2.0
    # Seconds a finished task (and its result) is kept; then it is dropped.
    result_retention_s: float = 3600.0
    # Finished tasks kept at most; the oldest are dropped first.
    max_retained_results: int = 100_000
    # Pending tasks at most; beyond it SubmitTasks answers RESOURCE_EXHAUSTED.
    max_queued_tasks: int = 1_000_000
    # Largest task payload accepted, in bytes.
    max_payload_bytes: int = 4 * 1024 * 1024
    # Most tasks in one SubmitTasks call.
    max_batch: int = 10_000
    # Largest gRPC message, in bytes (a batch of payloads must fit).
    max_message_bytes: int = 64 * 1024 * 1024
    # Seconds to let in-flight RPCs finish on shutdown.
    shutdown_grace_s: float = 5.0
    # If set, a JSON file {"address", "pid"} is written here once serving.
    ready_file: str = ""
    log_level: str = "INFO"

    def core(self) -> CoreConfig:
        return CoreConfig(
            limits=Limits(max_payload_bytes=self.max_payload_bytes, max_batch=self.max_batch),
            lease_timeout_s=self.lease_timeout_s,
            default_timeout_ms=self.default_timeout_ms,
            default_max_attempts=self.default_max_attempts,
            deadline_grace_s=self.deadline_grace_s,
            retention_s=self.result_retention_s,
            max_retained=self.max_retained_results,
            max_queued=self.max_queued_tasks,
        )

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="swarmmesh coordinator", description="Run the swarmmesh coordinator.")
        defaults = cls()
        for f in fields(cls):
            default = getattr(defaults, f.name)
            p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(default), default=None,
                           metavar=type(default).__name__.upper(),
                           help=f"(env SWARMMESH_{f.name.upper()}, default {default!r})")
        return p

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
                  ) -> CoordinatorConfig:
        """Flags override environment variables, which override defaults."""
        env = os.environ if env is None else env
        parser = cls.parser()
        ns = parser.parse_args(argv)
        defaults = cls()
        values: dict[str, object] = {}
        for f in fields(cls):
            kind = type(getattr(defaults, f.name))
            flag = getattr(ns, f.name)
            if flag is not None:
                values[f.name] = flag
            elif (raw := env.get(f"SWARMMESH_{f.name.upper()}")) is not None:
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    parser.error(f"SWARMMESH_{f.name.upper()}={raw!r} is not a valid {kind.__name__}")
        cfg = cls(**values)  # type: ignore[arg-type]
        problem = cfg.problem()
        if problem:
            parser.error(problem)
        return cfg

    def problem(self) -> str:
        """The first invalid setting, described; empty when all are valid."""
        if ":" not in self.listen:
            return f"listen: {self.listen!r} is not host:port"
        for name in ("heartbeat_interval_s", "lease_timeout_s", "tick_interval_s"):
            if getattr(self, name) <= 0:
                return f"{name}: must be positive"
        if self.lease_timeout_s <= self.heartbeat_interval_s:
            return "lease_timeout_s: must be longer than heartbeat_interval_s"
        for name in ("max_retained_results", "max_queued_tasks", "max_payload_bytes", "max_batch",
                     "default_max_attempts"):
            if getattr(self, name) < 1:
                return f"{name}: must be at least 1"
        if self.max_payload_bytes >= self.max_message_bytes:
            return "max_payload_bytes: must be smaller than max_message_bytes"
        return ""
