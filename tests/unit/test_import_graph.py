"""tools/import_graph.py: it finds circles and private imports, and the packages have none."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_checker() -> ModuleType:
    # tools/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


checker = load_checker()


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def tangled(tmp_path: Path) -> Path:
    """A package with each kind of problem, each hidden the way real code hides it."""
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        # a -> b only for type checkers, b -> a only when f() runs: still a circle.
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "pkg/b.py": "class B: ...\ndef f():\n    from . import a\n    return a\n",
        # sub.e -> d -> sub.c: no two modules import each other, but the packages do.
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "_x = 1\n",
        "pkg/sub/e.py": "from pkg import d\n",
        "pkg/d.py": "import pkg.sub.c as c\nfrom .sub.c import _x\nfrom pkg.sub.c import __name__ as n\nY = c._x\n",
    })
    return tmp_path


def test_circles_are_found_through_type_checking_function_level_and_relative_imports(tangled: Path) -> None:
    found = checker.problems(tangled, ["pkg"])
    assert "cycle: pkg.a -> pkg.b -> pkg.a" in found
    assert "package cycle: pkg.d -> pkg.sub -> pkg.d" in found
    assert not any(line.startswith("cycle: pkg.d") for line in found)


def test_private_names_are_found_imported_or_reached_through_a_module(tangled: Path) -> None:
    found = [line for line in checker.problems(tangled, ["pkg"]) if line.startswith("private:")]
    assert found == ["private: pkg.d:2 uses pkg.sub.c._x", "private: pkg.d:4 uses pkg.sub.c._x"]


def test_the_exit_status_says_whether_anything_was_found(
    tangled: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path_factory.mktemp("clean")
    write_tree(clean, {"ok/__init__.py": "from ok import low\n", "ok/low.py": "import os\n", "ok/high.py": "from . import low\n"})
    assert checker.main(["--root", str(clean), "ok"]) == 0
    assert capsys.readouterr().out == ""
    assert checker.main(["--root", str(tangled), "pkg"]) == 1
    assert "cycle: pkg.a -> pkg.b -> pkg.a" in capsys.readouterr().out
    assert checker.main(["--root", str(clean), "missing"]) == 2


def test_the_sidecar_and_the_coordinator_have_no_circles_and_no_private_imports() -> None:
    assert checker.problems(ROOT, ["agent_sidecar"]) == []
    assert checker.problems(ROOT, ["coordinator"]) == []
