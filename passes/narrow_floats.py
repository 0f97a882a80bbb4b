"""Narrow floats held in f32: the portable lowering of bf16 and f16.

Every value of a narrow float dtype becomes an f32 value holding the same number: an op
whose result is narrow runs in f32 on its (already narrow) operands and its result is
rounded once (``round_to``), which is how the reference interpreter defines narrow
arithmetic (``ir.interpreter``), so native code gives the reference's bits. Casts
between f32 and a narrow float become a rounding or nothing; constants are rounded at
compile time; an op whose result holds operand values unchanged (reshape, transpose,
slice, a cast's carry) needs no rounding. Data inputs declared narrow are rounded where
they enter, so f32 data fed to them means what it means to the reference.

This costs f32 memory and bandwidth: it is what every op gets before codegen lowers it
on narrow storage and the CPU's bf16 engines.
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import DType, Graph, TensorType, Value
from kcompile.ir.traits import Pattern

F32 = DType.f32


def has_narrow_floats(graph: Graph) -> bool:
    """Whether any value of ``graph`` (loop bodies included) is a narrow float."""
    if any(v.dtype.is_narrow_float for v in graph.inputs):
        return True
    for node in graph.nodes:
        if any(v.dtype.is_narrow_float for v in node.outputs):
            return True
        if node.traits.nested_graph and has_narrow_floats(node.attrs["body"]):
            return True
    return False


def hold_narrow_floats(graph: Graph) -> Graph:
    """``graph`` with every narrow float held in f32 (the same graph when it has none)."""
    if not has_narrow_floats(graph):
        return graph
    return _rewrite(graph, round_inputs=True)


def _rewrite(graph: Graph, round_inputs: bool) -> Graph:
    new = Graph(graph.name)
    env: dict[Value, Value] = {}
    for v in graph.inputs:
        held = new.add_input(v.name, _held_type(v), v.role)
        # A loop body's inputs come from values the outer graph has already rounded.
        env[v] = _round(held, v.dtype, "") if round_inputs and v.dtype.is_narrow_float else held
    for node in graph.nodes:
        args = [env[v] for v in node.inputs]
        outs = _lower(new, node, args)
        env.update(zip(node.outputs, outs))
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


def _held_type(v: Value) -> TensorType:
    return v.type.with_dtype(F32) if v.dtype.is_narrow_float else v.type


def _lower(new: Graph, node, args: list[Value]) -> tuple[Value, ...]:
    attrs = dict(node.attrs)
    if node.op == "cast":
        return (_lower_cast(new, node, args[0]),)
    if node.traits.nested_graph:
        attrs["body"] = _rewrite(attrs["body"], round_inputs=False)
    # An op that makes values of the dtype it names (a constant) makes their f32 holders.
    narrow_attr = DType.parse(attrs["dtype"]) if "dtype" in attrs else None
    if (
        narrow_attr is not None
        and narrow_attr.is_narrow_float
        and node.outputs[0].dtype is narrow_attr
    ):
        attrs["dtype"] = F32.value
        if node.op == "constant":
            attrs["value"] = _rounded_constant(attrs["value"], narrow_attr)
    if node.op == "matmul" and all(v.dtype is DType.bf16 for v in node.inputs):
        # Its f32 operands hold bf16 values: codegen may multiply them on a bf16 engine.
        attrs["precision"] = "bf16"
    outs = new.emit(node.op, args, attrs, node.layer)
    if not _rounds(node):
        return outs
    return tuple(
        _round(held, old.dtype, node.layer) if old.dtype.is_narrow_float else held
        for held, old in zip(outs, node.outputs)
    )


def _lower_cast(new: Graph, node, x: Value) -> Value:
    src, dst = node.inputs[0].dtype, node.outputs[0].dtype
    if dst.is_narrow_float:
        if not src.is_float:
            x = new.emit("cast", [x], {"dtype": F32.value}, node.layer)[0]
        return _round(x, dst, node.layer)
    if src.is_narrow_float and dst is F32:
        return x  # the f32 holder already holds the value
    return new.emit("cast", [x], dict(node.attrs), node.layer)[0]


def _rounds(node) -> bool:
    """Whether a node's narrow results need rounding: not when each result element is an
    operand element (a view, a rearrangement) or a constant already rounded."""
    traits = node.traits
    if node.op == "constant" or traits.carries_values or traits.view:
        return False
    return traits.pattern is not Pattern.INJECTIVE


def _round(x: Value, dtype: DType, layer: str) -> Value:
    return x.graph.emit("round_to", [x], {"dtype": dtype.value}, layer)[0]


def _rounded_constant(value, dtype: DType):
    narrow = dtype.numpy
    if isinstance(value, tuple):
        return tuple(float(v) for v in np.asarray(value, np.float32).astype(narrow))
    return float(np.float32(value).astype(narrow))
