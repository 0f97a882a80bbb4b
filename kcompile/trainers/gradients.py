"""Gradients inside a traced step: what a custom ``train_step`` differentiates with.

Keras 3's own custom steps differentiate with their backend (``jax.value_and_grad``,
``tf.GradientTape``, ``loss.backward()``), which cannot see kcompile's trace. These are
the two styles kcompile traces into the step's IR instead, so the backward pass is
compiled with the rest of the step (and optimized with it):

- ``value_and_grad(fn, argnums=0, has_aux=False)`` and ``grad``, as JAX's: ``fn`` is
  called on fresh copies of the differentiated arguments (any structure of tensors or
  variables), and the gradients are those of its scalar result through ``fn`` alone.
- ``GradientTape``, as TensorFlow's: ``tape.gradient(loss, sources)`` for variables
  (their values in the step) or tensors computed while the tape was open.

Both append the VJP rules of the ops involved (``ir.grad``) to the graph being traced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kcompile import tree
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.backend.variables import Variable
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.ir.grad import append_gradients
from kcompile.ops.core import Builder

__all__ = ["GradientTape", "grad", "value_and_grad"]


def _context(what: str):
    ctx = current_context()
    if ctx is None or not hasattr(ctx, "weight"):
        raise RuntimeError(
            f"kcompile.{what} differentiates inside a traced step: call it from a model's "
            "train_step (which fit() traces and compiles), not on arrays outside one"
        )
    return ctx


def _value(ctx, x: Any) -> Value:
    """The value of ``x`` in the step: a variable's current value, a traced tensor's."""
    if isinstance(x, Variable):
        return ctx.weight(x)
    if isinstance(x, TracedTensor):
        return x.value
    return Builder(ctx.graph, ctx).value(x)


def _fresh(value: Value) -> Value:
    """A copy of ``value`` that nothing computed so far depends on: differentiating with
    respect to it counts only the paths through what is computed from it later."""
    return value.graph.emit1("reshape", [value], shape=value.shape)


def _scalar_loss(out: Any, what: str) -> Value:
    if not isinstance(out, TracedTensor):
        raise TypeError(f"{what}: the function must return a scalar tensor, got {out!r}")
    value = out.value
    if value.rank != 0:
        raise TypeError(
            f"{what}: the function must return a scalar (a loss), got shape {out.shape}"
        )
    if not value.dtype.is_float:
        raise TypeError(f"{what}: the function returned {out.dtype}; it must be a float")
    return value


def _float_leaf(value: Value, what: str) -> None:
    if not value.dtype.is_float:
        raise TypeError(f"{what}: cannot differentiate with respect to a {value.dtype} tensor")


def value_and_grad(
    fn: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """JAX's ``value_and_grad``, traced: ``value_and_grad(fn)(*args)`` returns
    ``(value, grads)`` (``((value, aux), grads)`` with ``has_aux``), ``grads`` shaped as
    the argument(s) ``argnums`` (a tuple of them for a sequence of argnums). A variable
    among the arguments is differentiated at its current value in the step."""
    many = not isinstance(argnums, int)
    nums = tuple(argnums) if many else (argnums,)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        ctx = _context("value_and_grad")
        if any(i >= len(args) or i < -len(args) for i in nums):
            raise ValueError(
                f"value_and_grad: argnums {argnums} for a call with {len(args)} arguments"
            )
        args = list(args)
        first = len(ctx.graph.nodes)  # differentiate through what fn computes only
        fresh: list[tuple[Any, list[Value]]] = []
        for i in nums:
            leaves = [_value(ctx, leaf) for leaf in tree.flatten(args[i])]
            for leaf in leaves:
                _float_leaf(leaf, "value_and_grad")
            copies = [_fresh(v) for v in leaves]
            fresh.append((args[i], copies))
            args[i] = tree.pack_sequence_as(args[i], [TracedTensor(v) for v in copies])
        out = fn(*args, **kwargs)
        if has_aux:
            if not isinstance(out, tuple | list) or len(out) != 2:
                raise TypeError("value_and_grad(has_aux=True): fn must return (value, aux)")
            value, aux = out
        else:
            value, aux = out, None
        loss = _scalar_loss(value, "value_and_grad")
        wrt = [v for _, copies in fresh for v in copies]
        flat = iter(append_gradients(ctx.graph, loss, wrt, first))
        grads = [
            tree.pack_sequence_as(structure, [TracedTensor(next(flat)) for _ in copies])
            for structure, copies in fresh
        ]
        grads = tuple(grads) if many else grads[0]
        return ((value, aux) if has_aux else value), grads

    return wrapped


def grad(
    fn: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """JAX's ``grad``, traced: ``grad(fn)(*args)`` is ``value_and_grad``'s gradients
    (``(grads, aux)`` with ``has_aux``)."""
    both = value_and_grad(fn, argnums, has_aux)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value, grads = both(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return wrapped


class GradientTape:
    """TensorFlow's ``GradientTape``, traced: inside a custom ``train_step``,

    ```python
    with kcompile.GradientTape() as tape:
        y_pred = self(x, training=True)
        loss = self.compute_loss(y=y, y_pred=y_pred)
    grads = tape.gradient(loss, self.trainable_variables)
    ```

    As TensorFlow's, the tape sees what is computed while it is open: values computed
    before are constants (a GAN's generator step does not differentiate through the
    discriminator's update made before it). A variable is differentiated at its value
    when ``gradient`` is called. ``persistent`` is accepted: every tape can be asked more
    than once.
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True) -> None:
        self.persistent = persistent
        self._first = 0

    def __enter__(self) -> GradientTape:
        self._first = len(_context("GradientTape").graph.nodes)
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def watch(self, tensor: Any) -> None:
        """Accepted for TensorFlow's API: every traced value can be differentiated."""

    def gradient(self, target: Any, sources: Any, unconnected_gradients: str = "zero") -> Any:
        """d(target)/d(source) for each source, in the sources' structure (of the sum of a
        target that is not a scalar, as TensorFlow's); a source the target does not depend
        on gets zeros (TensorFlow's ``unconnected_gradients="zero"``;
        its default ``None`` cannot be a value in a compiled step)."""
        ctx = _context("GradientTape.gradient")
        if isinstance(target, TracedTensor) and target.value.rank:  # TensorFlow: of the sum
            target = TracedTensor(B.reduce_sum(target.value))
        loss = _scalar_loss(target, "GradientTape.gradient")
        leaves = [_value(ctx, s) for s in tree.flatten(sources)]
        for leaf in leaves:
            _float_leaf(leaf, "GradientTape.gradient")
        grads = append_gradients(ctx.graph, loss, leaves, self._first)
        return tree.pack_sequence_as(sources, [TracedTensor(g) for g in grads])
