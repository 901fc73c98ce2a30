"""Helpers shared by the integration tests: real processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def assert_eventually(cond: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> T:
    """Poll until cond() is truthy; return its value. Never a fixed sleep."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except Exception as e:  # the condition may race a process coming up
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {what or cond}; last error: {last_exc!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    # Keep children off any collector and quiet unless debugging.
    env.setdefault("OTEL_SDK_DISABLED", "true")
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
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def coordinator_args(ready: Path, listen: str = "127.0.0.1:0", *extra: str) -> list[str]:
    return [sys.executable, "-m", "coordinator", "--listen", listen, "--ready-file", str(ready), *extra]


def sidecar_args(address: str, agent_id: str, ready: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agent_sidecar", "--coordinator", address, "--agent-id", agent_id,
            "--ready-file", str(ready), *extra]
