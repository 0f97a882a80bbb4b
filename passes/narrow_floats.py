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

from kcompile.ir import DType, Graph, Node, TensorType, Value
from kcompile.ir.traits import Pattern
from kcompile.passes.rewrite import rebuild

F32 = DType.f32
# Products codegen may run on a bf16 engine when their operands hold bf16 values: a
# matrix product, a batch of them (attention), a convolution (its input gradient is one
# too) and its kernel gradient.
BF16_PRODUCTS = ("matmul", "batch_matmul", "conv2d", "conv2d_filter")


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
    return _sink_rounded_reductions(_rewrite(graph, round_inputs=True))


def _sink_rounded_reductions(graph: Graph) -> Graph:
    """A reduction's rounding read only through a reshape moved past it (rounding commutes
    with a reshape). A row sum [N, H, T] rounded, then reshaped to [N, H, T, 1] for the
    ops that broadcast it, kept its rounding out of the row kernel (``passes.fuse_rows``
    reads an op on [N, H, T] as one over rows [N, H] of T columns): attention's softmax
    gradient under ``mixed_bfloat16`` ran as two batch-row chains and a rounding kernel
    between them instead of one chain."""
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    sunk = {
        n
        for n in graph.nodes
        if n.op == "round_to"
        and (producer := n.inputs[0].node) is not None
        and producer.traits.reduction is not None
        and n.outputs[0] not in outputs
        and [u.op for u in users.get(n.outputs[0], [])] == ["reshape"]
    }
    if not sunk:
        return graph

    def visit(new: Graph, node: Node, args: list[Value]):
        if node in sunk:
            return [args[0]]
        rounding = node.inputs[0].node if node.op == "reshape" else None
        if rounding not in sunk:
            return None
        (reshaped,) = new.emit("reshape", args, dict(node.attrs), node.layer)
        return new.emit("round_to", [reshaped], dict(rounding.attrs), rounding.layer)

    return rebuild(graph, visit)


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
    if node.op in BF16_PRODUCTS and all(v.dtype is DType.bf16 for v in node.inputs):
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


# Elementwise ops whose result the narrow type holds whenever it holds their operands:
# each result element is an operand element (select, max, min: ReLU), its negation or
# magnitude, or an integer no wider than the operand (sign, floor, ceil, round: below
# 2**(precision-1) in magnitude an integer is exact, above it the operand already is).
EXACT_ON_NARROW = frozenset(
    {"select", "max", "min", "neg", "abs", "sign", "floor", "ceil", "round"}
)


def _rounds(node) -> bool:
    """Whether a node's narrow results need rounding: not when each result element is an
    operand element (a view, a rearrangement, a maximum or minimum: max-pooling a
    convolution's result; a convolution's patches, padded with a value the narrow type
    holds; ``EXACT_ON_NARROW``) or a constant already rounded."""
    traits = node.traits
    if node.op == "constant" or traits.carries_values or traits.view:
        return False
    if node.op in EXACT_ON_NARROW:
        return False
    if traits.reduction is not None and traits.reduction.combine in ("max", "min"):
        return False
    if node.op == "extract_patches":  # the image's elements, and its padding value
        value, dtype = node.attrs["value"], node.outputs[0].dtype
        return not dtype.is_narrow_float or _rounded_constant(value, dtype) != value
    return traits.pattern is not Pattern.INJECTIVE


def _round(x: Value, dtype: DType, layer: str) -> Value:
    return x.graph.emit("round_to", [x], {"dtype": dtype.value}, layer)[0]


def _rounded_constant(value, dtype: DType):
    narrow = dtype.numpy
    if isinstance(value, tuple):
        return tuple(float(v) for v in np.asarray(value, np.float32).astype(narrow))
    return float(np.float32(value).astype(narrow))


def round_in_products(graph: Graph, bf16_engine: bool = True) -> Graph:
    """``graph`` with the bf16 roundings of stored values (inputs, weights, constants)
    that only bf16 products read moved into those products (``round_operands``).

    Such a rounding is a kernel of its own, a pass over memory (the MLP's input and
    weights: a sixth of its train step under ``mixed_bfloat16``), and the bf16 engines
    round their operands again while packing them; the product now rounds them once.
    Roundings of computed values stay: they run in the kernel of the op that computes
    them (no pass of their own), and a product on rounded operands keeps ``kc_sgemm``
    where the engines do not pay (``codegen.lowering.products``). A rounding read through
    reshapes moves past them (rounding commutes with a reshape).

    ``bf16_engine`` (``PipelineOptions``): whether the CPU lowered for has a bf16 engine.
    Without one, a product rounds its A into a copy (the portable path), so a value read
    as A by several products would be rounded once per product: it keeps its rounding
    kernel (the MLP's step at batch 256 ran 5% faster so, single threaded; on AMX moving
    it paid: 540 against 602 us). A value every product reads as B (a weight: the
    forward product and the input gradient's) moves there too: ``kc_sgemm`` rounds a B
    as it packs it, for nothing but the rounding."""
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    moved: dict[Node, dict[int, None]] = {}
    dropped: set[Node] = set()
    for node in graph.nodes:
        if node.op != "round_to" or node.attrs["dtype"] != DType.bf16.value:
            continue
        if not _stored(node.inputs[0]):
            continue
        uses = _product_uses(node.outputs[0], users, outputs)
        if uses is None:
            continue
        if not bf16_engine and len(uses) > 1 and any(position != 1 for _, position in uses):
            continue
        dropped.add(node)
        for product, position in uses:
            moved.setdefault(product, {})[position] = None
    if not dropped:
        return graph
    new = Graph(graph.name)
    env: dict[Value, Value] = {v: new.add_input(v.name, v.type, v.role) for v in graph.inputs}
    for node in graph.nodes:
        args = [env[v] for v in node.inputs]
        if node in dropped:
            env[node.outputs[0]] = args[0]
            continue
        attrs = dict(node.attrs)
        if node in moved:
            rounds = set(attrs.get("round_operands") or ()) | set(moved[node])
            attrs["round_operands"] = tuple(sorted(rounds))
        env.update(zip(node.outputs, new.emit(node.op, args, attrs, node.layer)))
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


def _stored(v: Value) -> bool:
    """Whether ``v`` is a graph input or a constant, seen through reshapes: rounding it
    would be a kernel of its own."""
    while v.node is not None and v.node.traits.view:
        v = v.node.inputs[0]
    return v.node is None or v.node.op == "constant"


def _product_uses(v: Value, users, outputs) -> list[tuple[Node, int]] | None:
    """Every (bf16 product, operand position) reading ``v``, directly or through
    reshapes; None when anything else reads it (or it is a graph output)."""
    if v in outputs:
        return None
    uses = []
    for user in users.get(v, []):
        if user.traits.view and len(user.inputs) == 1:
            inner = _product_uses(user.outputs[0], users, outputs)
            if inner is None:
                return None
            uses += inner
        elif user.op == "matmul" and user.attrs.get("precision") == "bf16":
            uses += [(user, i) for i, x in enumerate(user.inputs) if x is v]
        else:
            return None
    return uses
