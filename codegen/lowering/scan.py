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

A split loop also has the kernel that computes the parts of a concatenation store
them in its columns (``codegen.lowering.concat_in_place``: an LSTM's four gate gradients).

A time-major loop that saves its carries (for the gradient) copies none of them either:
a carry that its step overwrites in place (the carry's storage holds nothing else) gets
a second slot for its next value, and the table points the carry at its block of the
saved stack and the next value at the following block (the workspace at the last step),
so the step reads the saved carry where it is kept and writes the next one where it is
kept (``_direct_carries``; the LSTM's forward loop copied 2 x 16 KB a step and slice).

A split loop packs the invariants that only its products' B side reads (the recurrent
kernel) once, before its first step, into the GEMM's panels, and lowers those products
on them (``codegen.lowering.packed_products``): each slice packs its own copy, in its own core's
cache, and frees it after the loop. Two such products where one's result only feeds the
other's epilogue (an LSTM's input projection computed in its step, ``passes.loops``) run as
one kernel (``packed_products.paired``).

A split loop that saves nothing (a backward loop) has its step's last packed product ask,
a share per tile, for the next step's blocks of the stacks the step writes in place
(``PREFETCH_AHEAD``): the table holds a slot more for each, pointed at that block.

A split loop's elementwise kernel whose costly functions feed one another (an LSTM's
gates, then ``tanh(c)``; a GRU's reset gate, then its candidate's tanh) runs in two
stages over each row (``codegen.lowering.staged_loops``), the same bits in less time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llvmlite import ir

from kcompile.codegen.library.parallel import declare_parallel_for
from kcompile.codegen.loops import I8, I64, PTR, abi_function, for_range, i64, memcpy
from kcompile.codegen.lowering.concat_in_place import concats_in_place
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.codegen.lowering.packed_products import (
    PackedB,
    emit_free,
    emit_pack,
    lowering,
    packed_products,
    paired,
    pairs,
)
from kcompile.codegen.lowering.staged_loops import staged_lowering
from kcompile.codegen.lowering.step import NodeLowering, StepContext, emit_step, emits_region
from kcompile.ir import Graph, Node, TensorType, Value, abi
from kcompile.ir.buffers import BufferPlan, BufferSpec, plan_buffers
from kcompile.ir.memory import ELEMENT_BYTES, Size, nbytes, numel
from kcompile.ir.ops.scan import is_time_major, split_operands, time_axis
from kcompile.ir.rows import ROW, SHARED, kind_of, kind_of_type
from kcompile.ir.rows import splits_by_rows as scan_splits_by_rows

# A slice of the batch gets at least this many rows: fewer would leave the body's
# products too short for their micro-kernels.
MIN_SLICE_ROWS = 4
# Off: every scan runs as one loop over the whole batch (for A/B measurements).
SPLIT_ROWS = True
# On: a split loop's products read their invariant B packed once per loop
# (codegen.lowering.packed_products), calling the runtime library's micro-kernels and packer: the
# LSTM train step 3-5% less CPU for +0.2 s of compile (+1.1 s when each model compiled
# its own copies).
PACK_PRODUCTS = True
# Off: two products of a split loop's step where one's result only feeds the other's
# epilogue (an LSTM's projection computed in its step, ``passes.loops``) run as two
# kernels (A/B).
PAIR_PRODUCTS = True
# On: in a split loop that saves nothing for a gradient (a backward loop), the step's last
# packed product asks, a share per tile, for the next step's blocks of the stacks the step
# writes in place. The LSTM's backward gate kernel (light: it waited on its stores' misses)
# 299 -> 161 µs on 2 threads, its product 659 -> 686, the loop 1099 -> 917. Asking for the
# blocks it reads too: gate 95, product 800, loop 993; the same prefetches issued at once
# before each step: loop 1025 -> 967. A forward loop's gate kernel hides its misses
# behind its math (prefetches at once cost it +280 µs).
PREFETCH_AHEAD = True
# Off: a split loop's concatenations are copies of their own (A/B).
CONCAT_IN_PLACE = True
# Off: a time-major loop copies the carries entering each step into their saved stacks
# (A/B of ``_direct_carries``).
DIRECT_SAVED = True
# On: a split loop's elementwise kernel whose costly functions feed one another (an LSTM's
# gates, then tanh(c)) runs in two stages over each row (``codegen.lowering.staged_loops``). The
# LSTM's forward gate kernel at batch 64, 300 interleaved calls: 2 threads min 315 -> 254
# µs, median 417 -> 348 (the step's wall min 3.88 -> 3.77 ms); 1 thread 625 -> 499. The
# GRU's: 2 threads 231 -> 190 (median 344 -> 326), 1 thread 448 -> 354
# (``benchmarks/loop_flag_ab.py``, a loaded host).
STAGED_LOOPS = True


@emits_region("scan")
def scan(ctx: StepContext, k: Kernel, node: Node, outs, ins) -> None:
    body: Graph = node.attrs["body"]
    if body.memory is None:
        raise ValueError(f"codegen: the body {body.name} of a scan has no memory plan")
    plan = plan_buffers(body)
    _check_copy_back(body, plan)
    plan, direct = _direct_carries(node, body, plan) if DIRECT_SAVED else (plan, {})
    owner = k.fn.name
    split = SPLIT_ROWS and splits_by_rows(node)
    packed, lowerings, plain = (
        _packing(ctx, body, plan) if split and PACK_PRODUCTS else ({}, {}, {})
    )
    if split and CONCAT_IN_PLACE:
        joined = concats_in_place(body, ctx.math)
        lowerings.update({n: own for n, own in joined.items() if n not in lowerings})
    if split and STAGED_LOOPS:
        for n in body.nodes:
            staged = None if n in lowerings else staged_lowering(n, ctx.math)
            if staged is not None:
                lowerings[n] = staged
    ahead = {}
    if split and PREFETCH_AHEAD and not node.attrs["saved"] and plain:
        plan, ahead = _spread_prefetches(ctx, node, body, plan, lowerings, plain)
    body_ctx = replace(ctx.for_body(), lowerings=lowerings or None)
    step = emit_step(body_ctx, body, plan, f"{owner}_body", f"{owner}_", owner, in_loop=True)
    loop = _Loop(node, body, plan, step, packed, direct, ahead)
    if not split:
        loop.run(k, outs, ins, None)
        return
    b = k.b
    if ctx.profile:
        # The profile counts the body's kernels in the first slice only: its counters
        # then read as one thread's time per step, like an unsplit loop's.
        quiet = replace(body_ctx, profile=False)
        name, prefix = f"{owner}_body_other", f"{owner}_other_"
        loop.quiet = emit_step(quiet, body, plan, name, prefix, in_loop=True)
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


def _packing(
    ctx: StepContext, body: Graph, plan: BufferPlan
) -> tuple[dict[int, PackedB], dict[Node, NodeLowering], dict]:
    """The body's invariants to pack (by buffer slot), the lowerings of the products
    that read them, and those lowered alone (node -> (product, packing)). A product that writes over its own A (its tiles would overwrite rows
    that later panels read) keeps its invariant unpacked."""
    packed, lowerings = {}, {}
    specs, lowered, plain = {}, [], {}
    for value, (spec, products) in packed_products(body).items():
        if any(plan.slot[p.node.inputs[p.a]] in _slots(plan, p.node.outputs) for p in products):
            continue
        packed[plan.slot[value]] = spec
        for p in products:
            lowerings[p.node] = lowering(p, spec, ctx.math)
            specs[p.node] = spec
            lowered.append(p)
            plain[p.node] = (p, spec)
    if PAIR_PRODUCTS:
        for first, second in pairs(body, lowered, specs, plan.slot):
            pair = paired(first, specs[first.node], second, specs[second.node], ctx.math)
            lowerings.update(pair)
            plain.pop(first.node, None)
            plain.pop(second.node, None)
    return packed, lowerings, plain


def _spread_prefetches(
    ctx: StepContext, node: Node, body: Graph, plan: BufferPlan, lowerings, plain
) -> tuple[BufferPlan, dict[int, tuple[str, int]]]:
    """The plan with a slot more for each stack the step writes in place (the table
    points it at the next step's block), and the last product of the step
    lowered to ask for those blocks a share per tile (``packed_products._Spread``); and
    those slots (slot -> ("read" | "write", sequence or output index))."""
    target = next((n for n in reversed(body.nodes) if n in plain), None)
    if target is None or not is_time_major(node.attrs):
        return plan, {}
    probe = _Loop(node, body, plan, None)
    _, writes = probe.in_place()
    c = node.attrs["carries"]
    outputs = [v for _, v in body.outputs[c:]]
    wanted = [("write", j, outputs[j]) for j in writes.values()]
    if not wanted:
        return plan, {}
    buffers, slot, ahead, fakes = list(plan.buffers), dict(plan.slot), {}, []
    for kind, j, v in wanted:
        fake = Value(body, v.type, name=f"{v.name or 'value'}_ahead", role="step")
        slot[fake] = len(buffers)
        buffers.append(BufferSpec(len(buffers), v.type))
        ahead[slot[fake]] = (kind, j)
        fakes.append(fake)
    p, spec = plain[target]
    lowerings[target] = lowering(p, spec, ctx.math, tuple(fakes))
    return replace(plan, buffers=buffers, slot=slot), ahead


def _slots(plan: BufferPlan, values) -> set[int]:
    return {plan.slot[v] for v in values}


def _direct_carries(node: Node, body: Graph, plan: BufferPlan) -> tuple[BufferPlan, dict]:
    """The plan with a slot of its own for each carry's next value where the loop keeps
    its saved carries in their stacks (``_Loop.run``), and those carries (carry index ->
    the next value's slot). A carry qualifies in a time-major loop that saves its
    carries when its step overwrites it in place and nothing else shares its storage:
    the next value is then written once, after the step's last read of the old one."""
    attrs = node.attrs
    if not (attrs["saved"] and is_time_major(attrs) and attrs["length"] >= 1):
        return plan, {}
    c = attrs["carries"]
    sharing: dict[int, list] = {}
    for v, s in plan.slot.items():
        sharing.setdefault(s, []).append(v)
    outputs = [v for _, v in body.outputs]
    slot, buffers, direct = dict(plan.slot), list(plan.buffers), {}
    for j, (carry, (_, after)) in enumerate(zip(body.inputs[:c], body.outputs[:c])):
        s = plan.slot[carry]
        if after.node is None or plan.slot[after] != s or outputs.count(after) != 1:
            continue
        if set(sharing[s]) != {carry, after}:
            continue
        slot[after] = len(buffers)
        buffers.append(BufferSpec(len(buffers), after.type))
        direct[j] = slot[after]
    if not direct:
        return plan, {}
    outs = {name: slot[v] for name, v in body.outputs}
    return replace(plan, buffers=buffers, slot=slot, outputs=outs), direct


def splits_by_rows(node: Node) -> bool:
    """Whether the scan ``node`` runs on slices of the batch (``ir.rows``)."""
    return scan_splits_by_rows(node.attrs)


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

    def __init__(
        self,
        node: Node,
        body: Graph,
        plan: BufferPlan,
        step: ir.Function,
        packed=None,
        direct=None,
        ahead=None,
    ) -> None:
        self.node, self.body, self.plan, self.step = node, body, plan, step
        self.packed: dict[int, PackedB] = packed or {}  # slot -> its panels' layout
        # carry index -> its next value's slot, of the carries kept in their saved stacks
        self.direct: dict[int, int] = direct or {}
        self.quiet: ir.Function | None = None  # the step of slices other than the first
        self.c, self.length = node.attrs["carries"], node.attrs["length"]
        self.per_step = len(body.outputs) - self.c
        self.carries, self.steps, _ = split_operands(node.attrs, list(body.inputs))
        self.owner: dict[int, object] = {}
        for v, s in plan.slot.items():
            self.owner.setdefault(s, v)
        for j, s in self.direct.items():  # where the last step leaves the carry
            self.owner[s] = self.carries[j]
        # slot -> ("read" | "write", index) of the slots pointed at the next step's block
        self.ahead: dict[int, tuple[str, int]] = ahead or {}
        outputs = [v for _, v in body.outputs[self.c :]]
        for s, (kind, j) in self.ahead.items():  # any valid pointer before the first step
            self.owner[s] = self.steps[j] if kind == "read" else outputs[j]

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
        allocated = []
        for s, spec in self.packed.items():  # the body's kernels read these slots packed
            panels, on_heap = emit_pack(b, spec, pointer[s])
            b.store(panels, slots[s])
            allocated += [panels] if on_heap else []
        reads, writes = self.in_place()
        carry_ptrs = [pointer[plan.slot[v]] for v in self.carries]
        moved = [j for j, v in enumerate(self.carries) if part is None or kind_of(v) == ROW]
        saved = outs[c + self.per_step + 2 :]
        reverse = self.node.attrs["reverse"]
        direct = {j: s for j, s in self.direct.items() if j in moved}
        for j in moved:
            v = self.carries[j]
            dst = carry_ptrs[j]
            if j in direct:  # the first step reads it from its saved block
                dst = _block(k, v.type, i64(length - 1 if reverse else 0), saved[j].ptr, part)
            _copy_rows(k, v.type, dst, ins[j].ptr, part)
        outputs = [v for _, v in body.outputs[c:]]
        with for_range(b, i64(length), "t") as i:
            t = b.sub(i64(length - 1), i) if reverse else i
            for j, (v, ptr, stack) in enumerate(zip(self.carries, carry_ptrs, saved)):
                if j not in direct:
                    _copy_step(k, v.type, length, t, ptr, stack.ptr, True, part, major)
                    continue
                following = b.sub(t, i64(1)) if reverse else b.add(t, i64(1))
                last = b.icmp_signed("==", i, i64(length - 1))
                # the last step's following block would be outside the stack
                following = b.select(last, t, following)
                after = _block(k, v.type, following, stack.ptr, part)
                b.store(_block(k, v.type, t, stack.ptr, part), slots[plan.slot[v]])
                b.store(b.select(last, ptr, after), slots[direct[j]])
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
            if self.ahead:
                ahead = b.sub(t, i64(1)) if reverse else b.add(t, i64(1))
                last = b.icmp_signed("==", i, i64(length - 1))
                ahead = b.select(last, t, ahead)
                for s, (kind, j) in self.ahead.items():
                    v = self.steps[j] if kind == "read" else outputs[j]
                    stack = ins[c + j].ptr if kind == "read" else outs[c + j].ptr
                    b.store(_block(k, v.type, ahead, stack, part), slots[s])
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
        for panels in allocated:
            emit_free(b, panels)


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
