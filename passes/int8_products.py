"""The int8 products of quantized layers (``model.quantize("int8")``) made into products
codegen runs: each result the f32 of the exact integer sum, which the rescale after it
reads.

A ``matmul`` of two ``i8`` operands gives ``i32``: the exact sum of integer products
(``ir.ops.linalg``), which Keras's ``_int8_call`` casts to its compute dtype at once.
This pass makes it a ``matmul`` marked ``precision="i8"`` of the same operands whose result
is that cast (the f32 of the exact sum): ``kc_igemm`` multiplies the bytes with the CPU's
integer multiply-adds and sums in int32 (``codegen.library.int8_gemm``). A cast of the
i32 result back to a float reads the product directly, so the rescale, bias and
activation join its epilogue; any other reader gets the i32 cast from it.

A ``conv2d`` of ``i8`` operands (and every matmul with ``INTEGER_KERNEL`` off) is held in
f32 instead: every int8 product is an integer of magnitude at most 2**14, so a sum of up
to ``EXACT_I8_DEPTH`` of them stays an integer f32 holds exactly, whatever the order of
the additions: the f32 product of the operands widened to f32 *is* the integer product.
Its operands are cast to f32 (a widening that fuses into the kernel making the operand; a
matmul's B, a quantized kernel, stays in bytes and is widened as ``kc_sgemm`` packs it).
A deeper matmul is split into products of ``EXACT_I8_DEPTH`` terms summed in f32: two
such parts round their sum once, which is the i32 result's own rounding to f32 (exact to
the bit up to a depth of 2048); more parts may differ from it by a rounding of f32. A
deeper convolution is refused.
"""

from __future__ import annotations

from kcompile.ir import DType, Graph, Node, Value
from kcompile.ir import build as B
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import rebuild

I8 = DType.i8
# A matmul's operands stay in bytes and the product sums them in int32 (``kc_igemm``);
# off: the f32 products below (only to measure against; the prepared-graph cache does not
# key on it: measure with KCOMPILE_CACHE=0).
INTEGER_KERNEL = True
# 1024 products of magnitude at most 128 * 128 sum to at most 2**24 in magnitude: every
# partial sum is an integer f32 holds exactly.
EXACT_I8_DEPTH = 1024


def hold_integer_products(graph: Graph) -> Graph:
    """``graph`` with every ``matmul`` of ``i8`` operands computed as an f32 product (the
    same graph when it has none)."""
    if not any(_integer_product(n) for n in graph.nodes):
        return graph
    held: dict[Value, Value] = {}  # an integer product's i32 result -> its f32 product

    def visit(new: Graph, node: Node, args: list[Value]):
        if _integer_product(node):
            product = _f32_product(node, args)
            (result,) = new.emit("cast", [product], {"dtype": DType.i32.value}, node.layer)
            held[result] = product
            return [result]
        if node.op == "cast" and args[0] in held and DType.parse(node.attrs["dtype"]) is DType.f32:
            return [held[args[0]]]
        return None

    # The i32 casts nothing reads (the rescale reads the f32 product) go before fusion.
    return eliminate_dead_code(rebuild(graph, visit))


def _integer_product(node: Node) -> bool:
    return node.op in ("matmul", "conv2d") and all(v.dtype is I8 for v in node.inputs)


def _f32_product(node: Node, args: list[Value]) -> Value:
    if node.op == "conv2d":
        return _f32_convolution(node, args)
    if INTEGER_KERNEL:
        attrs = {**node.attrs, "precision": "i8"}
        return args[0].graph.emit("matmul", list(args), attrs, node.layer)[0]
    if node.attrs["transpose_a"]:
        # Sums over the leading axes, the batch among them: no depth known at compile time.
        raise NotImplementedError(
            f"codegen: an int8 matmul with transpose_a (node {node.outputs[0].name}); "
            "integer products have no gradient to need one"
        )
    # B stays in bytes: kc_sgemm widens it as it packs it (``B_I8``).
    a, b = B.cast(args[0], DType.f32), args[1]
    transpose_b = node.attrs["transpose_b"]
    depth = a.shape[-1]
    parts = []
    for start in range(0, depth, EXACT_I8_DEPTH):
        stop = min(start + EXACT_I8_DEPTH, depth)
        a_part, b_part = a, b
        if (start, stop) != (0, depth):
            a_part = B.slice_(a, [0] * (a.rank - 1) + [start], [*a.shape[:-1], stop])
            b_part = (
                B.slice_(b, [0, start], [b.shape[0], stop])
                if transpose_b
                else B.slice_(b, [start, 0], [stop, b.shape[1]])
            )
        (part,) = a.graph.emit(
            "matmul",
            [a_part, b_part],
            {"transpose_a": False, "transpose_b": transpose_b, "precision": "i8"},
            node.layer,
        )
        parts.append(part)
    total = parts[0]
    for part in parts[1:]:
        total = B.add(total, part)
    return total


def _f32_convolution(node: Node, args: list[Value]) -> Value:
    """A convolution of int8 values (a quantized convolution's) as an f32 one
    (``precision="i8"``: codegen keeps it off Winograd, whose transforms round); its
    kernel widened by a kernel of its own (a convolution's weights are small)."""
    x, w = args
    depth = w.shape[0] * w.shape[1] * w.shape[2]
    if depth > EXACT_I8_DEPTH:
        raise NotImplementedError(
            f"codegen: an int8 convolution {depth} deep (node {node.outputs[0].name}): its "
            f"sums are exact in f32 up to {EXACT_I8_DEPTH} (window x channels)"
        )
    attrs = {**node.attrs, "precision": "i8"}
    (out,) = x.graph.emit("conv2d", [B.cast(x, DType.f32), B.cast(w, DType.f32)], attrs, node.layer)
    return out
