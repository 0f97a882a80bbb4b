"""A fused ``row`` body in a few passes over each row.

A row body (softmax, layer normalization, their gradients) alternates elementwise work on
the row's C columns with reductions over them. Each reduction splits the row into phases:
a phase is one loop over the columns that evaluates every elementwise node whose operands
are ready by then, accumulates the sums that read them and stores results as they are
made. A maximum or minimum, which LLVM does not vectorize as a loop-carried value, runs
between phases over its operand in memory, ``ROW_LANES`` columns at a time. A value made
in one phase and read in a later one is kept in a stack row (or read back from the result
it was stored in). Softmax is then three passes over its row: the maximum, the
exponentials and their sum, the division.

``plan_row`` returns None for a body it does not cover (argmax, one-hot, sums over rows,
integer reductions); ``codegen/lowering/fused.py`` then lowers that body node by node.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from llvmlite import ir

from kcompile.codegen.loops import F32, I32, for_range, for_reduce, i64
from kcompile.codegen.lowering.kernel import LLVM_TYPES, Kernel, Operand
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.scalar import SCALAR_RULES, reduction_combine, reduction_start
from kcompile.ir import DType, Graph, Node, Value
from kcompile.ir.memory import Size, numel, size_of
from kcompile.ir.traits import Reduction, is_sum_over_rows

LLVM_CONST = {
    DType.f32: lambda v: ir.Constant(F32, float(v)),
    DType.i32: lambda v: ir.Constant(I32, int(v)),
    DType.bool: lambda v: ir.Constant(ir.IntType(8), int(bool(v))),
}

# Ops a row kernel reads through to their operand's row (no values of their own).
ROW_ALIASES = ("broadcast_to", "reshape", "stop_gradient")

# Floats per vector accumulator of a row reduction: one AVX-512 register, two AVX ones.
ROW_LANES = 16
# Off: a row's exp(x - max(x)) takes the general exp (for A/B measurements; the compile
# cache does not see this flag: measure with KCOMPILE_CACHE=0 or distinct versions).
SHIFTED_EXP = True


@dataclass(frozen=True)
class SpreadRows:
    """The row part of the offset of an operand broadcast along some of the row axes (an
    attention mask [N, 1, T, T] over rows [N, H, T]): row ``r``'s offset is the sum, over
    the axes it keeps, of ``(r // inner) % extent * stride`` (no remainder on the
    outermost axis, which ``r`` never passes)."""

    terms: tuple[tuple[Size, Size, Size, bool], ...]  # (inner, extent, stride, outermost)

    is_zero = False
    is_one = False

    def offset(self, k: Kernel, r: ir.Value) -> ir.Value:
        b = k.b
        total = i64(0)
        for inner, extent, stride, outermost in self.terms:
            index = r if inner.is_one else b.udiv(r, k.value(inner))
            if not outermost:
                index = b.urem(index, k.value(extent))
            total = b.add(total, index if stride.is_one else b.mul(index, k.value(stride)))
        return total


def offset2d(k: Kernel, strides: list, i, j) -> ir.Value:
    """Offset of element (row i, column j) for (row, column) strides; the row part may be
    a ``SpreadRows``."""
    row_stride, col_stride = strides
    b = k.b
    offset = i64(0)
    if isinstance(row_stride, SpreadRows):
        offset = row_stride.offset(k, i)
    elif not row_stride.is_zero:
        offset = b.mul(i, k.value(row_stride))
    if not col_stride.is_zero:
        step = j if col_stride.is_one else b.mul(j, k.value(col_stride))
        offset = b.add(offset, step)
    return offset


def row_strides(shape, rows_shape, cols) -> list:
    """(row stride, column stride) of an operand of a row kernel: the row stride a
    ``SpreadRows`` for an operand broadcast along some row axes but not all."""
    shape = tuple(shape)
    if shape == (*rows_shape, cols):
        return [Size(cols), Size(1)]
    if shape in (tuple(rows_shape), (*rows_shape, 1)):
        return [Size(1), Size(0)]
    if shape in ((cols,), (1, cols)):
        return [Size(0), Size(1)]
    if all(d == 1 for d in shape):
        return [Size(0), Size(0)]
    spread = _spread_rows(shape, tuple(rows_shape), cols)
    if spread is None:
        raise NotImplementedError(
            f"codegen: operand of shape {shape} in a row kernel over {rows_shape} x {cols}"
        )
    return spread


def _spread_rows(shape: tuple, rows_shape: tuple, cols) -> list | None:
    """Strides of an operand that broadcasts (numpy's rules) to the rows and columns."""
    full = (*rows_shape, cols)
    if len(shape) > len(full):
        return None
    shape = (1,) * (len(full) - len(shape)) + shape
    if any(d != f and d != 1 for d, f in zip(shape, full)):
        return None
    element = [numel(shape[a + 1 :]) for a in range(len(shape))]
    terms = []
    for axis, extent in enumerate(rows_shape):
        if shape[axis] == 1 or extent == 1:
            continue
        inner = numel(rows_shape[axis + 1 :])
        outermost = not any(rows_shape[a] != 1 for a in range(axis))
        terms.append((inner, size_of(extent), element[axis], outermost))
    column = Size(1) if shape[-1] != 1 else Size(0)
    if not terms:
        return [Size(0), column]
    return [SpreadRows(tuple(terms)), column]


def reduce_row(k: Kernel, m: MathLib, reduction: Reduction, ptr, start, ncols) -> ir.Value:
    """A row's sum, maximum or minimum: ``ROW_LANES`` columns at a time into up to
    ``ROW_CHAINS`` vector accumulators, combined as a tree, then across the lanes as a
    tree and the last columns one by one. A row's reduction is on the critical path of
    its kernel (everything after it waits), so its latency counts more than its
    instructions: independent accumulators, and a maximum as a compare and a select
    (one ``vmaxps``) with NaN tracked beside it instead of ``llvm.maximum``'s longer
    sequence."""
    b = k.b
    cols = ncols.constant
    whole = cols // ROW_LANES
    scalar = reduction_combine(b, m, reduction, DType.f32)
    first = reduction_start(reduction, DType.f32)
    acc = first
    if not whole:
        for c in range(cols):
            at = b.gep(ptr, [b.add(start, i64(c))], inbounds=True, source_etype=F32)
            acc = scalar(acc, b.load(at, typ=F32))
        return acc
    vec = ir.VectorType(F32, ROW_LANES)
    mask = ir.VectorType(ir.IntType(1), ROW_LANES)
    join, nan = _fast_combine(b, reduction)
    chains = min(ROW_CHAINS, whole)

    def load(index):
        at = b.gep(
            ptr, [b.add(start, b.mul(index, i64(ROW_LANES)))], inbounds=True, source_etype=F32
        )
        return b.load(at, typ=vec, align=4)

    inits = [ir.Constant(vec, [first] * ROW_LANES)] * chains
    inits.append(ir.Constant(mask, [0] * ROW_LANES))
    rounds = whole // chains
    with for_reduce(b, i64(rounds), inits, "rv") as (i, a):
        for chain in range(chains):
            x = load(b.add(b.mul(i, i64(chains)), i64(chain)))
            a[chain] = join(a[chain], x)
            if nan:
                a[-1] = b.or_(a[-1], b.fcmp_unordered("uno", x, x))
    parts, seen = list(a[:chains]), a[-1]
    for index in range(rounds * chains, whole):
        x = load(i64(index))
        parts.append(join(parts.pop(0), x))
        if nan:
            seen = b.or_(seen, b.fcmp_unordered("uno", x, x))
    while len(parts) > 1:  # pairwise, as a tree
        parts = [join(parts[j], parts[j + 1]) for j in range(0, len(parts) - 1, 2)] + (
            [parts[-1]] if len(parts) % 2 else []
        )
    width = ROW_LANES
    acc = parts[0]
    while width > 1:  # halves folded onto each other
        width //= 2
        low = b.shuffle_vector(acc, acc, ir.Constant(ir.VectorType(I32, width), list(range(width))))
        high = b.shuffle_vector(
            acc, acc, ir.Constant(ir.VectorType(I32, width), list(range(width, 2 * width)))
        )
        acc = join(low, high)
    acc = b.extract_element(acc, i64(0))
    for c in range(whole * ROW_LANES, cols):
        at = b.gep(ptr, [b.add(start, i64(c))], inbounds=True, source_etype=F32)
        acc = scalar(acc, b.load(at, typ=F32))
    if nan:
        any_nan = b.icmp_unsigned(
            "!=", b.bitcast(seen, ir.IntType(ROW_LANES)), ir.Constant(ir.IntType(ROW_LANES), 0)
        )
        acc = b.select(any_nan, ir.Constant(F32, math.nan), acc)
    return acc


# Independent vector accumulators of a row reduction.
ROW_CHAINS = 4


def _fast_combine(b: ir.IRBuilder, reduction: Reduction):
    """(join of two accumulators, whether NaNs are tracked apart): a sum reassociates; a
    maximum or minimum is a compare and a select, which drops NaNs (tracked apart) and
    may pick either of two equal values (0 and -0)."""
    if reduction.combine == "add":
        return (lambda acc, x: b.fadd(acc, x, flags=["reassoc", "contract"])), False
    if reduction.combine == "mul":
        return (lambda acc, x: b.fmul(acc, x)), False
    pred = {"max": ">", "min": "<"}[reduction.combine]
    return (lambda acc, x: b.select(b.fcmp_ordered(pred, acc, x), acc, x)), True


@dataclass
class RowPlan:
    """Where each body value of a row kernel is made. Phase ``p`` runs ``between[p]``
    (per-row scalars, maxima over materialized rows) and then one loop over the columns
    evaluating ``loops[p]`` (elementwise rows, sums accumulated) and storing
    ``stores[p]`` (the results made in it)."""

    phases: int = 0
    root: dict[Value, Value] = field(default_factory=dict)  # alias -> the value it reads
    made: dict[Value, int] = field(default_factory=dict)  # a computed row -> its phase
    between: dict[int, list[Node]] = field(default_factory=lambda: defaultdict(list))
    loops: dict[int, list[Node]] = field(default_factory=lambda: defaultdict(list))
    stores: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    kept: set[Value] = field(default_factory=set)  # rows read in a later phase


def plan_row(body: Graph, rows_shape, cols: int) -> RowPlan | None:
    """The phases of a row body, or None when one of its nodes needs the node-by-node
    lowering."""
    vector = (*rows_shape, cols)
    scalar_shapes = (tuple(rows_shape), (*rows_shape, 1))
    plan = RowPlan()
    ready: dict[Value, int] = {}
    memory_rows: set[Value] = set()  # operands read by column
    for v in body.inputs:
        ready[v] = 0
        if not row_strides(v.shape, rows_shape, cols)[1].is_zero:
            memory_rows.add(v)

    def root(v: Value) -> Value:
        return plan.root.get(v, v)

    def is_row(v: Value) -> bool:
        r = root(v)
        return r in memory_rows or r in plan.made

    def needs(v: Value, phase: int) -> None:
        """``v`` is read in ``phase``: kept in a stack row when made earlier."""
        r = root(v)
        if r in plan.made and plan.made[r] < phase:
            plan.kept.add(r)

    for n in body.nodes:
        if len(n.outputs) != 1:
            return None
        out = n.outputs[0]
        if n.op == "constant":
            ready[out] = 0
            continue
        if n.op in ROW_ALIASES:
            plan.root[out] = root(n.inputs[0])
            continue
        reduction = n.traits.reduction
        if reduction is not None:
            x = n.inputs[0]
            if (
                is_sum_over_rows(n)
                or x.dtype is not DType.f32
                or reduction.combine not in ("add", "max", "min")
                or not is_row(x)
                or tuple(out.shape) not in scalar_shapes
            ):
                return None
            phase = ready[root(x)]
            if reduction.combine == "add":
                plan.loops[phase].append(n)
                needs(x, phase)
            elif root(x) in memory_rows:
                if not row_strides(root(x).shape, rows_shape, cols)[1].is_one:
                    return None
                plan.between[phase].append(n)
            else:  # over a row made in a loop: kept, and reduced after that loop
                plan.kept.add(root(x))
                phase += 1
                plan.between[phase].append(n)
            ready[out] = phase + 1 if reduction.combine == "add" else phase
            continue
        if n.op not in SCALAR_RULES:
            return None
        phase = max((ready[root(v)] for v in n.inputs), default=0)
        if tuple(out.shape) == vector:
            plan.loops[phase].append(n)
            plan.made[out] = phase
            for v in n.inputs:
                needs(v, phase)
        elif tuple(out.shape) in scalar_shapes and not any(is_row(v) for v in n.inputs):
            plan.between[phase].append(n)
        else:
            return None
        ready[out] = phase
    for index, (_, v) in enumerate(body.outputs):
        if tuple(v.shape) == vector:
            r = root(v)
            phase = plan.made.get(r, ready.get(r, 0))
            plan.stores[phase].append(index)
            plan.kept.discard(r)  # read back from the result instead
        elif tuple(v.shape) not in scalar_shapes and not all(d == 1 for d in v.shape):
            return None
    phases = [*plan.between, *plan.loops, *plan.stores]
    plan.phases = max(phases, default=0) + 1
    return plan


def emit_row_phases(k: Kernel, m: MathLib, node: Node, plan: RowPlan, outs, ins, rows) -> None:
    """The rows ``begin + j`` for j < ``count`` (``rows = (begin, count)``) of a row
    kernel, in the phases of ``plan``."""
    body: Graph = node.attrs["body"]
    rows_shape, cols = node.attrs["row_shape"], node.attrs["cols"]
    b = k.b
    ncols = i64(cols)
    kept = {}
    for v in body.nodes:  # stack rows, allocated once before the loop
        out = v.outputs[0]
        if out in plan.kept:
            array = b.alloca(LLVM_TYPES[out.dtype], size=ncols)
            array.align = 64
            kept[out] = Operand(array, out.dtype, [])
    results = [v for _, v in body.outputs]
    out_of = {}  # a result read back in a later phase
    for index, v in enumerate(results):
        r = plan.root.get(v, v)
        if r in plan.made and tuple(v.shape) == (*rows_shape, cols):
            out_of.setdefault(r, outs[index])
    shifted = _exps_of_shifted_rows(body, plan)
    begin, count = rows
    with for_range(b, count, "row") as j:
        r = b.add(begin, j)
        row_base = b.mul(r, ncols)
        scalars: dict[Value, ir.Value] = {}
        reads: dict[Value, Operand] = {}
        for v, op in zip(body.inputs, ins):
            strides = row_strides(v.shape, rows_shape, cols)
            if strides[1].is_zero:
                scalars[v] = k.load(op, offset2d(k, strides, r, i64(0)))
            else:
                reads[v] = Operand(op.ptr, op.dtype, strides)
        for n in body.nodes:
            if n.op == "constant":
                scalars[n.outputs[0]] = LLVM_CONST[n.outputs[0].dtype](n.attrs["value"])

        def read(v: Value, c, here: dict, phase: int) -> ir.Value:
            v = plan.root.get(v, v)
            if v in scalars:
                return scalars[v]
            if v in reads:
                return k.load(reads[v], offset2d(k, reads[v].strides, r, c))
            if plan.made[v] == phase:
                return here[v]
            if v in kept:
                return k.load(kept[v], c)
            return k.load(out_of[v], b.add(row_base, c))

        def row_at(v: Value) -> tuple[ir.Value, ir.Value]:
            """(pointer, offset of column 0) of this row of ``v``, a row in memory."""
            if v in kept:
                return kept[v].ptr, i64(0)
            if v in reads:
                return reads[v].ptr, offset2d(k, reads[v].strides, r, i64(0))
            return out_of[v].ptr, row_base

        for phase in range(plan.phases):
            for n in plan.between[phase]:
                scalars[n.outputs[0]] = _between(k, m, n, plan, scalars, row_at, ncols)
            sums = [n for n in plan.loops[phase] if n.traits.reduction is not None]
            # Dividing a row by a value of its own: one division, then a product per
            # column (within an ulp of the quotient; a division costs ten products).
            inverses = {
                n: b.fdiv(ir.Constant(F32, 1.0), scalars[plan.root.get(n.inputs[1], n.inputs[1])])
                for n in plan.loops[phase]
                if n.op == "div"
                and n.outputs[0].dtype is DType.f32
                and plan.root.get(n.inputs[1], n.inputs[1]) in scalars
            }
            if not plan.loops[phase] and not plan.stores[phase]:
                continue
            inits = [reduction_start(n.traits.reduction, DType.f32) for n in sums]
            with for_reduce(b, ncols, inits, f"phase{phase}") as (c, acc):
                here: dict[Value, ir.Value] = {}
                for n in plan.loops[phase]:
                    if n in sums:
                        i = sums.index(n)
                        x = read(n.inputs[0], c, here, phase)
                        acc[i] = b.fadd(acc[i], x, flags=["reassoc", "contract"])
                        continue
                    out = n.outputs[0]
                    args = [read(v, c, here, phase) for v in n.inputs]
                    if n in inverses:  # a row over the row's own divisor
                        here[out] = b.fmul(args[0], inverses[n], flags=["contract"])
                    elif n in shifted:
                        here[out] = _exp_nonpositive(b, m, args[0])
                    else:
                        dtypes = [v.dtype for v in n.inputs]
                        if n.op == "select":
                            dtypes = dtypes[1:]
                        here[out] = SCALAR_RULES[n.op](b, m, args, dtypes, n.attrs)
                    if out in kept:
                        k.store(kept[out], c, here[out])
                for index in plan.stores[phase]:
                    k.store(outs[index], b.add(row_base, c), read(results[index], c, here, phase))
            for n, total in zip(sums, acc):
                scalars[n.outputs[0]] = total
        for index, v in enumerate(results):
            if tuple(v.shape) != (*rows_shape, cols):
                k.store(outs[index], r, scalars[plan.root.get(v, v)])


def _between(k, m, n: Node, plan: RowPlan, scalars, row_at, ncols) -> ir.Value:
    """A per-row value made between two loops: a scalar node, or a maximum or minimum
    over a row in memory (``row_at(v)``: its pointer and first column's offset)."""
    if n.traits.reduction is None:
        args = [scalars[plan.root.get(v, v)] for v in n.inputs]
        dtypes = [v.dtype for v in n.inputs]
        if n.op == "select":
            dtypes = dtypes[1:]
        return SCALAR_RULES[n.op](k.b, m, args, dtypes, n.attrs)
    ptr, start = row_at(plan.root.get(n.inputs[0], n.inputs[0]))
    return reduce_row(k, m, n.traits.reduction, ptr, start, ncols)


def _exps_of_shifted_rows(body: Graph, plan: RowPlan) -> set[Node]:
    """The ``exp(x - max(x))`` of the body (softmax, log-softmax, cross-entropies): their
    argument is at most 0, the row's maximum taken over the same row."""
    if not SHIFTED_EXP:
        return set()
    made_by = {n.outputs[0]: n for n in body.nodes}

    def root(v: Value) -> Value:
        return plan.root.get(v, v)

    found = set()
    for n in body.nodes:
        if n.op != "exp" or n.outputs[0].dtype is not DType.f32:
            continue
        sub = made_by.get(root(n.inputs[0]))
        if sub is None or sub.op != "sub":
            continue
        peak = made_by.get(root(sub.inputs[1]))
        reduction = peak.traits.reduction if peak is not None else None
        if (
            reduction is not None
            and reduction.combine == "max"
            and root(peak.inputs[0]) == root(sub.inputs[0])
        ):
            found.add(n)
    return found


def _exp_nonpositive(b: ir.IRBuilder, m: MathLib, t: ir.Value) -> ir.Value:
    """exp(t) for t <= 0 (``MathLib.exp_nonpositive``: the general exp without its
    overflow half); NaN (a row holding one) passes on."""
    value = m.exp_nonpositive(b, t)
    return b.select(b.fcmp_unordered("uno", t, t), t, value)
