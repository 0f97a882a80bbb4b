"""``keras.ops``'s control flow: ``cond``, ``switch``, ``while_loop``, ``fori_loop``,
``scan``, ``map``, ``vectorized_map``, ``associative_scan``.

A compiled kcompile step is one straight-line graph of static shapes, so control flow is
resolved while tracing:

- a loop whose trip count is known while tracing (Python bounds, a static leading axis,
  ``maximum_iterations``) is unrolled, one copy of its body per iteration;
- a branch on a traced predicate computes both branches and selects each output
  element-wise (the same values as Keras's, since the branches are functions without
  side effects; both branches run, so both must be valid on the operands);
- on concrete arrays (eager) a branch or loop runs as Python runs it.

What cannot be resolved so (a ``while_loop`` on traced values with no
``maximum_iterations``) raises ``NotImplementedError`` naming it and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kcompile import tree
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor
from kcompile.ops import composite as C
from kcompile.ops import numpy as N
from kcompile.ops.core import unsupported


def _is_traced(x: Any) -> bool:
    return any(isinstance(leaf, TracedTensor) for leaf in tree.flatten(x))


def _refuse_symbolic(name: str, *xs: Any) -> None:
    if any(isinstance(leaf, KerasTensor) for leaf in tree.flatten(xs)):
        raise unsupported(
            name, "on the functional API's symbolic tensors; call it inside a layer's call()"
        )


def _select(pred: Any, a: Any, b: Any) -> Any:
    """``a`` where ``pred`` else ``b``, leaf by leaf of two alike structures."""
    return tree.map_structure(lambda x, y: N.where(pred, x, y), a, b)


def cond(pred: Any, true_fn: Callable, false_fn: Callable) -> Any:
    _refuse_symbolic("cond", pred)
    if not isinstance(pred, TracedTensor):
        return true_fn() if bool(np.asarray(pred)) else false_fn()
    return _select(pred, true_fn(), false_fn())


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """``branches[index](*operands)``; an index out of range is clamped, as jax's."""
    _refuse_symbolic("switch", index, operands)
    last = len(branches) - 1
    if not isinstance(index, TracedTensor):
        return branches[int(np.clip(int(np.asarray(index)), 0, last))](*operands)
    index = N.clip(index, 0, last)
    out = branches[last](*operands)
    for i in range(last - 1, -1, -1):
        out = _select(N.equal(index, i), branches[i](*operands), out)
    return out


def _as_args(loop_vars: Any) -> tuple[tuple, bool]:
    """Keras's loop functions take the loop variables spread when they are a list or a
    tuple, and as one argument otherwise."""
    if isinstance(loop_vars, list | tuple):
        return tuple(loop_vars), True
    return (loop_vars,), False


def while_loop(
    cond: Callable, body: Callable, loop_vars: Any, maximum_iterations: int | None = None
) -> Any:
    _refuse_symbolic("while_loop", loop_vars)
    args, spread = _as_args(loop_vars)

    def step(values: tuple) -> tuple:
        out = body(*values)
        return tuple(out) if spread else (out,)

    if not _is_traced(args):
        count = 0
        while (maximum_iterations is None or count < maximum_iterations) and bool(
            np.asarray(cond(*args))
        ):
            args, count = step(args), count + 1
        return type(loop_vars)(args) if spread else args[0]
    if maximum_iterations is None:
        raise unsupported(
            "while_loop",
            "on traced tensors without maximum_iterations: the number of iterations "
            "depends on the values, and a compiled step has a static shape; give "
            "maximum_iterations (the loop is unrolled that many times)",
        )
    active = cond(*args)
    for _ in range(int(maximum_iterations)):
        stepped = step(args)
        args = tuple(_select(active, new, old) for new, old in zip(stepped, args))
        active = N.logical_and(active, cond(*args))
    return type(loop_vars)(args) if spread else args[0]


def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any) -> Any:
    """``body_fun(i, value)`` for i in ``range(lower, upper)``, unrolled: the bounds must
    be numbers (or concrete arrays)."""
    if isinstance(lower, TracedTensor | KerasTensor) or isinstance(
        upper, TracedTensor | KerasTensor
    ):
        raise unsupported(
            "fori_loop",
            "with traced bounds: the number of iterations must be known while tracing "
            "(Python ints)",
        )
    value = init_val
    for i in range(int(np.asarray(lower)), int(np.asarray(upper))):
        value = body_fun(i, value)
    return value


def _length(xs: Any, name: str) -> int:
    leaves = tree.flatten(xs)
    if not leaves:
        raise ValueError(f"{name}: no elements to iterate over")
    length = N.shape(leaves[0])[0]
    if not isinstance(length, int):
        raise unsupported(name, "over the batch dimension: the number of iterations must be static")
    return length


def _item(xs: Any, i: int) -> Any:
    return tree.map_structure(lambda x: N.getitem(x, i), xs)


def _stacked(items: list) -> Any:
    return tree.map_structure(lambda *leaves: N.stack(list(leaves), axis=0), *items)


def scan(
    f: Callable,
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
) -> tuple[Any, Any]:
    """jax's ``lax.scan``, unrolled over the static leading axis of ``xs`` (or
    ``length`` steps with ``xs=None``): returns the last carry and the stacked outputs."""
    _refuse_symbolic("scan", init, xs)
    steps = _length(xs, "scan") if xs is not None else length
    if steps is None:
        raise ValueError("scan: give xs or length")
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    carry, ys = init, {}
    for i in order:
        carry, ys[i] = f(carry, None if xs is None else _item(xs, i))
    outputs = [ys[i] for i in range(steps)]
    if not outputs or outputs[0] is None:
        return carry, None
    return carry, _stacked(outputs)


def map(f: Callable, xs: Any) -> Any:
    _refuse_symbolic("map", xs)
    return _stacked([f(_item(xs, i)) for i in range(_length(xs, "map"))])


def vectorized_map(function: Callable, elements: Any) -> Any:
    """``function`` on each slice of ``elements`` along its leading (static) axis, the
    results stacked: the same as Keras's, computed one slice at a time."""
    _refuse_symbolic("vectorized_map", elements)
    return _stacked(
        [function(_item(elements, i)) for i in range(_length(elements, "vectorized_map"))]
    )


def associative_scan(f: Callable, elems: Any, reverse: bool = False, axis: int = 0) -> Any:
    """The running ``f``-combination of ``elems`` along ``axis`` (``f`` associative), done
    in order: ``out[i] = f(out[i - 1], elems[i])``."""
    _refuse_symbolic("associative_scan", elems)
    moved = tree.map_structure(lambda x: C.moveaxis(x, axis, 0), elems)
    steps = _length(moved, "associative_scan")
    order = list(range(steps - 1, -1, -1) if reverse else range(steps))
    outs: dict[int, Any] = {}
    previous = None
    for i in order:
        item = _item(moved, i)
        previous = item if previous is None else f(previous, item)
        outs[i] = previous
    stacked = _stacked([outs[i] for i in range(steps)])
    return tree.map_structure(lambda x: C.moveaxis(x, 0, axis), stacked)


__all__ = [
    "associative_scan",
    "cond",
    "fori_loop",
    "map",
    "scan",
    "switch",
    "vectorized_map",
    "while_loop",
]
