"""What passes and codegen need to know about an op, on its registry entry.

An op's pattern says how each result element depends on the operands (as TVM's
``OpPatternKind`` and tinygrad's op groups do); the other traits say what it costs,
how a reduction starts and combines, whether its result may overwrite an operand,
which kinds of fused loop body can hold it, and how a row kernel or a batch split
treats it. The fusion passes, the memory planner and codegen ask these traits; they
keep no lists of op names of their own, so a new op is described in one place.

Node-level facts (which depend on a node's attributes or shapes) are functions of the
node; this module only defines them and the common ones, and imports nothing above
``ir.types``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcompile.ir.types import BATCH

# The kinds of ``fused`` loop body (see ``ir.ops.fused``).
LOOP_KINDS = ("elementwise", "matmul", "row", "reduce")
ALL_LOOPS = frozenset(LOOP_KINDS)


class Pattern(enum.Enum):
    ELEMENTWISE = "elementwise"  # element i of the result from element i of each operand
    BROADCAST = "broadcast"  # elementwise, with operands broadcast to the result's shape
    INJECTIVE = "injective"  # each result element is one operand element (or a constant)
    REDUCTION = "reduction"  # combines the elements along some axes
    ROW = "row"  # each row of the result from the same row of the operands
    PRODUCT = "product"  # a contraction that an elementwise epilogue may follow
    OPAQUE = "opaque"  # anything else: gathers, scatters, random numbers, loops, kernels


@dataclass(frozen=True)
class Reduction:
    """How a reduction starts (``identity``) and folds a value in (the binary op
    ``combine``, associative and commutative)."""

    identity: float
    combine: str


# (row shape, columns or None for a row scalar) of a node a row kernel can hold.
RowSignature = tuple[tuple, int | None]


@dataclass(frozen=True)
class Traits:
    pattern: Pattern
    # Plain elementwise operations that one element of the result costs (exp: 9).
    cost: int = 1
    reduction: Reduction | None = None
    # The kinds of fused loop body that can hold the op.
    loop_bodies: frozenset[str] = frozenset()
    # The result is the operand's buffer under another shape: no kernel, no copy.
    view: bool = False
    # in_place(node, operand, result): whether the node reads ``operand`` only at the
    # element it writes of ``result``, so that the result may overwrite it.
    in_place: Callable[[Any, Any, Any], bool] | None = None
    # rows_independent(node): whether batch row r of every result depends only on row r
    # of the operands, so the kernel can be run on slices of the batch.
    rows_independent: Callable[[Any], bool] | None = None
    # row_signature(node): how a row kernel holds the node, or None if it cannot.
    row_signature: Callable[[Any], RowSignature | None] | None = None
    # The node's ``body`` attribute is a graph that passes optimize like any other
    # (a loop body), rather than a kernel's finished body.
    nested_graph: bool = False
    # The node runs its ``body`` graph as one kernel, the operands being the body's
    # inputs in order (a fused loop).
    kernel_body: bool = False
    # index_use(node, position): (bound, what the values are) when operand ``position``
    # holds indices, valid from 0 to bound - 1, that native code does not check.
    index_use: Callable[[Any, int], tuple[int, str] | None] | None = None
    # The result holds every value of the operand, rearranged, repeated or cast (not a
    # subset): indices stay indices, and the operand's bound checks apply to all of it.
    carries_values: bool = False
    # Constant operands make a constant result that compile time may compute.
    folds: bool = True

    @property
    def is_elementwise(self) -> bool:
        """Elementwise with or without broadcasting: what every loop body holds."""
        return self.pattern in (Pattern.ELEMENTWISE, Pattern.BROADCAST)


def reads_at_written_index(node: Any, operand: Any, result: Any) -> bool:
    """An elementwise op reads an operand of the result's shape at the index it writes."""
    return all(v.shape == result.shape for v in node.inputs if v is operand)


def elementwise_row_signature(node: Any) -> RowSignature | None:
    out = node.outputs[0]
    if len(node.outputs) != 1 or out.rank == 0:
        return None
    if out.rank >= 2 and out.shape[-1] != 1:
        return out.shape[:-1], out.shape[-1]
    return (out.shape[:-1], None) if out.shape[-1] == 1 else (out.shape, None)


def elementwise(cost: int = 1, pattern: Pattern = Pattern.ELEMENTWISE, **more: Any) -> Traits:
    """The traits of an elementwise op: every loop body holds it, a row kernel too, and
    its result may overwrite an operand of the same shape."""
    facts = {
        "cost": cost,
        "loop_bodies": ALL_LOOPS,
        "in_place": reads_at_written_index,
        "row_signature": elementwise_row_signature,
    }
    return Traits(pattern, **{**facts, **more})


def _reduced_axes(node: Any) -> tuple[int, ...]:
    return node.attrs["axes"]


def reduction_row_signature(node: Any) -> RowSignature | None:
    """Along the last axis: one row scalar per row. A sum over the batch of row values
    (rank 1 or 2) is accumulated row by row."""
    x = node.inputs[0]
    axes = _reduced_axes(node)
    if x.rank >= 2 and axes == (x.rank - 1,):
        return x.shape[:-1], x.shape[-1]
    if is_sum_over_rows(node):
        return (BATCH,), (x.shape[1] if x.rank == 2 and x.shape[1] != 1 else None)
    return None


def is_sum_over_rows(node: Any) -> bool:
    """A sum over the batch axis of a rank-1 or rank-2 batch value."""
    reduction = node.traits.reduction
    if reduction is None or reduction.combine != "add" or _reduced_axes(node) != (0,):
        return False
    x = node.inputs[0]
    return 1 <= x.rank <= 2 and x.shape[0] == BATCH


def reduction(identity: float, combine: str, loop_bodies: frozenset[str]) -> Traits:
    return Traits(
        Pattern.REDUCTION,
        reduction=Reduction(identity, combine),
        loop_bodies=loop_bodies,
        rows_independent=lambda node: 0 not in _reduced_axes(node),
        row_signature=reduction_row_signature,
    )
