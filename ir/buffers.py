"""The buffers of a planned graph: one per graph input and per node result that owns
storage, and which buffer holds each output.

Codegen lowers kernels over these buffers; the runtimes (the JIT's and the one that
loads ahead-of-time artifacts) allocate them, both from this one plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from kcompile.ir.graph import Graph, Value
from kcompile.ir.memory import ELEMENT_BYTES, Size
from kcompile.ir.types import TensorType

# The checking mode's guard zones around every buffer: the runtime lays them out, the
# code codegen emits checks them (KCOMPILE_CHECK=1).
GUARD_BYTES = 64  # each zone; a multiple of 64 keeps the buffer between zones aligned
GUARD_BYTE = 0xA5


@dataclass(frozen=True)
class BufferSpec:
    index: int
    type: TensorType
    input: str | None = None  # the graph input this buffer holds, if any

    @property
    def element_bytes(self) -> int:
        return ELEMENT_BYTES[self.type.dtype]


@dataclass
class BufferPlan:
    buffers: list[BufferSpec]
    slot: dict[Value, int]
    outputs: dict[str, int]  # output name -> buffer index holding it after a call
    copy_back: list[tuple[int, int, Value]]  # (input slot, result slot, value)
    arena: dict[int, tuple[int, int, Size]]  # buffer index -> (start, end, bytes) when planned


def plan_buffers(graph: Graph) -> BufferPlan:
    """One buffer per graph input and per node result that owns storage; which buffer
    holds each output. With a memory plan (``graph.memory``), views and in-place
    results share their root's buffer, and the arena values carry live intervals."""
    slot: dict[Value, int] = {}
    buffers: list[BufferSpec] = []
    arena: dict[int, tuple[int, int, Size]] = {}
    memory = graph.memory
    for v in graph.inputs:
        slot[v] = len(buffers)
        buffers.append(BufferSpec(len(buffers), v.type, v.name))
    for node in graph.nodes:
        for v in node.outputs:
            root = memory.root(v) if memory is not None else v
            if root is not v:
                slot[v] = slot[root]
                continue
            slot[v] = len(buffers)
            buffers.append(BufferSpec(len(buffers), v.type))
            if memory is not None:
                a = memory.allocations[v]
                arena[slot[v]] = (a.start, a.end, a.size)
    outputs: dict[str, int] = {}
    copy_back = []
    inputs = {v.name: v for v in graph.inputs}
    for name, v in graph.outputs:
        target = inputs.get(name)
        if target is not None and slot[target] != slot[v] and target.type == v.type:
            copy_back.append((slot[target], slot[v], v))
            outputs[name] = slot[target]
        else:
            outputs[name] = slot[v]
    return BufferPlan(buffers, slot, outputs, copy_back, arena)
