"""The memory plan: graph-level data that ``plan_memory`` writes and codegen and the
runtime read.

Every node result gets a live interval over the schedule (the graph's node
order) and either an offset in one arena or an alias: the buffer of a graph
input it updates in place (a weight, an optimizer slot) or the value it is a
view of (a reshape). Offsets are made for a declared maximum batch; sizes are
symbolic in ``N``, and ``assign_offsets`` lays the same intervals out again
for another batch size, so the runtime can grow the arena without replanning.

In text, the plan follows the graph:

    } memory(max_batch=32, arena=163840) {
      %0 offset=0 bytes=3136*N live=0:2
      %5 alias=%dense/kernel bytes=401408 live=7:7
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kcompile.ir.graph import Value
from kcompile.ir.types import BATCH, DType, TensorType

ALIGN = 64
ELEMENT_BYTES = {d: d.itemsize for d in DType}  # (the dtype table's widths)


@dataclass(frozen=True)
class Size:
    """``coef * N**power``: a size or stride that may depend on the batch size."""

    coef: int
    power: int = 0

    def __mul__(self, other: Size) -> Size:
        return Size(self.coef * other.coef, self.power + other.power)

    @property
    def is_one(self) -> bool:
        return self.coef == 1 and self.power == 0

    @property
    def is_zero(self) -> bool:
        return self.coef == 0

    def at(self, batch: int) -> int:
        return self.coef * batch**self.power


def size_of(dim: int | str) -> Size:
    return Size(1, 1) if dim == BATCH else Size(int(dim))


def numel(shape) -> Size:
    out = Size(1)
    for d in shape:
        out = out * size_of(d)
    return out


def nbytes(t: TensorType) -> Size:
    return numel(t.shape) * Size(ELEMENT_BYTES[t.dtype])


@dataclass
class Allocation:
    start: int  # index of the node that makes the value
    end: int  # index of its last use (len(nodes) for graph outputs)
    size: Size
    offset: int = -1  # in the arena, for max_batch; -1 when aliased
    alias: Value | None = None  # an input updated in place, or the value this views


@dataclass
class MemoryPlan:
    """``arena_bytes`` is one arena laid out for ``max_batch``; except in a loop body
    (``per_row_bytes`` set), whose storage must be exact for every batch size: there
    values of fixed size share a region of ``arena_bytes``, values of ``k*N`` bytes a
    region of ``per_row_bytes * N``, where ``offset`` counts bytes per batch row."""

    max_batch: int
    allocations: dict[Value, Allocation] = field(default_factory=dict)
    arena_bytes: int = 0
    per_row_bytes: int | None = None

    def region_offset(self, v: Value) -> tuple[int, int]:
        """(0, bytes) in the fixed region or (1, bytes per row) in the per-row one."""
        a = self.allocations[self.root(v)]
        return (a.size.power if self.per_row_bytes is not None else 0), a.offset

    def root(self, v: Value) -> Value:
        """The value whose storage ``v`` uses (follows aliases)."""
        seen = set()
        while v in self.allocations and self.allocations[v].alias is not None:
            if v in seen:
                raise ValueError("alias cycle in memory plan")
            seen.add(v)
            v = self.allocations[v].alias
        return v

    def layout(self, batch: int) -> tuple[dict[Value, int], int]:
        """Offsets of the arena values and the arena size for ``batch``."""
        own = {v: a for v, a in self.allocations.items() if a.alias is None}
        return assign_offsets({v: (a.start, a.end, a.size.at(batch)) for v, a in own.items()})


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def assign_offsets(intervals: dict) -> tuple[dict, int]:
    """First-fit offsets, largest buffers first, so that no two buffers whose live
    intervals overlap share bytes. ``intervals``: key -> (start, end, bytes)."""
    placed: list[tuple[int, int, int, int]] = []  # (start, end, offset, size)
    offsets = {}
    order = sorted(intervals, key=lambda k: (-intervals[k][2], intervals[k][0]))
    for key in order:
        start, end, size = intervals[key]
        size = _aligned(max(size, 1))
        busy = sorted((o, o + s) for (s0, e0, o, s) in placed if s0 <= end and start <= e0)
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        offsets[key] = offset
        placed.append((start, end, offset, size))
    total = max((o + s for (_, _, o, s) in placed), default=0)
    return offsets, total
