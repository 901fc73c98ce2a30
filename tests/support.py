"""Helpers shared by the tests: polling, and real processes on loopback for the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TypeVar, cast

import psutil

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# gRPC core would otherwise route even loopback traffic through an http_proxy
# from the environment.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
# What tests and their children get instead of any inherited OTEL_* variable:
# no span or metric leaves the machine unless a test points it at its own receiver.
OTEL_ENV = {"OTEL_SDK_DISABLED": "true"}


def inherited_unwanted(name: str) -> bool:
    """Proxies could carry loopback traffic off the machine; an inherited
    OTEL_* (an SDK switch, or a per-signal endpoint that outranks the plain one
    a test sets) could send telemetry to a remote collector."""
    return name.lower().endswith("_proxy") or name.upper().startswith("OTEL_")


def _polls(cond: Callable[[], T], timeout: float, what: object) -> Generator[None, None, T]:
    """The polling of both faces below: yields whenever it is time to pause, returns cond()'s
    first truthy value, raises once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as e:  # the condition may race a process coming up
            last_exc = e
        yield
    raise AssertionError(f"condition not met within {timeout} s: {what or cond}; last error: {last_exc!r}")


def assert_eventually(cond: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    """Poll until cond() is truthy; return its value. Never a fixed sleep."""
    polls = _polls(cond, timeout, what)
    try:
        while True:
            next(polls)
            time.sleep(interval)
    except StopIteration as done:
        return cast(T, done.value)


async def eventually(cond: Callable[[], T], timeout: float = 10.0,  # noqa: ASYNC109 (the assertion's own limit)
                     what: str = "", interval: float = 0.002) -> T:
    """assert_eventually for code on the running event loop: it yields to the loop between polls."""
    polls = _polls(cond, timeout, what)
    try:
        while True:
            next(polls)
            await asyncio.sleep(interval)
    except StopIteration as done:
        return cast(T, done.value)


def stop_tree(proc: subprocess.Popen[str]) -> None:
    """End a process and everything under it. The CLI's demo and bench start
    their mesh processes detached (setsid), so killing the CLI alone would orphan them."""
    try:
        procs = [psutil.Process(proc.pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not inherited_unwanted(k)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(OTEL_ENV)
    env.update(extra or {})
    return env


class Proc:
    """A child process with a ready file; always ended by stop()."""

    def __init__(self, args: list[str], ready_file: Path, log_file: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.ready_file = ready_file
        self.log_file = log_file
        self._log = open(log_file, "ab")
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=child_env(env),
                                      cwd=str(REPO))

    def ready(self, timeout: float = 30.0) -> dict[str, object]:
        def check() -> dict[str, object] | None:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args[2]} exited with {self.popen.returncode}:\n{self.output()}")
            if self.ready_file.exists():
                return dict(json.loads(self.ready_file.read_text()))
            return None

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{self.args} not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_file.read_text(errors="replace")[-5000:]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(5)
        finally:
            self._log.close()
        return self.popen.returncode


def coordinator_args(ready: Path, listen: str = "127.0.0.1:0", *extra: str,
                     journal: Path | str | None = "journal.sqlite") -> list[str]:
    """`journal`: the coordinator's journal file, relative to the ready file's directory (the
    test's own); None runs it without one. A coordinator restarted in the same directory
    recovers the journal of the one before it."""
    where = ["--unsafe-no-journal"] if journal is None else ["--journal", str(ready.parent / journal)]
    return [sys.executable, "-m", "coordinator", "--listen", listen, "--ready-file", str(ready), *where, *extra]


def sidecar_args(address: str, agent_id: str, ready: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agent_sidecar", "--coordinator", address, "--agent-id", agent_id,
            "--ready-file", str(ready), *extra]
