"""Which bf16 products are large enough for the CPU's matrix engines: shared by the pass
that stores their operands in bf16 (``passes.narrow_storage``) and the codegen that calls
the engines (``codegen.lowering.products``), so that the two agree on which products those are.
"""

from __future__ import annotations

import math

from kcompile.ir.graph import Node

# kc_bgemm works in 32 x 32 blocks of C and 32-deep steps: a product with a contracted
# or result dimension below this stays on kc_sgemm (the MLP's 10 classes: 256 x 128 x 10
# took 14 us on AMX, 11 on kc_sgemm).
BGEMM_MIN_DIM = 32
# A convolution shallower than this (KH*KW*C: a stem over one or three channels) stays on
# kc_sconv: its rows, packed to a tile's 32 bf16, would be mostly zeros.
BCONV_MIN_DEPTH = 32


def product_dims(node: Node, a_shape: tuple | None = None, b_shape: tuple | None = None):
    """A matmul's contracted-or-result dims its operands' last axes give (of the node's
    own operands unless their shapes are given)."""
    a_shape = a_shape if a_shape is not None else node.inputs[0].shape
    b_shape = b_shape if b_shape is not None else node.inputs[1].shape
    return (a_shape[-1], b_shape[0] if node.attrs.get("transpose_b") else b_shape[-1])


def conv_depth(node: Node) -> int:
    """A conv2d's (conv2d_filter's) window depth KH*KW*C: its product's contracted
    dimension (the filter gradient's result rows)."""
    if node.op == "conv2d_filter":
        return math.prod(node.outputs[0].shape[:3])
    return math.prod(node.inputs[1].shape[:3])


def engine_sized(node: Node, dims: tuple | None = None) -> bool:
    """Whether a bf16 matmul, conv2d or conv2d_filter is large enough for the engines
    (its known ``dims``: ``product_dims``'s unless given)."""
    if node.op in ("conv2d", "conv2d_filter"):
        return conv_depth(node) >= BCONV_MIN_DEPTH
    dims = product_dims(node) if dims is None else dims
    return not any(isinstance(d, int) and d < BGEMM_MIN_DIM for d in dims)
