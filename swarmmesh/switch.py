"""An on/off setting written as text, as every process's flags and environment variables take it."""

from __future__ import annotations

__all__ = ["parse_switch"]

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "")


def parse_switch(text: str) -> bool:
    """1/true/yes/on or 0/false/no/off, any case; empty is off (an unset variable written as "")."""
    value = text.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{text!r} is not 1/true/yes/on or 0/false/no/off")
