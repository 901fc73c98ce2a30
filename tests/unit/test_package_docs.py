"""Each package's docstring is its module map: one line per module, `name: its job`.

The map is kept where the modules are, so this test holds it to the code: a
module (a .py file or a subpackage) missing from its package's docstring
fails, and so does a line naming a module that no longer exists. The files
are parsed, not imported, so a package with heavy imports costs nothing here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A package added to the tree is added here, with its map in its __init__.py.
PACKAGES = [
    "coordinator",
    "coordinator/core",
    "coordinator/profile",
    "coordinator/service",
    "coordinator/metrics",
    "coordinator/journal",
    "swarmmesh",
    "swarmmesh/telemetry",
    "swarmmesh/demo",
    "bench",
    "simulator",
    "agent_sidecar",
    "agent_sidecar/runner",
    "agent_sidecar/cache",
    "agent_sidecar/connection",
]

# Generated code documents itself (protos/); __init__ is the map itself, and
# __main__ may be named but need not be.
NOT_REQUIRED = {"swarmmesh/v1", "__init__", "__main__"}

# `name: job`, or `name/: job` for a subpackage, at the start of a line, the
# name optionally in backticks or after a list bullet. Module names are lower
# case, which keeps prose such as "Modules:" or "Example::" out.
_ENTRY = re.compile(r"^\s*(?:[-*]\s+)?`?([a-z_][a-z0-9_]*)/?`?\s*:(?!:)")


def modules_of(package: Path) -> set[str]:
    """The package's modules and subpackages, by the names its map uses."""
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names


def named_in(docstring: str) -> set[str]:
    return {m.group(1) for line in docstring.splitlines() if (m := _ENTRY.match(line))}


def docstring_of(package: Path) -> str:
    return ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""


@pytest.mark.parametrize("name", PACKAGES)
def test_package_docstring_names_every_module(name: str) -> None:
    package = ROOT / name
    present = modules_of(package)
    required = {m for m in present if m not in NOT_REQUIRED and f"{name}/{m}" not in NOT_REQUIRED}
    named = named_in(docstring_of(package))
    assert sorted(required - named) == [], f"{name}/__init__.py's docstring does not name these modules"
    assert sorted(named - present) == [], f"{name}/__init__.py's docstring names modules that do not exist"


def test_entries_are_read_from_lines_that_start_with_a_module_name() -> None:
    doc = "\n".join([
        "The package: what it does.",
        "",
        "Modules:",
        "",
        "runner: runs things: with a colon in the job",
        "    cache_path: indented",
        "- `outbox`: a bullet in backticks",
        "sub/: a subpackage",
        "Example::",
        "    value = call(x): not an entry",
        "see runner: prose that starts with another word",
    ])
    assert named_in(doc) == {"runner", "cache_path", "outbox", "sub"}


def test_a_package_lists_its_modules_and_subpackages(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text('"""Map.\n\nalpha: one\n"""\n', encoding="utf-8")
    (tmp_path / "alpha.py").write_text("", encoding="utf-8")
    (tmp_path / "__main__.py").write_text("", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "data").mkdir()  # not a package: no __init__.py
    assert modules_of(tmp_path) == {"alpha", "__main__", "sub"}
    assert named_in(docstring_of(tmp_path)) == {"alpha"}
