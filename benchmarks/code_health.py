"""Static measures of how easy kcompile is to grow, printed as one report.

- op-name checks outside ``ir/ops``: comparisons of ``.op`` with a string or a set of
  strings (``node.op == "relu"``, ``node.op in {...}``), i.e. knowledge about an op that
  lives away from its registry entry;
- import circles: strongly connected components of the project's module import graph,
  once for module-level imports and once counting imports inside functions too;
- the longest functions.

Usage: ``python benchmarks/code_health.py [--top N]``.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ir", "passes", "codegen", "kcompile")


def _module_name(path: Path) -> str:
    """The installed name: ``ir/graph.py`` is ``kcompile.ir.graph``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] != "kcompile":
        parts.insert(0, "kcompile")
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _is_op_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "op"


def _names_strings(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Set | ast.Tuple | ast.List):
        return bool(node.elts) and all(_names_strings(e) for e in node.elts)
    # A module-level table of op names: an upper-case name.
    return isinstance(node, ast.Name) and node.id.isupper()


def op_name_checks(path: Path) -> list[int]:
    """Lines where an ``.op`` attribute is compared with op names."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if any(_is_op_attribute(o) for o in operands) and any(_names_strings(o) for o in operands):
            lines.append(node.lineno)
    return lines


def _resolve(name: str, known: set[str]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(include_deferred: bool) -> nx.DiGraph:
    files = {_module_name(p): p for p in source_files()}
    known = set(files)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if include_deferred else iter(tree.body)
        for node in nodes:
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from package import module`` imports the module, else the package.
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                    for a in node.names
                ]
            for target in targets:
                resolved = _resolve(target, known)
                if resolved and resolved != module:
                    graph.add_edge(module, resolved)
    return graph


def import_circles(include_deferred: bool) -> list[list[str]]:
    graph = import_graph(include_deferred)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    return sorted(circles, key=len, reverse=True)


def longest_functions(top: int) -> list[tuple[int, str]]:
    found = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                found.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()

    checks = {
        path: op_name_checks(path)
        for path in source_files()
        if "ir/ops/" not in path.relative_to(ROOT).as_posix()
    }
    checks = {p: lines for p, lines in checks.items() if lines}
    total = sum(len(lines) for lines in checks.values())
    print(f"op-name checks outside ir/ops: {total} in {len(checks)} files")
    for path, lines in sorted(checks.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(lines):3d}  {path.relative_to(ROOT)}")
    for deferred in (False, True):
        circles = import_circles(deferred)
        kind = "all imports" if deferred else "module-level imports"
        sizes = [len(c) for c in circles]
        print(f"import circles ({kind}): {len(circles)}, sizes {sizes}")
        for circle in circles:
            print("  " + " ".join(circle))
    print(f"longest {args.top} functions:")
    for length, where in longest_functions(args.top):
        print(f"  {length:4d}  {where}")


if __name__ == "__main__":
    main()
