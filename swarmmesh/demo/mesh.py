"""A throwaway local mesh: one coordinator and some sidecars as child processes.

Children start in their own session so a Ctrl-C in the terminal reaches only
the demo, which then stops them in order: sidecars first (they drain), then
the coordinator. Every child writes its log to the work directory.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from swarmmesh.client import AsyncClient
from swarmmesh.demo.workload import DemoAgent
from swarmmesh.errors import SwarmMeshError
from swarmmesh.types import AgentState

__all__ = ["DEFAULT_HANDLER", "LocalMesh", "MeshError", "coordinator_command", "sidecar_command"]

DEFAULT_HANDLER = "swarmmesh.demo.handlers:dispatch"
_POLL_S = 0.05


class MeshError(RuntimeError):
    """The local mesh could not be started (the message includes the log tail)."""


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"


def coordinator_command(
    ready_file: Path, *, python: str = sys.executable, extra: Sequence[str] = (), journal: Path | None = None
) -> list[str]:
    """`journal`: the coordinator's journal file. A coordinator on port 0 needs one (or
    `--unsafe-no-journal` in `extra`): it has no fixed address to name a default file after."""
    where = ["--journal", str(journal)] if journal is not None else []
    return [python, "-m", "coordinator", "--listen", "127.0.0.1:0", "--ready-file", str(ready_file), *where,
            *extra]


def sidecar_command(
    agent: DemoAgent,
    coordinator: str,
    ready_file: Path,
    *,
    handler: str = DEFAULT_HANDLER,
    python: str = sys.executable,
) -> list[str]:
    cmd = [python, "-m", "agent_sidecar", "--coordinator", coordinator, "--agent-id", agent.agent_id]
    for name, level in agent.labels.items():
        cmd += ["--label", f"{name}={level}"]
    cmd += [
        "--kinds",
        ",".join(agent.kinds),
        "--capacity",
        str(agent.capacity),
        "--handler",
        handler,
        "--ready-file",
        str(ready_file),
    ]
    return cmd


def _child_env(workdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env["PYTHONUNBUFFERED"] = "1"
    # Sidecars' default result caches go in the work directory, so a throwaway
    # mesh leaves nothing behind and every run starts cold.
    env["XDG_CACHE_HOME"] = str(workdir / "cache")
    # Make the sibling packages importable even from a plain source checkout.
    root = Path(__file__).resolve().parents[2]
    if (root / "coordinator").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    # Without a collector configured, do not let the tracer try to export.
    if not any(k in env for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        env.setdefault("OTEL_SDK_DISABLED", "true")
    return env


def _read_ready_file(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or caught half-written
    return data if isinstance(data, dict) and data.get("address") else None


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class _Child:
    def __init__(self, name: str, cmd: list[str], workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=workdir,
                env=_child_env(workdir, env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise MeshError(
                f"{self.name} exited with code {code} during start-up\n"
                f"  command: {' '.join(self.cmd)}\n  last log lines ({self.log_path}):\n{log_tail(self.log_path)}"
            )

    def terminate(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def wait_or_kill(self, deadline: float) -> bool:
        """Wait until ``deadline`` (monotonic); kill if still running. True if it exited by itself."""
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False


class LocalMesh:
    """Start/stop a coordinator plus one sidecar per :class:`DemoAgent`."""

    def __init__(
        self,
        workdir: Path,
        agents: Sequence[DemoAgent],
        *,
        handler: str = DEFAULT_HANDLER,
        log: Callable[[str], None] = lambda _msg: None,
        coordinator_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`env`: variables added to the children's environment (e.g. OTEL_*)."""
        self.workdir = workdir
        self.env = dict(env or {})
        self.agents = tuple(agents)
        self.handler = handler
        self.coordinator_args = tuple(coordinator_args)
        self._log = log
        self._state = _State.NEW
        self._coordinator: _Child | None = None
        self._sidecars: list[_Child] = []
        self._address = ""

    @property
    def address(self) -> str:
        if not self._address:
            raise RuntimeError("the mesh is not running")
        return self._address

    def pids(self) -> dict[str, int]:
        """Process ids by name ("coordinator" and each agent id), for resource accounting."""
        out = {c.name: c.proc.pid for c in self._sidecars}
        if self._coordinator is not None:
            out["coordinator"] = self._coordinator.proc.pid
        return out

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def start(self, startup_timeout: float = 30.0) -> None:
        """Start the coordinator, then the sidecars; return once every agent is READY."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"cannot start a mesh that is {self._state.value}")
        self._state = _State.STARTING
        deadline = time.monotonic() + startup_timeout
        ready = self.workdir / "coordinator.json"
        # The journal lives and dies with the work directory, as everything else of a throwaway mesh.
        command = coordinator_command(ready, extra=self.coordinator_args, journal=self.workdir / "journal.sqlite")
        self._coordinator = _Child("coordinator", command, self.workdir, self.env)
        info = await self._await_ready_file(ready, self._coordinator, deadline)
        self._address = str(info["address"])
        self._log(
            f"coordinator listening on {self._address} (pid {info.get('pid', self._coordinator.proc.pid)})"
        )
        for agent in self.agents:
            cmd = sidecar_command(
                agent, self._address, self.workdir / f"{agent.agent_id}.json", handler=self.handler
            )
            self._sidecars.append(_Child(agent.agent_id, cmd, self.workdir, self.env))
        await self._await_agents_ready(deadline)
        self._state = _State.RUNNING

    async def _await_ready_file(self, path: Path, child: _Child, deadline: float) -> dict[str, object]:
        while True:
            child.check_alive()
            data = _read_ready_file(path)
            if data is not None:
                return data
            if time.monotonic() > deadline:
                raise MeshError(
                    f"{child.name} did not become ready; last log lines:\n{log_tail(child.log_path)}"
                )
            await asyncio.sleep(_POLL_S)

    async def _await_agents_ready(self, deadline: float) -> None:
        wanted = {a.agent_id for a in self.agents}
        seen: set[str] = set()
        async with AsyncClient(self._address, timeout=5.0) as client:
            while True:
                for child in (self._coordinator, *self._sidecars):
                    if child is not None:
                        child.check_alive()
                try:
                    agents = await client.agents()
                except SwarmMeshError:
                    agents = []
                ready = {a.agent_id for a in agents if a.state is AgentState.READY} & wanted
                for agent_id in sorted(ready - seen):
                    self._log(f"agent {agent_id} ready")
                seen |= ready
                if ready == wanted:
                    return
                if time.monotonic() > deadline:
                    missing = ", ".join(sorted(wanted - ready))
                    tails = "\n".join(
                        f"--- {c.name} ({c.log_path}):\n{log_tail(c.log_path, 8)}"
                        for c in self._sidecars
                        if c.name in wanted - ready
                    )
                    raise MeshError(f"agents not ready in time: {missing}\n{tails}")
                await asyncio.sleep(_POLL_S)

    def stop(self, grace: float = 10.0) -> None:
        """Stop sidecars (SIGTERM, they drain), then the coordinator; kill what hangs. Idempotent."""
        if self._state is _State.STOPPED:
            return
        self._state = _State.STOPPED
        children = [*self._sidecars, *([self._coordinator] if self._coordinator else [])]
        try:
            for child in self._sidecars:
                child.terminate()
            deadline = time.monotonic() + grace
            for child in self._sidecars:
                if not child.wait_or_kill(deadline):
                    self._log(f"{child.name} did not stop within {grace:.0f} s; killed")
            if self._coordinator is not None:
                self._coordinator.terminate()
                if not self._coordinator.wait_or_kill(time.monotonic() + grace):
                    self._log(f"coordinator did not stop within {grace:.0f} s; killed")
        except BaseException:
            # A second Ctrl-C while waiting: children live in their own
            # sessions and would outlive us, so force them down now.
            for child in children:
                child.kill()
            raise
