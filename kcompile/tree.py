"""Nested structures of tensors (lists, tuples, dicts), as Keras's ``keras.tree``: a
layer's inputs, an op's arguments. Dicts keep their insertion order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """``structure`` with ``fn`` applied to each leaf, in order."""
    if isinstance(structure, list | tuple):
        return type(structure)(map_structure(fn, x) for x in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


def flatten(structure: Any) -> list:
    """The leaves, in order."""
    leaves: list = []
    map_structure(leaves.append, structure)
    return leaves


def pack_sequence_as(structure: Any, leaves: list) -> Any:
    """``structure`` with its leaves replaced, in order, by ``leaves``."""
    it = iter(leaves)
    return map_structure(lambda _: next(it), structure)
