"""DESIGN.md's import rules, checked on the source: ir imports neither passes, codegen nor
the front end; passes and codegen import ir and not each other; no import circle anywhere,
counting the imports inside functions."""

from __future__ import annotations

from benchmarks.code_health import import_circles, import_graph

ALLOWED = {
    "ir": {"ir"},
    "passes": {"ir", "passes"},
    "codegen": {"ir", "codegen"},
    "front end": {"ir", "passes", "codegen", "front end"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in {"ir", "passes", "codegen"}:
        return parts[1]
    return "front end"


def test_every_import_follows_the_layering():
    graph = import_graph(include_deferred=True)
    assert graph.number_of_edges() > 200
    against = [f"{a} imports {b}" for a, b in graph.edges if _layer(b) not in ALLOWED[_layer(a)]]
    assert against == []


def test_no_module_level_import_circle():
    assert import_circles(include_deferred=False) == []


def test_no_import_circle_even_through_deferred_imports():
    """Counting imports inside functions too: no module of the compiler or the front end
    reaches itself (a deferred import that closes a circle hides a layering mistake)."""
    assert import_circles(include_deferred=True) == []


def test_every_package_is_installed():
    """Each package folder of the source is in pyproject.toml's ``packages`` (a wheel
    leaves out any other: ``import kcompile.report`` would fail once installed)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"kcompile": "kcompile", **config["package-dir"]}
    found = set()
    for name, folder in folders.items():
        for init in (root / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(root / folder).parts
            found.add(".".join((name, *relative)))
    assert found - set(config["packages"]) == set()
