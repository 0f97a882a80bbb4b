"""Splitting a model's module into parts that compile in parallel.

llvmlite runs every LLVM call of a process under one lock, so two threads do not
compile faster than one; two processes do. A module is cut into ``parts`` modules of
about equal size along its kernels (each ``k<N>_…`` group: a node's kernel, its
parallel chunks, a loop body's kernels, their constant data), the entry functions go
to the smallest part, and the math helpers every kernel inlines are copied into each.
A function called from another part loses its internal linkage, and a mutable global
(profile counters, guard words) is defined in the entry functions' part and declared in
the others; the parts' object files are loaded into one engine, whose linker resolves
the references between them.

Kernels are not inlined into the step across parts; they are called, as every kernel of
a large step already is (``step.INLINE_LIMIT``). The numbers computed do not change.
"""

from __future__ import annotations

import re

from llvmlite import ir

_GROUP = re.compile(r"k\d+_")
_REFERENCE = re.compile(r'@"([^"]+)"|@([-\w.$]+)')


def split_module(module: ir.Module, parts: int) -> list[str]:
    """The text of ``module`` as up to ``parts`` modules that together define each of its
    functions once; one part (its whole text) when it cannot be cut."""
    defined = [f for f in module.functions if not f.is_declaration]
    if parts < 2:
        return [str(module)]
    shared = {f.name for f in defined if "alwaysinline" in f.attributes}
    texts = {f.name: str(f) for f in defined}
    units: dict[str, list[ir.Function]] = {}
    for f in defined:
        if f.name not in shared:
            group = _GROUP.match(f.name)
            units.setdefault(group.group(0) if group else "", []).append(f)
    if len(units) < 2:
        return [str(module)]
    parts = min(parts, len(units))  # no part without a kernel of its own
    placement = _balance(units, texts, parts)
    part_of = {f.name: p for key, fs in units.items() for f in fs for p in [placement[key]]}
    crossing = _called_across(texts, part_of)
    home = placement.get("", 0)
    return [_part_text(module, defined, part_of, shared, crossing, p, home) for p in range(parts)]


def _balance(
    units: dict[str, list[ir.Function]], texts: dict[str, str], parts: int
) -> dict[str, int]:
    """Each unit's part: largest first onto the lightest part, with size in text lines
    as the measure of LLVM's work."""
    size = {key: sum(texts[f.name].count("\n") for f in fs) for key, fs in units.items()}
    load = [0] * parts
    placement = {}
    for key in sorted(size, key=lambda k: (-size[k], k)):
        p = min(range(parts), key=lambda i: (load[i], i))
        placement[key] = p
        load[p] += size[key]
    return placement


def _called_across(texts: dict[str, str], part_of: dict[str, int]) -> set[str]:
    """Functions referenced from a function in another part."""
    crossing = set()
    for name, text in texts.items():
        here = part_of.get(name)
        for quoted, bare in _REFERENCE.findall(text):
            callee = quoted or bare
            if callee in part_of and here is not None and part_of[callee] != here:
                crossing.add(callee)
    return crossing


def _part_text(
    module: ir.Module,
    defined: list[ir.Function],
    part_of: dict[str, int],
    shared: set[str],
    crossing: set[str],
    part: int,
    home: int,
) -> str:
    """The module's text with the functions of other parts declared only, and the
    mutable globals declared only unless ``part`` is their ``home``."""
    saved = [(f, f.blocks, f.linkage) for f in defined]
    mutable = [
        g
        for g in module.global_values
        if isinstance(g, ir.GlobalVariable) and not g.global_constant
    ]
    kept = [(g, g.initializer, g.linkage) for g in mutable]
    try:
        for g in mutable:
            g.linkage = ""  # one copy, shared by the parts
            if part != home:
                g.initializer = None
        for f in defined:
            if f.name in shared:
                continue
            if part_of[f.name] != part:
                f.blocks = []
                f.linkage = ""
            elif f.name in crossing:
                f.linkage = ""
        _forget_text(mutable)
        return str(module)
    finally:
        for f, blocks, linkage in saved:
            f.blocks, f.linkage = blocks, linkage
        for g, initializer, linkage in kept:
            g.initializer, g.linkage = initializer, linkage
        _forget_text(mutable)


def _forget_text(values: list) -> None:
    """llvmlite caches a global variable's text on first print: drop it after an edit."""
    for v in values:
        v._clear_string_cache()
