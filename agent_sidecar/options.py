"""What the sidecar's settings and its cache's settings are both built from.

The default agent id, the list syntax shared by flags and environment
variables, argparse's adapter for our parsers, and the rule that a flag
replaces its environment variable. Its own module so that config.py (which
holds the cache's settings) and cache/config.py (which needs the default agent
id to tell a temporary cache from a lasting one) both depend on it rather than
on each other.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any


def default_agent_id() -> str:
    """hostname-pid: unique per process on a host and readable in listings."""
    return f"{socket.gethostname()}-{os.getpid()}"


def split_list(text: str) -> list[str]:
    """ "a, b,,c" -> ["a", "b", "c"]: the list syntax of flags and env vars."""
    return [part.strip() for part in text.split(",") if part.strip()]


def arg_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """Adapt a ValueError-raising parser into an argparse type function."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


class FieldPicker:
    """Collects config fields: a flag's value, else its environment variable, parsed.

    Unset flags are None and empty variables count as unset, so `values` holds
    only what was given and the config's own defaults fill the rest.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.values: dict[str, Any] = {}

    def __call__(
        self, field_name: str, flag_value: object, env_name: str, parse: Callable[[str], object] = str
    ) -> None:
        """Raises ValueError naming `env_name` when its value does not parse."""
        if flag_value is not None:
            self.values[field_name] = flag_value
            return
        raw = self.env.get(env_name)
        if raw is None or raw.strip() == "":
            return
        try:
            self.values[field_name] = parse(raw.strip())
        except ValueError as exc:
            raise ValueError(f"{env_name}: {exc}") from None
