"""Lowering ``scan``: the body becomes its own function in the same module, run once per
step over a table of pointers into the scan's workspace.

Per step the loop copies the carries entering the step into the saved stack
(when the gradient needs them) and each sequence's slice into the body's step
inputs, calls the body, and copies the per-step outputs into their stacks. The
body itself writes its next carries into its carry inputs (outputs named like
inputs are copied back, or written in place). Nothing is allocated: the
workspace is a result of the scan, placed in the arena by the memory plan.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.kernel import Kernel
from kcompile.codegen.loops import I8, PTR, for_range, i64
from kcompile.codegen.step import StepContext, emit_step, emits_region
from kcompile.ir import Graph, Node, TensorType
from kcompile.ir.buffers import plan_buffers
from kcompile.ir.memory import ELEMENT_BYTES, Size, nbytes, numel
from kcompile.ir.ops.scan import split_operands, time_axis


@emits_region("scan")
def scan(ctx: StepContext, k: Kernel, node: Node, outs, ins) -> None:
    body: Graph = node.attrs["body"]
    if body.memory is None:
        raise ValueError(f"codegen: the body {body.name} of a scan has no memory plan")
    plan = plan_buffers(body)
    _check_copy_back(body, plan)
    owner = k.fn.name
    step = emit_step(ctx.for_body(), body, plan, f"{owner}_body", f"{owner}_", owner)
    c, length = node.attrs["carries"], node.attrs["length"]
    per_step = len(body.outputs) - c
    fixed, rows = outs[c + per_step].ptr, outs[c + per_step + 1].ptr
    b = k.b
    table_type = ir.ArrayType(PTR, len(plan.buffers))
    table = b.alloca(table_type, name="table")
    table.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    pointer = {}
    owner: dict[int, object] = {}
    for v, s in plan.slot.items():
        owner.setdefault(s, v)
    for s in range(len(plan.buffers)):
        v = owner[s]
        if v.node is None and v.role == "invariant":
            ptr = ins[body.inputs.index(v)].ptr
        else:
            region, offset = body.memory.region_offset(v)
            at = k.value(Size(offset, region))
            ptr = b.gep(rows if region else fixed, [at], inbounds=True, source_etype=I8)
        pointer[s] = ptr
        slot_ptr = b.gep(table, [i64(0), i64(s)], inbounds=True, source_etype=table_type)
        b.store(ptr, slot_ptr)
    carries, steps, _ = split_operands(node.attrs, list(body.inputs))
    carry_ptrs = [pointer[plan.slot[v]] for v in carries]
    for j, v in enumerate(carries):
        k.memcpy(carry_ptrs[j], ins[j].ptr, nbytes(v.type))
    saved = outs[c + per_step + 2 :]
    with for_range(b, i64(length), "t") as i:
        t = b.sub(i64(length - 1), i) if node.attrs["reverse"] else i
        for v, ptr, stack in zip(carries, carry_ptrs, saved):
            _copy_step(k, v.type, length, t, ptr, stack.ptr, to_stack=True)
        for j, v in enumerate(steps):
            _copy_step(k, v.type, length, t, pointer[plan.slot[v]], ins[c + j].ptr, to_stack=False)
        b.call(step, [table, k.n])
        for (_, v), stack in zip(body.outputs[c:], outs[c : c + per_step]):
            _copy_step(k, v.type, length, t, pointer[plan.slot[v]], stack.ptr, to_stack=True)
    for j, v in enumerate(carries):
        k.memcpy(outs[j].ptr, carry_ptrs[j], nbytes(v.type))


def _copy_step(k: Kernel, t: TensorType, length: int, step, one, stack, to_stack: bool) -> None:
    """Copy a per-step value ``one`` (of type ``t``) to or from position ``step`` of ``stack``."""
    a = time_axis(t.rank)
    rows = numel(t.shape[:a])
    row = numel(t.shape[a:]) * Size(ELEMENT_BYTES[t.dtype])
    b = k.b
    row_bytes = k.value(row)
    with for_range(b, k.value(rows), "row") as r:
        at_one = b.mul(r, row_bytes)
        at_stack = b.mul(b.add(b.mul(r, i64(length)), step), row_bytes)
        p_one = b.gep(one, [at_one], inbounds=True, source_etype=I8)
        p_stack = b.gep(stack, [at_stack], inbounds=True, source_etype=I8)
        if to_stack:
            k.memcpy(p_stack, p_one, row)
        else:
            k.memcpy(p_one, p_stack, row)


def _check_copy_back(body: Graph, plan) -> None:
    written = set()
    for dst, src, _ in plan.copy_back:
        if src in written:
            raise NotImplementedError(
                f"codegen: the loop body {body.name} permutes its carries; "
                "a carry that is another carry's old value is not supported"
            )
        written.add(dst)
