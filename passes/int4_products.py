"""Products with int4 kernels (``model.quantize("int4")``) that unpack the kernel as they
pack it.

A quantized layer reads its int4 kernel through ``dequantize_int4`` (``ir.ops.int4``):
the f32 kernel of its nibbles (and, in groups, its scales and zero points). A ``matmul``
of an f32 operand with that kernel becomes ``matmul_int4`` of the operand and the
kernel's bytes: the native GEMM widens each panel of B from the nibbles as it packs it
(``kc_sgemm``'s ``B_I4``), so a call reads half a byte a weight and the f32 kernel never
exists in memory. The same f32 values in the same order: the results are the float
product's.

What reads the dequantized kernel otherwise (a training step's backward, a product under
a narrower compute dtype) gets it from primitive ops (``ir.ops.int4.expanded``): code
generators lower ``matmul_int4``, not ``dequantize_int4``.
"""

from __future__ import annotations

from kcompile.ir import DType, Graph, Node, Value
from kcompile.ir import build as B
from kcompile.ir.ops import int4 as int4_ops
from kcompile.passes.dce import eliminate_dead_code
from kcompile.passes.rewrite import rebuild


def hold_int4_products(graph: Graph) -> Graph:
    """``graph`` with each f32 ``matmul`` of a ``dequantize_int4`` kernel a
    ``matmul_int4``, and every other ``dequantize_int4`` in primitive ops (the same graph
    when it has none)."""
    if not any(n.op == "dequantize_int4" for n in graph.nodes):
        return graph
    env: dict[Value, Value] = {}

    def visit(new: Graph, node: Node, args: list[Value]):
        if node.op == "dequantize_int4":
            # Its primitive form, for any reader but the products below; dead code (and
            # removed) when they are its only readers.
            return [int4_ops.expanded(args[0], node.attrs["columns"], args[1:])]
        if _unpacks_as_it_packs(node):
            kernel = [env[v] for v in node.inputs[1].node.inputs]
            return [B.matmul_int4(args[0], kernel, node.inputs[1].node.attrs["columns"])]
        return None

    return eliminate_dead_code(rebuild(graph, visit, env))


def _unpacks_as_it_packs(node: Node) -> bool:
    """A plain f32 ``matmul`` whose B is a ``dequantize_int4`` kernel."""
    if node.op != "matmul" or node.attrs["transpose_a"] or node.attrs["transpose_b"]:
        return False
    if node.attrs.get("precision") or node.attrs.get("round_operands"):
        return False
    a, b = node.inputs
    return a.dtype is DType.f32 and b.node is not None and b.node.op == "dequantize_int4"
