"""Nested structures of tensors (lists, tuples, namedtuples, deques, dicts), as Keras's
``keras.tree``: a layer's inputs, an op's arguments.

As in Keras, ``None`` is a leaf, and a dict's leaves come in the order of its sorted keys
(an ``OrderedDict``'s in its own order); a rebuilt dict keeps the key order of the dict it
was made from, so ``pack_sequence_as(structure, flatten(structure))`` gives ``structure``.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import Any


class MAP_TO_NONE:  # Keras spells it so
    """What a ``traverse`` function returns to put ``None`` in the result."""


def is_nested(structure: Any) -> bool:
    """Whether ``structure`` is a list, tuple, deque or dict (a node, not a leaf)."""
    return isinstance(structure, list | tuple | dict | deque)


def _keys(d: dict) -> list:
    if isinstance(d, OrderedDict):
        return list(d)
    try:
        return sorted(d)
    except TypeError:  # keys that do not sort (Keras refuses them): their own order
        return list(d)


def _children(node: Any) -> list[tuple[Any, Any]]:
    """(key or index, child) in flattening order."""
    if isinstance(node, dict):
        return [(k, node[k]) for k in _keys(node)]
    return list(enumerate(node))


def _rebuild(node: Any, values: list) -> Any:
    """A node of ``node``'s type whose children, in flattening order, are ``values``."""
    if isinstance(node, dict):
        by_key = dict(zip(_keys(node), values, strict=True))
        items = [(k, by_key[k]) for k in node]
        if isinstance(node, defaultdict):
            return defaultdict(node.default_factory, items)
        return type(node)(items) if type(node) in (dict, OrderedDict) else dict(items)
    if isinstance(node, deque):
        return deque(values, maxlen=node.maxlen)
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return type(node)(*values)
    return type(node)(values) if type(node) in (list, tuple) else list(values)


def _is_leaf(x: Any, none_is_leaf: bool = True) -> bool:
    return not is_nested(x) and (none_is_leaf or x is not None)


def flatten(structure: Any) -> list:
    """The leaves, in order (``None`` is a leaf; dicts by sorted key)."""
    leaves: list = []

    def walk(x: Any) -> None:
        if is_nested(x):
            for _, child in _children(x):
                walk(child)
        else:
            leaves.append(x)

    walk(structure)
    return leaves


def flatten_with_path(structure: Any) -> list[tuple[tuple, Any]]:
    """``(path, leaf)`` pairs in flattening order; a path is the tuple of keys and
    indices from the top."""
    out: list = []

    def walk(path: tuple, x: Any) -> None:
        if is_nested(x):
            for key, child in _children(x):
                walk((*path, key), child)
        else:
            out.append((path, x))

    walk((), structure)
    return out


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b)
    if type(a) is not type(b):
        return False
    return len(a) == len(b)


def assert_same_structure(a: Any, b: Any, check_types: bool | None = None) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` nest alike: nodes of the same type (any
    dicts with the same keys match; a list does not match a tuple) and the same sizes.
    ``check_types`` has no effect, as in Keras."""

    def walk(x: Any, y: Any, path: tuple) -> None:
        if is_nested(x) != is_nested(y) or (is_nested(x) and not _same_kind(x, y)):
            raise ValueError(
                "The two structures don't have the same nested structure: at path "
                f"{path}, {_kind(x)} against {_kind(y)}"
            )
        if is_nested(x):
            ys = dict(_children(y)) if isinstance(y, dict) else None
            for key, child in _children(x):
                walk(child, ys[key] if ys is not None else y[key], (*path, key))

    walk(a, b, ())


def _kind(x: Any) -> str:
    if not is_nested(x):
        return f"a leaf ({type(x).__name__})"
    return f"a {type(x).__name__} of {len(x)}"


def assert_same_paths(a: Any, b: Any) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same leaf paths, whatever the
    node types (a list matches a tuple)."""
    a_paths = {p for p, _ in flatten_with_path(a)}
    b_paths = {p for p, _ in flatten_with_path(b)}
    if a_paths != b_paths:
        msg = "`a` and `b` don't have the same paths."
        if a_paths - b_paths:
            msg += f"\nPaths in `a` missing in `b`:\n{a_paths - b_paths}"
        if b_paths - a_paths:
            msg += f"\nPaths in `b` missing in `a`:\n{b_paths - a_paths}"
        raise ValueError(msg)


def map_structure(func: Callable[..., Any], *structures: Any, none_is_leaf: bool = True) -> Any:
    """The structure of the first argument with ``func`` applied to the leaves of all
    structures at each position (they must nest alike), in flattening order. With
    ``none_is_leaf=False`` a ``None`` stays ``None`` and ``func`` does not see it."""
    if not callable(func):
        raise TypeError(f"map_structure: `func` must be callable, got {func!r}")
    if not structures:
        raise TypeError("map_structure: give at least one structure")
    for other in structures[1:]:
        assert_same_structure(structures[0], other)

    def walk(xs: tuple) -> Any:
        first = xs[0]
        if not is_nested(first):
            if not none_is_leaf and first is None:
                return None
            return func(*xs)
        columns = [[c for _, c in _children(x)] for x in xs]
        return _rebuild(first, [walk(group) for group in zip(*columns, strict=True)])

    return walk(structures)


def map_structure_up_to(shallow_structure: Any, func: Callable[..., Any], *structures: Any) -> Any:
    """``map_structure`` down to the leaves of ``shallow_structure`` only: ``func`` gets
    the sub-structures of ``structures`` found there, kept as they are."""
    if not structures:
        raise TypeError("map_structure_up_to: give at least one structure")

    def walk(shallow: Any, xs: tuple, path: tuple) -> Any:
        if not is_nested(shallow):
            return func(*xs)
        for x in xs:
            if not is_nested(x) or not _same_kind(shallow, x):
                raise ValueError(
                    "map_structure_up_to: the structures do not match the shallow "
                    f"structure at path {path}: {_kind(x)} where it has {_kind(shallow)}"
                )
        children = [dict(_children(x)) for x in xs]
        out = [
            walk(child, tuple(c[key] for c in children), (*path, key))
            for key, child in _children(shallow)
        ]
        return _rebuild(shallow, out)

    return walk(shallow_structure, structures, ())


def pack_sequence_as(structure: Any, flat_sequence: Any) -> Any:
    """``structure`` with its leaves replaced, in flattening order (a dict's sorted
    keys), by the items of ``flat_sequence``."""
    leaves = list(flat_sequence)
    count = len(flatten(structure))
    if len(leaves) != count:
        raise ValueError(
            f"pack_sequence_as: the structure has {count} leaves but the flat sequence "
            f"has {len(leaves)} items"
        )
    it = iter(leaves)
    return map_structure(lambda _: next(it), structure)


def traverse(func: Callable[[Any], Any], structure: Any, top_down: bool = True) -> Any:
    """Keras's ``traverse``: ``func`` on every node and leaf; a result other than None
    replaces that sub-structure (``MAP_TO_NONE`` replaces it by None). Top-down, a
    replaced node's children are not visited; bottom-up, ``func`` sees the node with its
    children already traversed."""

    def children() -> Any:
        if not is_nested(structure):
            return structure
        kids = [traverse(func, c, top_down) for _, c in _children(structure)]
        return _rebuild(structure, kids)

    if top_down:
        ret = func(structure)
        if ret is None:
            return children()
    else:
        done = children()
        ret = func(done)
        if ret is None:
            return done
    return None if ret is MAP_TO_NONE else ret


def lists_to_tuples(structure: Any) -> Any:
    """The structure with every list made a tuple."""
    return traverse(lambda x: tuple(x) if isinstance(x, list) else None, structure, False)


def _is_shape(x: Any) -> bool:
    return isinstance(x, list | tuple) and all(isinstance(e, int | type(None)) for e in x)


def map_shape_structure(func: Callable[[Any], Any], structure: Any) -> Any:
    """``map_structure`` where a list or tuple of ints and Nones (a shape) is a leaf."""
    if _is_shape(structure) or not is_nested(structure):
        return func(structure)
    kids = [map_shape_structure(func, c) for _, c in _children(structure)]
    return _rebuild(structure, kids)


__all__ = [
    "MAP_TO_NONE",
    "assert_same_paths",
    "assert_same_structure",
    "flatten",
    "flatten_with_path",
    "is_nested",
    "lists_to_tuples",
    "map_shape_structure",
    "map_structure",
    "map_structure_up_to",
    "pack_sequence_as",
    "traverse",
]
