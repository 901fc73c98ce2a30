"""Check the import graph of packages: no cycles, no imports of another module's private names.

Usage:
    python tools/import_graph.py agent_sidecar coordinator     # exit 1 and print what is wrong
    python tools/import_graph.py --root /path/to/tree agent_sidecar

Every import statement counts, wherever it is: at the top, inside a function,
under `if TYPE_CHECKING:`. A function-level import that only dodges a circle
at run time still couples the two modules both ways, and a type-only import
still means one module cannot be read without the other. Absolute and relative
imports are both resolved; only modules of the given packages are nodes.

Two kinds of cycle are reported: between modules, and between the packages
one level below each given package (its subpackages and its top-level
modules), so that `runner` -> `cache` -> `runner` is caught even when no two
single modules import each other.

Importing a submodule also runs its parent's `__init__`, but that is not an
edge: otherwise every `__init__` that re-exports from its own modules would be
a cycle. What is checked is what the code names.

A private name is one with a single leading underscore. Naming it from another
module, as `from m import _x` or as `m._x` on an imported module, is reported:
whatever is shared belongs in the public surface of the module that owns it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PrivateUse:
    """`importer` names `owner`'s private `name` at `line`."""

    importer: str
    owner: str
    name: str
    line: int

    def __str__(self) -> str:
        return f"private: {self.importer}:{self.line} uses {self.owner}.{self.name}"


@dataclass(frozen=True, slots=True)
class Graph:
    """Module name -> the modules it imports, and the private names it uses."""

    edges: Mapping[str, frozenset[str]]
    private: tuple[PrivateUse, ...]


def discover(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        base = root / package.replace(".", "/")
        if not (base / "__init__.py").is_file():
            raise ValueError(f"{package}: no package at {base}")
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = path
    return found


def build(modules: Mapping[str, Path]) -> Graph:
    edges: dict[str, frozenset[str]] = {}
    private: list[PrivateUse] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        reader = _ModuleImports(name, path.name == "__init__.py", modules)
        reader.visit(tree)
        edges[name] = frozenset(reader.targets - {name})
        private.extend(reader.private)
    return Graph(edges, tuple(private))


def cycles(edges: Mapping[str, Iterable[str]]) -> list[tuple[list[str], set[str]]]:
    """Each strongly connected component with one of its shortest cycles, as [a, b, ..., a]."""
    found = []
    for component in _components(edges):
        start = min(component)
        if len(component) == 1 and start not in edges.get(start, ()):
            continue
        found.append((_shortest_cycle(edges, component, start), component))
    return sorted(found, key=lambda c: c[0])


def package_edges(edges: Mapping[str, Iterable[str]], packages: Iterable[str]) -> dict[str, frozenset[str]]:
    """Collapse modules into the subpackages one level below each root; top-level modules stay."""
    roots = tuple(packages)
    grouped: dict[str, set[str]] = {}
    for module, targets in edges.items():
        grouped.setdefault(_group(module, roots), set()).update(_group(t, roots) for t in targets)
    return {name: frozenset(targets - {name}) for name, targets in grouped.items()}


def problems(root: Path, packages: Sequence[str]) -> list[str]:
    """Every cycle and private use in `packages`, one line each; empty when clean."""
    graph = build(discover(root, packages))
    lines = [_describe("cycle", cycle, component) for cycle, component in cycles(graph.edges)]
    # A cycle of top-level modules only is the module cycle already listed.
    subpackages = {g for m in graph.edges if (g := _group(m, packages)) != m}
    lines += [
        _describe("package cycle", cycle, component)
        for cycle, component in cycles(package_edges(graph.edges, packages))
        if component & subpackages
    ]
    lines += [str(p) for p in sorted(graph.private, key=lambda p: (p.importer, p.line))]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("packages", nargs="+", help="dotted package names, relative to --root")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the tree's top directory (default: .)")
    args = parser.parse_args(argv)
    try:
        found = problems(args.root, args.packages)
    except (ValueError, SyntaxError) as exc:
        print(f"import_graph: {exc}", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    return 1 if found else 0


class _ModuleImports(ast.NodeVisitor):
    """The known modules one module imports, and the private names it takes from them."""

    def __init__(self, name: str, is_package: bool, known: Mapping[str, object]) -> None:
        self._name = name
        self._package = name if is_package else name.rpartition(".")[0]
        self._known = known
        self.targets: set[str] = set()
        self.private: list[PrivateUse] = []
        # Local names bound to known modules, for `alias._private` uses.
        self._aliases: dict[str, str] = {}

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = self._longest_known(alias.name)
            if target is None:
                continue
            self.targets.add(target)
            if alias.asname is not None:
                if target == alias.name:
                    self._aliases[alias.asname] = target
            elif (top := alias.name.split(".")[0]) in self._known:
                self._aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self._absolute(node)
        if source is None or source == "__future__":
            return
        owner = self._longest_known(source)
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self._known:
                self.targets.add(submodule)
                self._aliases[alias.asname or alias.name] = submodule
                continue
            if owner is None:
                continue
            self.targets.add(owner)
            if _is_private(alias.name) and owner != self._name:
                self.private.append(PrivateUse(self._name, owner, alias.name, node.lineno))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and _is_private(node.attr):
            owner = self._aliases.get(node.value.id)
            if owner is not None and owner != self._name:
                self.private.append(PrivateUse(self._name, owner, node.attr, node.lineno))
        self.generic_visit(node)

    def _absolute(self, node: ast.ImportFrom) -> str | None:
        if not node.level:
            return node.module
        parts = self._package.split(".") if self._package else []
        if node.level - 1 > len(parts):
            return None
        base = parts[: len(parts) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base) or None

    def _longest_known(self, dotted: str) -> str | None:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in self._known:
                return candidate
        return None


def _group(module: str, roots: Iterable[str]) -> str:
    for root in roots:
        if module.startswith(root + "."):
            return root + "." + module[len(root) + 1 :].split(".", 1)[0]
    return module


def _describe(what: str, cycle: list[str], component: set[str]) -> str:
    line = f"{what}: " + " -> ".join(cycle)
    others = sorted(component - set(cycle))
    return line + (f" (and, in the same circle, {', '.join(others)})" if others else "")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _components(edges: Mapping[str, Iterable[str]]) -> Iterator[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(edges.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    yield component


def _shortest_cycle(edges: Mapping[str, Iterable[str]], component: set[str], start: str) -> list[str]:
    """Breadth-first from `start` back to itself, inside its component."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(edges.get(node, ())):
            if target not in component:
                continue
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target not in previous:
                previous[target] = node
                queue.append(target)
    raise AssertionError(f"{start} is in a component but on no cycle")


if __name__ == "__main__":
    sys.exit(main())
