"""A gradient rule given with the graph: ``custom_vjp``, what ``keras.ops.custom_gradient``
traces to.

    %p = custom_vjp(%y, %x, %r) {args=1, fn=log1pexp, results=1, vjp=graph vjp(
        %upstream0: f32[N,3] data,
        %residual0: f32[N,3] invariant,
    ) {
      %0 = mul(%upstream0, %residual0) : f32[N,3]
      return grad0=%0
    }} : f32[N,3]

Operands: ``results`` values (what the function computed), then ``args`` arguments
(what the rule gives gradients to), then the residuals the rule reads (values of the
forward pass, such as ``exp(x)``). The results are the values, unchanged.

The gradient is the ``vjp`` graph, not the derivative of the ops that made the values:
its inputs are one upstream gradient per result, of the result's type, then the
residuals; its outputs are one gradient per argument, of the argument's type. The VJP
rule copies its nodes into the backward pass with the cotangents as the upstream
gradients (zeros for a result no gradient reaches); the values and the residuals get no
gradient through the node.

The front end uses a result only as the proxy of ``gradient_via(value, result)``:
``simplify`` replaces that by the value after autodiff, so the node, unused, goes with
dead code and native code never holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kcompile.ir import traits as T
from kcompile.ir.grad import instantiate
from kcompile.ir.graph import Graph, Value
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import ShapeError, TensorType

UPSTREAM_ROLE = "data"
RESIDUAL_ROLE = "invariant"


def _counts(types: list[TensorType], attrs) -> tuple[int, int, int, Graph]:
    """(results, args, residuals, vjp graph) of a node, its attributes checked."""
    results, args, vjp = attrs.get("results"), attrs.get("args"), attrs.get("vjp")
    if not isinstance(results, int) or not isinstance(args, int) or results < 1 or args < 0:
        raise ShapeError(
            f"custom_vjp needs results >= 1 and args >= 0 (ints), got {results!r}, {args!r}"
        )
    if not isinstance(vjp, Graph):
        raise ShapeError(f"custom_vjp needs its gradient rule as a graph (vjp=), got {vjp!r}")
    residuals = len(types) - results - args
    if residuals < 0:
        raise ShapeError(
            f"custom_vjp has {len(types)} operands, fewer than results={results} + args={args}"
        )
    return results, args, residuals, vjp


def _expect_types(what: str, got: list[TensorType], want: list[TensorType]) -> None:
    if len(got) != len(want):
        raise ShapeError(f"custom_vjp's vjp graph has {len(got)} {what}, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise ShapeError(f"custom_vjp's vjp graph: {what} {i} is {g}, expected {w}")


def _infer(types: list[TensorType], attrs) -> list[TensorType]:
    results, args, _, vjp = _counts(types, attrs)
    upstream_and_residuals = types[:results] + types[results + args :]
    _expect_types("inputs", [v.type for v in vjp.inputs], upstream_and_residuals)
    _expect_types("outputs", [v.type for _, v in vjp.outputs], types[results : results + args])
    return list(types[:results])


def _reference(ctx, args: list, attrs) -> list:
    return list(args[: attrs["results"]])


def _vjp(node, cotangents: list) -> list:
    results, args = node.attrs["results"], node.attrs["args"]
    graph = node.outputs[0].graph
    upstream = [instantiate(graph, g) for g in cotangents]
    residuals = list(node.inputs[results + args :])
    grads = apply_vjp(graph, node.attrs["vjp"], upstream + residuals)
    return [None] * results + grads + [None] * len(residuals)


def vjp_graph(
    upstream: list[TensorType],
    residuals: list[TensorType],
    rule: Callable[[list[Value], list[Value]], list[Value]],
) -> Graph:
    """A ``vjp`` graph written as a function: ``rule(upstream, residuals)`` gives the
    arguments' gradients from the graph's inputs of those types."""
    vjp = Graph("vjp")
    ups = [vjp.add_input(f"upstream{j}", t, UPSTREAM_ROLE) for j, t in enumerate(upstream)]
    res = [vjp.add_input(f"residual{j}", t, RESIDUAL_ROLE) for j, t in enumerate(residuals)]
    vjp.set_outputs([(f"grad{j}", g) for j, g in enumerate(rule(ups, res))])
    return vjp


def custom_vjp(
    values: Sequence[Value],
    args: Sequence[Value],
    residuals: Sequence[Value],
    vjp: Graph,
    fn: str = "",
) -> tuple[Value, ...]:
    """The node: ``values`` (unchanged), whose gradient to ``args`` is ``vjp``'s on the
    upstream gradients and ``residuals``."""
    graph = values[0].graph
    operands = [*values, *args, *residuals]
    attrs = {"results": len(values), "args": len(args), "vjp": vjp, "fn": fn}
    return graph.emit("custom_vjp", operands, attrs)


def apply_vjp(graph: Graph, vjp: Graph, operands: list[Value]) -> list[Value]:
    """``vjp``'s nodes copied into ``graph`` on ``operands`` (upstream gradients, then
    residuals); its outputs. The copies take ``graph``'s current layer (the gradient's
    scope), as every other rule's nodes do."""
    env = dict(zip(vjp.inputs, operands))
    for node in vjp.nodes:
        outs = graph.emit(node.op, [env[v] for v in node.inputs], node.attrs, checked=True)
        env.update(zip(node.outputs, outs))
    return [env[v] for _, v in vjp.outputs]


register(
    OpDef(
        "custom_vjp",
        "gradient",
        None,
        _infer,
        _reference,
        _vjp,
        doc="custom_vjp(values..., args..., residuals...) {results, args, vjp, fn}: the "
        "values, whose gradient to the args is the vjp graph's (Keras's custom_gradient)",
        # Never folded: a constant in its place would lose the gradient rule.
        traits=T.Traits(T.Pattern.OPAQUE, folds=False),
    )
)
