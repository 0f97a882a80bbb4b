"""The batch-rows op: kernels run one batch row at a time, so that what one kernel
writes and the next reads stays in cache.

``batch_rows(operands) {body=graph ..., kind=rows}`` computes the body's outputs from
the operands (one body input per operand, in order), like ``fused``; but its body holds
whole kernels (batched products, row kernels, fused loops), each computing every batch
row from that row alone. Native code runs the body's kernels on one batch row, then on
the next, and keeps the values that never leave the body in a scratch of one row (a
slot, per chunk of rows run at once, of the node's last result: its workspace): an
attention head's scores, probabilities' gradient and scores' gradient (256 KiB a batch
row at sequence 128 and 4 heads) go from kernel to kernel through the core's cache
instead of memory. ``passes/batch_rows.py`` makes these after fusion, so the op has no
gradient rule; the reference runs the body on the interpreter.
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import traits as T
from kcompile.ir.graph import Graph
from kcompile.ir.memory import nbytes
from kcompile.ir.ops.fused import run_body
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import DType, ShapeError, TensorType

KIND = "rows"  # the ``kind`` attribute, which tools print beside a kernel body's ops
# Chunks of rows the native code runs at once at most (``codegen.library.parallel.CHUNKS``): each
# has its own slot of the workspace.
SLOTS = 8
ALIGN = 64  # each scratch value starts on a cache line


def scratch_layout(body: Graph) -> tuple[dict, int]:
    """(offset of each body value kept in the scratch, the scratch's bytes) for one batch
    row: the values of body nodes that are not results of the body."""
    results = {v for _, v in body.outputs}
    offsets, total = {}, 0
    for node in body.nodes:
        for v in node.outputs:
            if v not in results:
                offsets[v] = total
                total += -(-nbytes(v.type).coef // ALIGN) * ALIGN
    return offsets, total


def workspace_type(body: Graph) -> TensorType:
    """The last result of a ``batch_rows`` node: ``SLOTS`` scratch rows, written and read
    only by its kernel (placed in the arena by the memory plan, so nothing is allocated
    while a step runs)."""
    return TensorType(DType.u8, (SLOTS * max(scratch_layout(body)[1], ALIGN),))


def _infer(types, attrs):
    body = attrs.get("body")
    if not isinstance(body, Graph):
        raise ShapeError("batch_rows needs a body graph")
    if attrs.get("kind") != KIND:
        raise ShapeError(f"batch_rows' kind must be {KIND!r}, got {attrs.get('kind')!r}")
    expected = [v.type for v in body.inputs]
    if list(types) != expected:
        shown = ", ".join(str(t) for t in expected)
        raise ShapeError(f"operands do not match the body's inputs ({shown})")
    return [*(v.type for _, v in body.outputs), workspace_type(body)]


def _reference(ctx, args, attrs):
    body = attrs["body"]
    workspace = np.zeros(workspace_type(body).shape, np.uint8)
    return [*run_body(ctx, args, body), workspace]


register(
    OpDef(
        "batch_rows",
        "fused",
        None,
        _infer,
        _reference,
        None,
        doc="kernels run one batch row at a time, their intermediates in a row's scratch",
        traits=T.Traits(
            T.Pattern.OPAQUE,
            kernel_body=True,
            # Every body kernel computes a batch row from that row alone (the pass's
            # condition), so the whole body does too.
            rows_independent=lambda node: True,
        ),
    )
)
