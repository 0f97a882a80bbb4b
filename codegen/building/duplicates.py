"""Merging a module's functions that are the same but for their names, before LLVM sees it.

A model repeats itself: the blocks of a ResNet, the optimizer's update of weights of one
shape, the gradients of twin layers. Their kernels lower to functions that differ only in
their names (``k18_fused_epilogue`` and ``k24_fused_epilogue``), and LLVM would optimize
and compile each copy: 27% of the lines of the example ResNet's train step, 37% of the
Conv1D's. Each set of equal functions keeps its first; calls to the others call it.

Two functions are equal when their texts are, with each one's own name and the names of
functions already found equal replaced by one name (so callers of equal callees become
equal in turn, up to a fixed point). Only internal functions merge (nothing outside the
module names them), and only when every reference to one that goes away is an operand
of an instruction, which is redirected; any other reference (a constant expression, a
global's initializer) leaves the module as it is.
"""

from __future__ import annotations

import re

from llvmlite import ir

# llvmlite quotes every global name: @"name", with \22 and \5c escapes inside.
_REFERENCE = re.compile(r'@"((?:[^"\\]|\\[0-9a-fA-F]{2})*)"')
_SELF = "\0self"


def merge_duplicates(module: ir.Module) -> int:
    """Merge ``module``'s equal internal functions into one each; returns how many went."""
    defined = [f for f in module.functions if f.blocks]
    # Each text as literal pieces and the global names between them (odd indices).
    pieces = {f.name: _REFERENCE.split(str(f)) for f in defined}
    names = set(pieces)
    same: dict[str, str] = {}  # function -> the function it equals (itself if first)
    for _ in range(len(defined) + 1):
        first: dict[str, str] = {}
        found = {}
        for f in defined:
            key = _key(f.name, pieces[f.name], names, same)
            found[f.name] = first.setdefault(key, f.name) if f.linkage == "internal" else f.name
        if found == same:
            break
        same = found
    gone = {name: rep for name, rep in same.items() if name != rep}
    if not gone or not _redirectable(module, defined, pieces, gone):
        return 0
    by_name = {f.name: f for f in defined}
    for f in defined:
        if f.name in gone:
            continue
        changed = False
        for block in f.blocks:
            touched = False
            for instr in block.instructions:
                operands = getattr(instr, "operands", None)
                if not operands or not any(_gone(op, gone) for op in operands):
                    continue
                new = [by_name[gone[op.name]] if _gone(op, gone) else op for op in operands]
                instr.operands = type(operands)(new)
                instr._clear_string_cache()
                touched = True
            if touched:
                block._clear_string_cache()
                changed = True
        if changed:
            f._clear_string_cache()
    for name in gone:
        del module.globals[name]
    return len(gone)


def _key(name: str, parts: list[str], names: set[str], same: dict[str, str]) -> str:
    out = list(parts)
    for i in range(1, len(out), 2):
        ref = out[i]
        out[i] = _SELF if ref == name else same.get(ref, ref) if ref in names else ref
    return '@"'.join(out)


def _gone(value, gone: dict[str, str]) -> bool:
    return isinstance(value, ir.Function) and value.name in gone


def _redirectable(
    module: ir.Module, defined: list[ir.Function], pieces: dict[str, list[str]], gone
) -> bool:
    """Whether every reference to a function in ``gone``, from a function that stays, is
    an instruction's operand (and no global variable names one)."""
    for g in module.global_values:
        if not isinstance(g, ir.Function) and any(
            ref in gone for ref in _REFERENCE.findall(str(g))
        ):
            return False
    for f in defined:
        if f.name in gone:
            continue
        named = sum(ref in gone for ref in pieces[f.name][1::2])
        if not named:
            continue
        operands = sum(
            _gone(op, gone)
            for block in f.blocks
            for instr in block.instructions
            for op in getattr(instr, "operands", ())
        )
        if operands != named:
            return False
    return True
