"""Lowering ``scan``: the body becomes its own function in the same module, run once per
step over a table of pointers into the scan's workspace.

Per step the loop copies the carries entering the step into the saved stack
(when the gradient needs them) and each sequence's slice into the body's step
inputs, calls the body, and copies the per-step outputs into their stacks. The
body itself writes its next carries into its carry inputs (outputs named like
inputs are copied back, or written in place). Nothing is allocated: the
workspace is a result of the scan, placed in the arena by the memory plan.

A time-major scan (``time_major``: steps on axis 0 of every stack) copies nothing of
its sequences and per-step outputs: a step's slice of the rows is one block of the
stack, and the table points the body's step inputs and per-step outputs at it (when
nothing else in the body shares their buffers). Only the saved carries are copied,
one block per step.

When the body computes each batch row from that row alone (``ir.rows``: a recurrent
layer's step, forward and backward once the weight gradients are hoisted out of the
loop), the batch is cut into one slice per thread and each thread runs the whole
loop, every step, on its slice: one parallel region per scan instead of one per
kernel and step, no thread ever waits for another inside the loop, and a slice's
carries stay in its own core's cache. The body's kernels, called inside a parallel
region, run in their thread. Each slice uses its own rows of the per-row workspace
(laid out for the slice's row count); values without a batch axis (the fixed
workspace) are only read inside the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llvmlite import ir

from kcompile.codegen.kernel import Kernel, Operand
from kcompile.codegen.loops import I8, I64, PTR, abi_function, for_range, i64, memcpy
from kcompile.codegen.parallel import declare_parallel_for
from kcompile.codegen.step import StepContext, emit_step, emits_region
from kcompile.ir import Graph, Node, TensorType, abi
from kcompile.ir.buffers import BufferPlan, plan_buffers
from kcompile.ir.memory import ELEMENT_BYTES, Size, nbytes, numel
from kcompile.ir.ops.scan import is_time_major, split_operands, time_axis
from kcompile.ir.rows import ROW, SHARED, kind_of, kind_of_type, separable_rows

# A slice of the batch gets at least this many rows: fewer would leave the body's
# products too short for their micro-kernels.
MIN_SLICE_ROWS = 4
# Off: every scan runs as one loop over the whole batch (for A/B measurements).
SPLIT_ROWS = True


@emits_region("scan")
def scan(ctx: StepContext, k: Kernel, node: Node, outs, ins) -> None:
    body: Graph = node.attrs["body"]
    if body.memory is None:
        raise ValueError(f"codegen: the body {body.name} of a scan has no memory plan")
    plan = plan_buffers(body)
    _check_copy_back(body, plan)
    owner = k.fn.name
    step = emit_step(ctx.for_body(), body, plan, f"{owner}_body", f"{owner}_", owner)
    loop = _Loop(node, body, plan, step)
    if not (SPLIT_ROWS and splits_by_rows(node)):
        loop.run(k, outs, ins, None)
        return
    b = k.b
    if ctx.profile:
        # The profile counts the body's kernels in the first slice only: its counters
        # then read as one thread's time per step, like an unsplit loop's.
        quiet = replace(ctx.for_body(), profile=False)
        loop.quiet = emit_step(quiet, body, plan, f"{owner}_body_other", f"{owner}_other_")
    shared = [j for j, v in enumerate(loop.carries) if kind_of(v) == SHARED]
    for j in shared:  # passed through unchanged (``splits_by_rows``): in and out once
        k.memcpy(
            loop.carry_pointer(k, outs, ins, j, None), ins[j].ptr, nbytes(loop.carries[j].type)
        )
    chunk = Kernel.callback(k.module, f"{owner}_rows", len(k.args), 1, extra=1)
    part = _part(chunk.b, chunk.n, chunk.params[0], chunk.extra[0])
    loop.run(chunk, chunk.operands_from(k, outs), chunk.operands_from(k, ins), part)
    chunk.finish()
    threads = b.zext(b.call(_get_threads(k.module), []), I64)
    most = b.udiv(k.n, i64(MIN_SLICE_ROWS))
    slices = b.select(b.icmp_signed("<", most, threads), most, threads)
    slices = b.select(b.icmp_signed("<", slices, i64(1)), i64(1), slices)
    b.call(declare_parallel_for(k.module), [chunk.entry, k.context([slices]), slices])
    for j in shared:
        k.memcpy(
            outs[j].ptr, loop.carry_pointer(k, outs, ins, j, None), nbytes(loop.carries[j].type)
        )


def splits_by_rows(node: Node) -> bool:
    """Whether the scan may run on slices of the batch, one loop per slice: its body
    computes each row alone, every sequence and per-step output has the batch axis,
    and a carry without it is passed through unchanged (a hoisted accumulator)."""
    body: Graph = node.attrs["body"]
    c = node.attrs["carries"]
    carries, steps, _ = split_operands(node.attrs, list(body.inputs))
    if any(kind_of(v) != ROW for v in steps):
        return False
    if any(kind_of(v) != ROW for _, v in body.outputs[c:]):
        return False
    for v, (_, out) in zip(carries, body.outputs[:c]):
        kind = kind_of(v)
        if kind is None or (kind == SHARED and (out is not v or node.attrs["saved"])):
            return False
    return separable_rows(body)


@dataclass
class _Part:
    """Rows ``[first, first + rows)`` of the batch."""

    first: ir.Value
    rows: ir.Value


def _part(b: ir.IRBuilder, n, index, count) -> _Part:
    per = b.udiv(b.add(n, b.sub(count, i64(1))), count)
    first = b.mul(index, per)
    end = b.add(first, per)
    end = b.select(b.icmp_signed("<", end, n), end, n)
    rows = b.sub(end, first)
    return _Part(first, b.select(b.icmp_signed("<", rows, i64(0)), i64(0), rows))


class _Loop:
    """The loop of one scan, emitted whole (``part`` None) or for a slice of the batch."""

    def __init__(self, node: Node, body: Graph, plan: BufferPlan, step: ir.Function) -> None:
        self.node, self.body, self.plan, self.step = node, body, plan, step
        self.quiet: ir.Function | None = None  # the step of slices other than the first
        self.c, self.length = node.attrs["carries"], node.attrs["length"]
        self.per_step = len(body.outputs) - self.c
        self.carries, self.steps, _ = split_operands(node.attrs, list(body.inputs))
        self.owner: dict[int, object] = {}
        for v, s in plan.slot.items():
            self.owner.setdefault(s, v)

    def pointer(self, k: Kernel, outs, ins, v, part: _Part | None) -> ir.Value:
        """Where body value ``v`` lives: a caller's buffer for an invariant, else the
        workspace (the slice's own rows of the per-row region)."""
        b = k.b
        if v.node is None and v.role == "invariant":
            ptr = ins[self.body.inputs.index(v)].ptr
            return _row_offset(b, ptr, v.type, part)
        region, offset = self.body.memory.region_offset(v)
        if not region:
            return b.gep(
                outs[self.c + self.per_step].ptr, [i64(offset)], inbounds=True, source_etype=I8
            )
        rows_ptr = outs[self.c + self.per_step + 1].ptr
        n = k.n if part is None else part.rows
        at = b.mul(i64(offset), n)
        if part is not None:
            at = b.add(at, b.mul(part.first, i64(self.body.memory.per_row_bytes)))
        return b.gep(rows_ptr, [at], inbounds=True, source_etype=I8)

    def carry_pointer(self, k: Kernel, outs, ins, j: int, part: _Part | None) -> ir.Value:
        return self.pointer(k, outs, ins, self.carries[j], part)

    def in_place(self) -> tuple[dict[int, int], dict[int, int]]:
        """Of a time-major scan: the slots of step inputs read straight from their
        sequence (slot -> sequence index) and of per-step outputs written straight into
        their stack (slot -> output index). A slot qualifies when nothing else lives in
        it: nothing overwrites a step input, and an output shares no carry's or input's
        storage."""
        if not is_time_major(self.node.attrs):
            return {}, {}
        plan, body, c = self.plan, self.body, self.c
        users: dict[int, int] = {}
        for s in plan.slot.values():
            users[s] = users.get(s, 0) + 1
        inputs = {plan.slot[v] for v in body.inputs}
        copied = {d for d, _, _ in plan.copy_back} | {src for _, src, _ in plan.copy_back}
        reads = {plan.slot[v]: j for j, v in enumerate(self.steps) if users[plan.slot[v]] == 1}
        outputs = [plan.slot[v] for _, v in body.outputs[c:]]
        writes = {
            s: j
            for j, s in enumerate(outputs)
            if s not in inputs and s not in copied and outputs.count(s) == 1
        }
        return reads, writes

    def run(self, k: Kernel, outs: list[Operand], ins: list[Operand], part: _Part | None) -> None:
        b = k.b
        plan, body, c, length = self.plan, self.body, self.c, self.length
        major = is_time_major(self.node.attrs)
        n = k.n if part is None else part.rows
        table_type = ir.ArrayType(PTR, len(plan.buffers))
        table = b.alloca(table_type, name="table")
        table.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque
        pointer, slots = {}, {}
        for s in range(len(plan.buffers)):
            ptr = self.pointer(k, outs, ins, self.owner[s], part)
            pointer[s] = ptr
            slots[s] = b.gep(table, [i64(0), i64(s)], inbounds=True, source_etype=table_type)
            b.store(ptr, slots[s])
        reads, writes = self.in_place()
        carry_ptrs = [pointer[plan.slot[v]] for v in self.carries]
        moved = [j for j, v in enumerate(self.carries) if part is None or kind_of(v) == ROW]
        for j in moved:
            v = self.carries[j]
            _copy_rows(k, v.type, carry_ptrs[j], ins[j].ptr, part)
        saved = outs[c + self.per_step + 2 :]
        outputs = [v for _, v in body.outputs[c:]]
        with for_range(b, i64(length), "t") as i:
            t = b.sub(i64(length - 1), i) if self.node.attrs["reverse"] else i
            for v, ptr, stack in zip(self.carries, carry_ptrs, saved):
                _copy_step(k, v.type, length, t, ptr, stack.ptr, True, part, major)
            for s, j in reads.items():
                b.store(_block(k, self.steps[j].type, t, ins[c + j].ptr, part), slots[s])
            for s, j in writes.items():
                b.store(_block(k, outputs[j].type, t, outs[c + j].ptr, part), slots[s])
            for j, v in enumerate(self.steps):
                if plan.slot[v] not in reads:
                    stack = ins[c + j].ptr
                    _copy_step(
                        k, v.type, length, t, pointer[plan.slot[v]], stack, False, part, major
                    )
            step = self.step
            if self.quiet is not None and part is not None:
                first = b.icmp_signed("==", part.first, i64(0))
                step = b.select(first, self.step, self.quiet)
            b.call(step, [table, n])
            for v, stack in zip(outputs, outs[c : c + self.per_step]):
                if plan.slot[v] not in writes:
                    one = pointer[plan.slot[v]]
                    _copy_step(k, v.type, length, t, one, stack.ptr, True, part, major)
        for j in moved:
            v = self.carries[j]
            _copy_rows(k, v.type, outs[j].ptr, carry_ptrs[j], part, to_caller=True)


def _block(k: Kernel, t: TensorType, step, stack, part: _Part | None) -> ir.Value:
    """Where step ``step``'s value (of type ``t``) of the slice's rows lies in a
    time-major stack: one contiguous block."""
    b = k.b
    at = b.mul(step, k.value(nbytes(t)))  # k.n: every row of the batch
    if part is not None and kind_of_type(t) == ROW:
        at = b.add(at, b.mul(part.first, i64(nbytes(t).coef)))
    return b.gep(stack, [at], inbounds=True, source_etype=I8)


def _row_offset(b: ir.IRBuilder, ptr, t: TensorType, part: _Part | None) -> ir.Value:
    """``ptr`` advanced to the slice's first row, for a value with the batch axis."""
    if part is None or kind_of_type(t) != ROW:
        return ptr
    row = nbytes(t).coef
    return b.gep(ptr, [b.mul(part.first, i64(row))], inbounds=True, source_etype=I8)


def _copy_rows(k: Kernel, t: TensorType, dst, src, part: _Part | None, to_caller=False) -> None:
    """A carry between the caller's buffer and the workspace: whole, or the slice's rows
    (the caller's buffer holds every row, the workspace the slice's)."""
    if part is None:
        k.memcpy(dst, src, nbytes(t))
        return
    b = k.b
    size = b.mul(part.rows, i64(nbytes(t).coef))
    if to_caller:
        dst = _row_offset(b, dst, t, part)
    else:
        src = _row_offset(b, src, t, part)
    memcpy(b, dst, src, size)


def _copy_step(
    k: Kernel,
    t: TensorType,
    length: int,
    step,
    one,
    stack,
    to_stack: bool,
    part: _Part | None,
    major: bool = False,
) -> None:
    """Copy a per-step value ``one`` (of type ``t``) to or from position ``step`` of
    ``stack``; of a slice, its rows (``one`` holds the slice's rows, ``stack`` all)."""
    b = k.b
    if major:  # one block
        at = _block(k, t, step, stack, part)
        size = k.value(nbytes(t))
        if part is not None and kind_of_type(t) == ROW:
            size = b.mul(part.rows, i64(nbytes(t).coef))
        if to_stack:
            memcpy(b, at, one, size)
        else:
            memcpy(b, one, at, size)
        return
    a = time_axis(t.rank)
    row = numel(t.shape[a:]) * Size(ELEMENT_BYTES[t.dtype])
    row_bytes = k.value(row)
    if part is None:
        rows, first = k.value(numel(t.shape[:a])), i64(0)
    else:
        rows, first = part.rows, part.first
    with for_range(b, rows, "row") as r:
        at_one = b.mul(r, row_bytes)
        at_stack = b.mul(b.add(b.mul(b.add(first, r), i64(length)), step), row_bytes)
        p_one = b.gep(one, [at_one], inbounds=True, source_etype=I8)
        p_stack = b.gep(stack, [at_stack], inbounds=True, source_etype=I8)
        if to_stack:
            k.memcpy(p_stack, p_one, row)
        else:
            k.memcpy(p_one, p_stack, row)


def _get_threads(module: ir.Module) -> ir.Function:
    existing = module.globals.get(abi.GET_THREADS.symbol)
    return existing if existing is not None else abi_function(module, abi.GET_THREADS)


def _check_copy_back(body: Graph, plan) -> None:
    written = set()
    for dst, src, _ in plan.copy_back:
        if src in written:
            raise NotImplementedError(
                f"codegen: the loop body {body.name} permutes its carries; "
                "a carry that is another carry's old value is not supported"
            )
        written.add(dst)
