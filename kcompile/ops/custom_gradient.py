"""``keras.ops.custom_gradient``: a function whose gradient is the rule it returns.

``f(*args)`` returns ``(output, grad_fn)``. Called on traced tensors (inside a layer's
``call``, a loss, a custom ``train_step``), ``f`` traces as usual and ``grad_fn`` is
traced once, on stand-ins for the upstream gradients: what it computes from them becomes
the ``vjp`` graph of an IR ``custom_vjp`` node (``ir/ops/custom_vjp.py``), which autodiff
copies into the backward pass instead of differentiating the ops of ``f``. What it
computes from the forward pass alone (``1 / (1 + exp(x))``) stays in the forward pass
and is read by the rule as a residual. Each output is ``gradient_via(value, proxy)``
with the node's result as the proxy, so that after autodiff ``simplify`` leaves the
value alone and the node goes with dead code.

``grad_fn`` is called as Keras's JAX backend calls it: ``grad_fn(upstream)``, the
upstream gradients in the structure of the output, which the form Keras documents for
every backend, ``def grad(*args, upstream=None)``, also accepts. A rule whose
``upstream`` is a required keyword (Keras's PyTorch form, ``def grad(*args,
upstream)``) is called as that backend calls it, ``grad_fn(*args, upstream=upstream)``.
It returns one gradient per positional argument of ``f`` (a tuple; one tensor for a
function of one argument), each of its argument's structure and shape; ``None`` is a
zero gradient. On arrays ``f`` runs at once and its output is returned, as Keras's.

Tensors ``f`` reads without taking them as arguments (a layer's weight read inside it)
are constants to the rule: pass what should get a gradient as an argument.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from kcompile import tree
from kcompile.backend.keras_tensor import KerasTensor, keras_shape
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.backend.variables import Variable
from kcompile.ir import Graph, Node, Value
from kcompile.ir import build as B
from kcompile.ir.ops.custom_vjp import RESIDUAL_ROLE, UPSTREAM_ROLE, custom_vjp
from kcompile.ops.core import Builder, symbolic_call
from kcompile.utils.traceback_utils import filter_traceback

__all__ = ["custom_gradient"]


def custom_gradient(f: Callable[..., Any]) -> Callable[..., Any]:
    """Keras's decorator: ``f(*args)`` returns ``(output, grad_fn)``; the decorated
    function returns ``output``, and its gradient is ``grad_fn``'s."""
    if not callable(f):
        raise TypeError(f"custom_gradient decorates a function, got {f!r}")
    name = getattr(f, "__name__", type(f).__name__)

    @functools.wraps(f)
    def with_custom_gradient(*args: Any, **kwargs: Any) -> Any:
        leaves = tree.flatten((args, kwargs))
        if any(isinstance(x, KerasTensor) for x in leaves):
            return symbolic_call(public, args, kwargs)  # a node of the functional model
        target = _trace_target(leaves)
        if target is None:
            return _call_eagerly(f, name, args, kwargs)
        return _Trace(f, name, *target).run(args, kwargs)

    public = filter_traceback(with_custom_gradient)
    return public


def _trace_target(leaves: list) -> tuple[Graph, Any] | None:
    """(graph, trace context) the call traces into, as a ``keras.ops`` op picks it; None
    for a call on arrays."""
    ctx = current_context()
    traced = next((x for x in leaves if isinstance(x, TracedTensor)), None)
    if traced is not None:
        return traced.value.graph, ctx
    if ctx is not None and (
        any(isinstance(x, Variable) for x in leaves) or getattr(ctx, "records_metrics", False)
    ):
        return ctx.graph, ctx
    return None


def _call_eagerly(f: Callable, name: str, args: tuple, kwargs: dict) -> Any:
    # Variables as their values, as Keras's JAX backend unwraps them before calling f.
    args = tree.map_structure(lambda x: x.value if isinstance(x, Variable) else x, args)
    output, _ = _output_and_rule(f(*args, **kwargs), name)
    return output


def _output_and_rule(result: Any, name: str) -> tuple[Any, Callable]:
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise TypeError(
            f"custom_gradient: {name} must return a pair (output, grad_fn), got {_describe(result)}"
        )
    output, rule = result
    if not callable(rule):
        raise TypeError(
            f"custom_gradient: the second element {name} returns must be its gradient "
            f"function, got {_describe(rule)}"
        )
    return output, rule


def _describe(x: Any) -> str:
    if isinstance(x, tuple | list):
        return f"a {type(x).__name__} of {len(x)}"
    return type(x).__name__


class _Trace:
    """One call of a custom-gradient function on traced tensors."""

    def __init__(self, f: Callable, name: str, graph: Graph, ctx: Any) -> None:
        self.f, self.name, self.graph, self.ctx = f, name, graph, ctx
        self.builder = Builder(graph, ctx)

    def run(self, args: tuple, kwargs: dict) -> Any:
        if any(isinstance(x, TracedTensor | Variable) for x in tree.flatten(kwargs)):
            raise TypeError(
                f"custom_gradient: pass the tensors of {self.name} as positional arguments "
                "(its gradient function gives one gradient per positional argument), not "
                f"as keywords ({', '.join(sorted(kwargs))})"
            )
        args = tuple(tree.map_structure(self._as_traced, arg) for arg in args)
        output, rule = _output_and_rule(self.f(*args, **kwargs), self.name)
        outputs = [leaf for leaf in tree.flatten(output) if leaf is not None]
        values = [self.builder.value(leaf) for leaf in outputs]
        wrt = [leaf.value for leaf in tree.flatten(args) if isinstance(leaf, TracedTensor)]
        if not values or not wrt:
            return output  # nothing a gradient could reach
        vjp, residuals = self._trace_rule(rule, args, output, values)
        proxies = custom_vjp(values, wrt, residuals, vjp, self.name)
        results = iter(
            TracedTensor(B.gradient_via(v, p) if v.dtype.is_float else v)
            for v, p in zip(values, proxies)
        )
        return tree.map_structure(lambda x: None if x is None else next(results), output)

    def _as_traced(self, leaf: Any) -> Any:
        """A variable as its value in the step (what Keras's JAX backend passes f)."""
        return TracedTensor(self.builder.value(leaf)) if isinstance(leaf, Variable) else leaf

    # --- the rule -----------------------------------------------------------------------

    def _trace_rule(
        self, rule: Callable, args: tuple, output: Any, values: list[Value]
    ) -> tuple[Graph, list[Value]]:
        """The rule traced on stand-ins for the upstream gradients: its ``vjp`` graph
        and the forward values it reads (the residuals)."""
        graph = self.graph
        mark = len(graph.nodes)
        stand_ins = [B.zeros(graph, v.type) for v in values]
        upstream = iter(TracedTensor(s) for s in stand_ins)
        structured = tree.map_structure(lambda x: None if x is None else next(upstream), output)
        if _upstream_is_a_required_keyword(rule):
            grads = rule(*args, upstream=structured)  # Keras's PyTorch backend's call
        else:
            grads = rule(structured)  # Keras's JAX backend's call
        wanted = self._gradients(grads, args)
        traced = graph.nodes[mark:]
        moved = _backward_nodes(traced, set(stand_ins), {g for g, _ in wanted})
        graph.nodes = graph.nodes[:mark] + [
            n for n in traced if n not in moved and n.outputs[0] not in stand_ins
        ]
        return _Extract(stand_ins).build(moved, wanted)

    def _gradients(self, grads: Any, args: tuple) -> list[tuple[Value | None, Value]]:
        """(gradient or None, argument) for each traced argument, checked against what
        ``args`` holds (the count, each argument's structure and shape)."""
        if not isinstance(grads, tuple | list):
            grads = (grads,)
        names = _argument_names(self.f, len(args))
        if len(grads) != len(args):
            raise ValueError(
                f"custom_gradient: the gradient function of {self.name} returned "
                f"{len(grads)} gradient(s) for {len(args)} argument(s) ({', '.join(names)}); "
                f"it must return one per positional argument of {self.name}, in order (a "
                "tuple, or one tensor for a function of one argument)"
            )
        out = []
        for i, (arg, grad) in enumerate(zip(args, grads)):
            leaves = tree.flatten(arg)
            given = [None] * len(leaves) if grad is None else tree.flatten(grad)
            if len(given) != len(leaves):
                raise ValueError(
                    f"custom_gradient: the gradient function of {self.name} returned "
                    f"{len(given)} tensor(s) for argument {i} ({names[i]}), which holds "
                    f"{len(leaves)}; give one per tensor of the argument, in its structure"
                )
            for leaf, g in zip(leaves, given):
                if leaf is None:
                    continue
                value = None if g is None else self.builder.value(g)
                self._check_shape(value, leaf, i, names[i])
                if isinstance(leaf, TracedTensor):
                    out.append((value, leaf.value))
        return out

    def _check_shape(self, grad: Value | None, leaf: Any, i: int, name: str) -> None:
        if grad is None:
            return
        want = leaf.value.shape if isinstance(leaf, TracedTensor) else np.shape(leaf)
        if grad.shape != tuple(want):
            raise ValueError(
                f"custom_gradient: the gradient function of {self.name} returned a "
                f"gradient of shape {keras_shape(grad.shape)} for argument {i} ({name}) of "
                f"shape {keras_shape(want)}; each gradient must have its argument's shape"
            )


def _upstream_is_a_required_keyword(rule: Callable) -> bool:
    try:
        parameter = inspect.signature(rule).parameters.get("upstream")
    except (TypeError, ValueError):  # a callable without a signature
        return False
    return (
        parameter is not None
        and parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and parameter.default is inspect.Parameter.empty
    )


def _argument_names(f: Callable, count: int) -> list[str]:
    """The names of ``f``'s first ``count`` positional parameters (``args[i]`` past a
    ``*args``)."""
    try:
        parameters = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = []
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            names += [f"{p.name}[{j}]" for j in range(count - len(names))]
        elif p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        if len(names) >= count:
            break
    return (names + [f"argument {j}" for j in range(len(names), count)])[:count]


def _backward_nodes(traced: list[Node], stand_ins: set[Value], grads: set) -> list[Node]:
    """The nodes of the rule's trace that belong to the backward pass: those computed
    from the upstream gradients, and the constants only they read (or that are
    gradients, ``grads``, read by nothing else)."""
    from_upstream = set(stand_ins)
    moved = set()
    for node in traced:
        if any(v in from_upstream for v in node.inputs):
            moved.add(node)
            from_upstream.update(node.outputs)
    users: dict[Value, list[Node]] = {}
    for node in traced:
        for v in node.inputs:
            users.setdefault(v, []).append(node)
    for node in traced:
        if node.inputs or node.outputs[0] in stand_ins or node in moved:
            continue
        readers = users.get(node.outputs[0], [])
        if (readers or node.outputs[0] in grads) and all(r in moved for r in readers):
            moved.add(node)
    return [n for n in traced if n in moved]


class _Extract:
    """The ``vjp`` graph: the backward nodes copied out of the traced graph, each value
    of the forward pass they read becoming an input (a residual)."""

    def __init__(self, stand_ins: list[Value]) -> None:
        self.vjp = Graph("vjp")
        self.env: dict[Value, Value] = {
            s: self.vjp.add_input(f"upstream{j}", s.type, UPSTREAM_ROLE)
            for j, s in enumerate(stand_ins)
        }
        self.residuals: list[Value] = []

    def build(
        self, nodes: list[Node], grads: list[tuple[Value | None, Value]]
    ) -> tuple[Graph, list[Value]]:
        for node in nodes:
            ins = [self._inside(v) for v in node.inputs]
            outs = self.vjp.emit(node.op, ins, node.attrs, layer=node.layer, checked=True)
            self.env.update(zip(node.outputs, outs))
        results = []
        for j, (grad, arg) in enumerate(grads):
            if grad is None:
                inside = B.zeros(self.vjp, arg.type)
            else:
                inside = B.cast(self._inside(grad), arg.dtype)
            results.append((f"grad{j}", inside))
        self.vjp.set_outputs(results)
        return self.vjp, self._without_unused_residuals()

    def _without_unused_residuals(self) -> list[Value]:
        """Drops what the rule computed and returned no part of, and the residuals only
        that read; the residuals left, in the order of the graph's inputs."""
        used = self.vjp.drop_unused_nodes()
        upstream = len(self.vjp.inputs) - len(self.residuals)
        kept = [i for i, v in enumerate(self.vjp.inputs[upstream:]) if v in used]
        self.vjp.inputs = self.vjp.inputs[:upstream] + [self.vjp.inputs[upstream + i] for i in kept]
        for j, v in enumerate(self.vjp.inputs[upstream:]):
            v.name = f"residual{j}"
        return [self.residuals[i] for i in kept]

    def _inside(self, v: Value) -> Value:
        """``v`` in the vjp graph: its copy, or a new input for a forward value."""
        if v not in self.env:
            self.env[v] = self.vjp.add_input(
                f"residual{len(self.residuals)}", v.type, RESIDUAL_ROLE
            )
            self.residuals.append(v)
        return self.env[v]
