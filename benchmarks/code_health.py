"""Static measures of how easy kcompile is to grow, printed as one report.

- op-name checks outside ``ir/ops``: comparisons of ``.op`` with a string or a set of
  strings (``node.op == "relu"``, ``node.op in {...}``), i.e. knowledge about an op that
  lives away from its registry entry;
- import circles: strongly connected components of the project's module import graph,
  once for module-level imports and once counting imports inside functions too;
- private reaches: ``x._name`` where ``x`` is not ``self``/``cls`` and ``_name`` is a
  private attribute or method of the model classes (``MODEL_CLASSES``), i.e. one object
  reaching into a model's or a layer's internals;
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


# The classes whose private names another object should not touch: a model, its layers and
# its training loop.
MODEL_CLASSES = (
    "Model",
    "Trainer",
    "TrainingLoop",
    "Layer",
    "Sequential",
    "ModelSteps",  # what Trainer held, now a component of Model
    "LoadedModel",
    "ArtifactSteps",
)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _class_privates(cls: ast.ClassDef) -> set[str]:
    """Private names a class defines: its methods and class attributes, and the
    ``self._x`` its methods assign."""
    names: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return {n for n in names if _is_private(n)}


def model_privates() -> dict[str, set[str]]:
    """{private name: the modules that define it on one of ``MODEL_CLASSES``}, over
    ``kcompile/``."""
    names: dict[str, set[str]] = {}
    for path in sorted((ROOT / "kcompile").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name in MODEL_CLASSES:
                for name in _class_privates(node):
                    names.setdefault(name, set()).add(where)
    return names


def _is_own(node: ast.AST) -> bool:
    """``self``, ``cls`` or ``super()``: an object reaching into itself."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def private_reaches(across_modules: bool = True) -> list[str]:
    """``path:line x._name`` for every access under ``kcompile/`` of a model class's
    private name (``model_privates``) on an object other than ``self``/``cls``/
    ``super()``. With ``across_modules``, only from a module that does not define the
    name (a module's own helpers may use its private names, as Python's convention has
    it). Found by name, not type: ``t._history`` counts if a model class defines
    ``_history``."""
    private = model_privates()
    found = []
    for path in sorted((ROOT / "kcompile").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not _is_own(node.value)
                and not (across_modules and where in private[node.attr])
            ):
                found.append((where, node.lineno, ast.unparse(node)))
    return [f"{where}:{line} {text}" for where, line, text in sorted(found)]


def named_private_reaches() -> list[str]:
    """``getattr(x, "_name")`` (and ``hasattr``/``setattr``) of a model class's private
    name on an object other than ``self``: the same reach, spelled so that
    ``private_reaches`` does not see it; listed beside it, from every module."""
    private = model_privates()
    found = []
    for path in sorted((ROOT / "kcompile").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in private
                and not _is_own(node.args[0])
            ):
                found.append((where, node.lineno, ast.unparse(node)))
    return [f"{where}:{line} {text}" for where, line, text in sorted(found)]


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
    reaches = private_reaches()
    within = len(private_reaches(across_modules=False)) - len(reaches)
    print(
        f"private reaches into model classes ({', '.join(MODEL_CLASSES)}) across modules: "
        f"{len(reaches)} (and {within} within the defining modules)"
    )
    for reach in reaches:
        print("  " + reach)
    named = named_private_reaches()
    print(f"the same through getattr/hasattr/setattr with the name: {len(named)}")
    for reach in named:
        print("  " + reach)
    print(f"longest {args.top} functions:")
    for length, where in longest_functions(args.top):
        print(f"  {length:4d}  {where}")


if __name__ == "__main__":
    main()
