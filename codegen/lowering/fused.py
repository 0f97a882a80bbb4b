"""Kernels for ``fused`` nodes: one loop nest evaluating the whole body per element.

- ``elementwise``: a loop over the common shape; operands are read with
  broadcast strides, every body node is a scalar rule, every result is stored once.
- ``matmul``: a matrix product (the runtime's GEMM) or a convolution (its implicit
  GEMM), with the body's elementwise epilogue (bias, normalization, activation, a
  residual) run on each finished tile while it is in L1; a convolution whose result is
  max-pooled (``pool``) folds each tile into the pooled result instead.
"""

from __future__ import annotations

import math

from llvmlite import ir

from kcompile.codegen.library.parallel import CHUNKS
from kcompile.codegen.loops import (
    F32,
    I32,
    I64,
    PTR,
    chunk_range,
    for_range,
    for_reduce,
    i64,
    unroll_freely,
)
from kcompile.codegen.lowering.chunks import in_parallel
from kcompile.codegen.lowering.conv_sums import SpanSums
from kcompile.codegen.lowering.emitters import _offset, emits
from kcompile.codegen.lowering.kernel import (
    Kernel,
    Operand,
    broadcast_strides,
    contiguous_strides,
    dims_of,
)
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.products import call_conv, call_gemm, int4_kernel
from kcompile.codegen.lowering.row_loops import LLVM_CONST as _LLVM_CONST
from kcompile.codegen.lowering.row_loops import (
    ROW_ALIASES,
    emit_row_phases,
    offset2d,
    plan_row,
    reduce_row,
    row_strides,
)
from kcompile.codegen.lowering.scalar import SCALAR_RULES, reduction_combine, reduction_start
from kcompile.codegen.lowering.small_products import host_tile
from kcompile.ir import DType, Graph, Node, Value, get_op
from kcompile.ir.memory import Size, numel, size_of
from kcompile.ir.ops.fused import pools_before_body, product_of, reduction_of
from kcompile.ir.traits import Pattern, Reduction, is_sum_over_rows

# Ops a loop lowers without a scalar rule: a constant is its value, a broadcast reads its
# operand (with zero strides).
_LOOP_OWN = {
    "constant": lambda node, env: _LLVM_CONST[node.outputs[0].dtype](node.attrs["value"]),
    "broadcast_to": lambda node, env: env[node.inputs[0]],
}


def evaluate_body(
    k: Kernel, m: MathLib, body: Graph, env: dict[Value, ir.Value], skip=frozenset()
) -> None:
    """Emit the scalar code of every body node (except those in ``skip``) into ``env``."""
    for node in body.nodes:
        if node in skip:
            continue
        out = node.outputs[0]
        if node.op in _LOOP_OWN:
            env[out] = _LOOP_OWN[node.op](node, env)
        else:
            rule = SCALAR_RULES.get(node.op)
            if rule is None:
                raise NotImplementedError(f"codegen: {node.op} cannot be part of a fused loop")
            dtypes = [v.dtype for v in node.inputs]
            env[out] = rule(k.b, m, [env[v] for v in node.inputs], dtypes, node.attrs)


@emits("fused")
def fused(k: Kernel, m: MathLib, node: Node, outs: list[Operand], ins: list[Operand]) -> None:
    body: Graph = node.attrs["body"]
    if node.attrs["kind"] == "matmul" and node.attrs.get("pool"):
        _pooled_epilogue(k, m, node, body, outs, ins)
        return
    if node.attrs["kind"] == "matmul":
        _matmul_epilogue(k, m, node, body, outs, ins)
        return
    if node.attrs["kind"] == "row":
        _row_kernel(k, m, node, body, outs, ins)
        return
    if node.attrs["kind"] == "reduce":
        _reduce_loop(k, m, node, body, outs, ins)
        return
    shape = node.outputs[0].shape
    if any(v.shape != shape for v in node.outputs):
        raise NotImplementedError("codegen: a fused loop's results must share one shape")
    emit = lambda kk, o, i, part: _elementwise(kk, m, node, o, i, part)  # noqa: E731
    in_parallel(k, numel(shape), emit, outs, ins, loop_weight(body))


def _elementwise(k: Kernel, m: MathLib, node: Node, outs, ins, part) -> None:
    """The loop of an elementwise fused node, or the ``part`` of it one chunk runs."""
    body: Graph = node.attrs["body"]
    shape = node.outputs[0].shape
    out_ops = [Operand(o.ptr, o.dtype, contiguous_strides(shape)) for o in outs]
    # Strided reads (slices) of an operand: the only rearrangement an elementwise loop holds.
    slices = [n for n in body.nodes if n.traits.pattern is Pattern.INJECTIVE]
    users = body.users()
    sliced_only = {v for v in body.inputs if users.get(v) and all(u in slices for u in users[v])}
    position = {v: i for i, v in enumerate(body.inputs)}
    # (body value, how to read it over the loop): operands with broadcast strides; a
    # slice of an operand with the operand's own strides from an offset start.
    reads = [
        (v, Operand(op.ptr, op.dtype, broadcast_strides(v.shape, shape)))
        for v, op in zip(body.inputs, ins)
        if v not in sliced_only
    ]
    for n in slices:
        src = n.inputs[0]
        own = contiguous_strides(src.shape)
        op = ins[position[src]]
        reads.append((n.outputs[0], Operand(op.ptr, op.dtype, own, _offset(n.attrs["begin"], own))))
    results = [v for _, v in body.outputs]

    def per_element(offsets):
        env = {v: k.load(op, off) for (v, op), off in zip(reads, offsets[len(out_ops) :])}
        evaluate_body(k, m, body, env, skip=set(slices))
        for v, op, off in zip(results, out_ops, offsets):
            k.store(op, off, env[v])

    k.strided_loop(dims_of(shape), [*out_ops, *(op for _, op in reads)], per_element, part=part)


def loop_weight(body: Graph) -> int:
    """Roughly how many plain elementwise operations one element of ``body`` costs
    beyond the first (the ops' ``cost`` traits), so that a short loop of costly ones
    (polynomials, divisions) is still worth splitting."""
    return 1 + sum(max(n.traits.cost - 1, 0) for n in body.nodes)


def _row_operand(op: Operand, v_shape, out_shape) -> Operand:
    """An operand of the epilogue as (row stride, column stride) over the output seen as
    [rows, M]: the whole output, one value per column, one value, or one per row."""
    columns = out_shape[-1]
    if tuple(v_shape) == tuple(out_shape):
        strides = [Size(columns), Size(1)]
    elif all(d == 1 for d in v_shape):
        strides = [Size(0), Size(0)]
    elif v_shape[-1] == columns and all(d == 1 for d in v_shape[:-1]):
        strides = [Size(0), Size(1)]
    elif tuple(v_shape) == (*out_shape[:-1], 1):
        strides = [Size(1), Size(0)]
    else:
        raise NotImplementedError(
            f"codegen: epilogue operand of shape {v_shape} for an output of shape {out_shape}"
        )
    return Operand(op.ptr, op.dtype, strides)


def _matmul_epilogue(k, m, node, body, outs, ins) -> None:
    """The product through the runtime's GEMM, and the epilogue as its callback on each
    finished micro-tile. The product goes into a result it does not alias, or, when
    every result overwrites an operand in place (an optimizer's update), into no
    result: the GEMM's scratch, a buffer of one tile where it can (``TILE_C``)."""
    product = product_of(body)
    position = {v: i for i, v in enumerate(body.inputs)}
    operands = [ins[position[v]] for v in product.inputs]
    if any(id(o.ptr) in {id(op.ptr) for op in operands} for o in outs):
        raise NotImplementedError(
            "codegen: a fused matrix product may not write over its own operands"
        )
    A, Bm = operands[:2]
    a_shape, b_shape = (node.inputs[position[v]].shape for v in product.inputs[:2])
    if product.op == "matmul_int4":  # B: its kernel's record, of all its kernel operands
        b_shape, Bm = int4_kernel(k, product, operands[1:])

    def run(C, epilogue=None, context=None, columns_owned=False, accumulate=False):
        if product.op == "conv2d":
            call_conv(k, product, A, Bm, C, epilogue, context, columns_owned, accumulate)
            return
        shapes = (a_shape, b_shape)
        call_gemm(k, product, *shapes, A, Bm, C, epilogue, context, columns_owned, accumulate)

    if _accumulates_in_place(body, product, outs, ins):
        # acc = acc + product, written over acc: the GEMM adds into C itself.
        run(outs[0].ptr, accumulate=True)
        return
    out_shape = product.outputs[0].shape  # the loop of the epilogue (a result may be a column sum)
    reads = _epilogue_reads(body, product)
    column_sums = [n for n in body.nodes if n.traits.reduction is not None]
    results = [v for _, v in body.outputs]
    sums = {results.index(n.outputs[0]) for n in column_sums}
    operands = {id(op.ptr) for op in ins}
    # The GEMM writes the product into a result the epilogue then overwrites element by
    # element: it must hold an f32 of the product's shape (not a relu mask's bytes).
    target = next(
        (
            i
            for i, (o, v) in enumerate(zip(outs, results))
            if i not in sums
            and id(o.ptr) not in operands
            and v.dtype is DType.f32
            and v.shape == product.outputs[0].shape
        ),
        None,
    )
    for index in sums:
        k.fill(outs[index], Size(out_shape[-1]), ir.Constant(F32, 0.0))
    # A convolution's column sums go by spans of rows into partials (every thread).
    spans = SpanSums(k, out_shape, len(sums)) if sums and product.op == "conv2d" else None
    extra = spans.extra if spans else []
    epi, c, others = _epilogue_callback(k, node, body, ins, reads, out_shape, len(extra))
    _, ldc, i0, j0, rows, cols = epi.params
    moved_outs = epi.operands_from(k, outs)
    width = epi.value(size_of(out_shape[-1]))
    e = epi.b

    def element(r, col):
        i, j = e.add(i0, r), e.add(j0, col)
        flat = e.add(e.mul(i, width), j)
        # The product sits in the target result's buffer: read it through that result's
        # own pointer, so the store of the result to the same element is ordered after
        # the read (through ``c``, a separate pointer, LLVM took the two for unrelated
        # memory and read the product back after the store had overwritten it).
        if target is None:
            # Not ``inbounds``: with TILE_C, C's address is the tile's buffer less
            # (i0, j0)'s offset (``codegen.library.gemm``), outside any object of its own.
            at = e.gep(c.ptr, [e.add(e.mul(i, ldc), j)], source_etype=F32)
            read = e.load(at, typ=F32)
        else:
            read = epi.load(moved_outs[target], flat)
        env = {product.outputs[0]: read}
        for v, op in others.items():
            env[v] = epi.load(op, _offset2(epi, op, i, j))
        evaluate_body(epi, m, body, env, skip={product, *column_sums})
        for index, v in enumerate(results):
            if index in sums and spans:
                spans.add(epi, sorted(sums).index(index), i, j, env[v.node.inputs[0]])
            elif index in sums:
                total = e.fadd(epi.load(moved_outs[index], j), env[v.node.inputs[0]])
                epi.store(moved_outs[index], j, total)
            else:
                epi.store(moved_outs[index], flat, env[v])

    _over_tile(e, rows, cols, out_shape[-1], element)
    if target is None and PREFETCH_NEXT_TILE:
        _prefetch_next_tile(epi, moved_outs, results, out_shape, i0, j0, rows, width)
    epi.finish()
    C = outs[target].ptr if target is not None else ir.Constant(PTR, None)
    run(C, epi.entry, k.context(extra), bool(sums))
    if spans:
        spans.combine(k, [outs[index] for index in sorted(sums)])


# An epilogue that updates its operands in place (an optimizer's: w, m, v) asks for the
# lines of the same columns of the tile below (the GEMM's next row tile) while this one's
# update runs: they stream from L2 while the next tiles' products run.
PREFETCH_NEXT_TILE = True
_PREFETCH = ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])


def _prefetch_next_tile(epi: Kernel, outs, results, out_shape, i0, j0, rows, width) -> None:
    e = epi.b
    fn = epi.module.globals.get("llvm.prefetch.p0") or ir.Function(
        epi.module, _PREFETCH, "llvm.prefetch.p0"
    )
    full = [op for op, v in zip(outs, results) if v.shape == tuple(out_shape)]
    below = e.add(i0, rows)
    with for_range(e, rows, "pf") as r:
        row = e.add(e.mul(e.add(below, r), width), j0)
        for op in full:
            for lane in (0, 16):  # a tile row: 32 floats, two lines
                # An address past the buffer is only a hint: no inbounds.
                at = e.gep(op.ptr, [e.add(row, i64(lane))], source_etype=F32)
                one, three = ir.Constant(I32, 1), ir.Constant(I32, 3)
                e.call(fn, [at, one, three, one])


def _pooled_epilogue(k, m, node, body, outs, ins) -> None:
    """A convolution whose result is max-pooled (``pool=(ph, pw)``): the runtime runs its
    rows window by window and hands each tile over in a buffer of its own; the epilogue
    evaluates the body on it and folds each row into its window's maximum, stored in
    the pooled result (a window's first row overwrites it). The full-size result is
    never written."""
    product = product_of(body)
    position = {v: i for i, v in enumerate(body.inputs)}
    image, kernel = (ins[position[v]] for v in product.inputs)
    ph, pw = node.attrs["pool"]
    out_shape = product.outputs[0].shape
    reads = _epilogue_reads(body, product)
    epi, tile, others = _epilogue_callback(k, node, body, ins, reads, out_shape)
    _, ldc, i0, j0, rows, cols = epi.params
    (pooled,) = epi.operands_from(k, outs)
    width = epi.value(size_of(out_shape[-1]))
    e = epi.b
    # A body that never decreases as the product grows (bias, ReLU) commutes with the
    # maximum, exactly in floating point: the window's products are pooled as they come
    # and the body runs once per window, on its last row, instead of on every row.
    after_max = pools_before_body(body, product)
    window_size = i64(ph * pw)

    def element(r, col, evaluate: bool):
        i = e.add(i0, r)
        window = e.udiv(i, window_size)
        first = e.icmp_unsigned("==", e.urem(i, window_size), i64(0))
        j = e.add(j0, col)
        raw = epi.load(tile, e.add(e.mul(r, ldc), j))
        at = e.add(e.mul(window, width), j)
        # A window's first row stores; the others take the maximum (llvm.maximum, which
        # propagates NaN as numpy does). No select of the loaded value itself: LLVM made
        # that a masked store, which the next row's load of the same vector could not
        # take its value from (a stall a row: a quarter of the first layer's time).
        held = epi.load(pooled, at)
        if after_max:
            value = e.select(first, raw, _maximum(e, m, held, raw))
            if evaluate:
                value = _body_at(epi, m, body, product, others, value, i, j)
            epi.store(pooled, at, value)
            return
        value = _body_at(epi, m, body, product, others, raw, i, j)
        epi.store(pooled, at, e.select(first, value, _maximum(e, m, held, value)))

    def window_element(w, col):
        """Window ``w`` of the tile whole: its rows' maximum in registers, one store."""
        first = e.mul(w, window_size)
        i_last = e.add(i0, e.add(first, i64(ph * pw - 1)))
        j = e.add(j0, col)
        value = None
        for q in range(ph * pw):
            raw = epi.load(tile, e.add(e.mul(e.add(first, i64(q)), ldc), j))
            if not after_max:
                raw = _body_at(
                    epi, m, body, product, others, raw, e.add(i0, e.add(first, i64(q))), j
                )
            value = raw if value is None else _maximum(e, m, value, raw)
        if after_max:
            value = _body_at(epi, m, body, product, others, value, i_last, j)
        window = e.udiv(e.add(i0, first), window_size)
        epi.store(pooled, e.add(e.mul(window, width), j), value)

    # The runtime hands over whole windows (``codegen.library.conv``'s POOL_GROUPS): each
    # is pooled in registers, its result stored once.
    whole = e.and_(
        e.icmp_unsigned("==", e.urem(i0, window_size), i64(0)),
        e.icmp_unsigned("==", e.urem(rows, window_size), i64(0)),
    )
    with e.if_then(whole):
        with for_range(e, e.udiv(rows, window_size), "w") as w:
            _over_row(e, cols, out_shape[-1], lambda c: window_element(w, c))
        e.ret_void()
    if after_max:
        with for_range(e, rows, "r") as r:
            last = e.urem(e.add(i0, r), window_size)
            last = e.icmp_unsigned("==", last, i64(ph * pw - 1))
            with e.if_else(last) as (closing, pooling):
                with closing:
                    _over_row(e, cols, out_shape[-1], lambda c: element(r, c, True))
                with pooling:
                    _over_row(e, cols, out_shape[-1], lambda c: element(r, c, False))
    else:
        _over_tile(e, rows, cols, out_shape[-1], lambda r, c: element(r, c, True))
    epi.finish()
    null = ir.Constant(PTR, None)
    call_conv(k, product, image, kernel, null, epi.entry, k.context(), pool=(ph, pw))


def _epilogue_callback(k: Kernel, node: Node, body: Graph, ins, reads, out_shape, extra=0):
    """The epilogue's function ``epi(ctx, C, ldc, i0, j0, rows, cols)``, its tile of C as an
    operand, and the body's other operands it reads, by (row, column) of the result;
    ``extra`` more i64 values come through the context."""
    epi = Kernel.callback(k.module, f"{k.fn.name}_epilogue", len(k.args), 6, extra)
    unroll_freely(epi.fn)  # run on each micro-tile: unrolled, it pays (codegen.loops)
    tile = Operand(epi.b.inttoptr(epi.params[0], PTR), DType.f32, [])
    moved = epi.operands_from(k, ins)
    others = {
        v: _row_operand(op, nv.shape, out_shape)
        for v, op, nv in zip(body.inputs, moved, node.inputs)
        if v in reads
    }
    return epi, tile, others


def _maximum(e: ir.IRBuilder, m: MathLib, a: ir.Value, b: ir.Value) -> ir.Value:
    return SCALAR_RULES["max"](e, m, [a, b], [DType.f32, DType.f32], {})


def _body_at(epi, m: MathLib, body: Graph, product: Node, others: dict, value, i, j):
    """The body's result for the product's ``value`` at element (i, j)."""
    env = {product.outputs[0]: value}
    for v, op in others.items():
        env[v] = epi.load(op, _offset2(epi, op, i, j))
    evaluate_body(epi, m, body, env, skip={product})
    return env[body.outputs[0][1]]


def _over_tile(e: ir.IRBuilder, rows, cols, columns: int, element) -> None:
    """``element(r, col)`` over a ``rows x cols`` tile of a result ``columns`` wide."""
    with for_range(e, rows, "r") as r:
        _over_row(e, cols, columns, lambda col: element(r, col))


def _over_row(e: ir.IRBuilder, cols, columns: int, element) -> None:
    """``element(col)`` over ``cols`` columns of a result ``columns`` wide. The runtime
    hands its epilogue tiles ``NR`` columns wide (the host's micro-tile: 16 columns with
    AVX2, 32 with AVX-512), the last one narrower, and a result narrower than that whole:
    that common width gets a loop of constant count, which LLVM turns into whole vectors.
    With a count known only at run time LLVM vectorized for 32 columns and ran a 16-column
    tile through 4-float vectors (AVX2: the stem convolution's bias spent as long as its
    multiply-adds)."""
    nr = host_tile().nr
    full = min(nr, columns) if isinstance(columns, int) else None
    if full is None:
        with for_range(e, cols, "c") as col:
            element(col)
        return
    with e.if_else(e.icmp_signed("==", cols, i64(full))) as (whole, part):
        with whole, for_range(e, i64(full), "cf") as col:
            element(col)
        with part, for_range(e, cols, "c") as col:
            element(col)


def _accumulates_in_place(body: Graph, product: Node, outs, ins) -> bool:
    """Whether the body is ``acc + product`` alone with its one result written over
    ``acc`` (an invariant's gradient summed over a loop's steps)."""
    rest = [n for n in body.nodes if n is not product]
    if len(rest) != 1 or rest[0].op != "add" or len(body.outputs) != 1:
        return False
    add = rest[0]
    others = [v for v in add.inputs if v is not product.outputs[0]]
    if body.outputs[0][1] is not add.outputs[0] or len(others) != 1:
        return False
    acc = others[0]
    if acc not in body.inputs or acc.shape != add.outputs[0].shape:
        return False
    return outs[0].ptr is ins[body.inputs.index(acc)].ptr


def _epilogue_reads(body: Graph, product: Node) -> set[Value]:
    return {v for n in body.nodes if n is not product for v in n.inputs}


def _offset2(k: Kernel, op: Operand, i, j):
    """Offset of element (row i, column j) for strides over the 2-D output."""
    return offset2d(k, op.strides, i, j)


# --- row kernels ------------------------------------------------------------------


class _Row:
    """How a body value is held while one row is computed."""

    def __init__(self, scalar=None, array=None, operand=None, strides=None) -> None:
        self.scalar = scalar  # one value for the whole row
        self.array = array  # a stack array of C elements
        self.operand = operand  # read from a buffer at (row, column) through strides
        self.strides = strides

    def read(self, k: Kernel, r, c):
        if self.scalar is not None:
            return self.scalar
        if self.array is not None:
            return k.load(self.array, c)
        return k.load(self.operand, _offset2(k, Operand(None, None, self.strides), r, c))


def _row_kernel(k, m, node, body, outs, ins) -> None:
    """One loop over rows; inside it every body node in order, on C-element rows. Rows
    are split among the threads unless a result sums over them."""
    rows_shape, cols = node.attrs["row_shape"], node.attrs["cols"]
    across = [n for n in body.nodes if is_sum_over_rows(n)]
    if across:
        _row_loop(k, m, node, body, outs, ins, None)
        return
    emit = lambda kk, o, i, part: _row_loop(kk, m, node, body, o, i, part)  # noqa: E731
    elements = numel((*rows_shape, cols))
    in_parallel(k, elements, emit, outs, ins, loop_weight(body))


def _row_loop(k, m, node, body, outs, ins, part) -> None:
    """The rows of a row kernel, or the ``part = (chunk, chunks)`` of them: in a few
    passes over each row (``codegen/lowering/row_loops.py``), or node by node."""
    rows_shape, cols = node.attrs["row_shape"], node.attrs["cols"]
    vector = (*rows_shape, cols)
    b = k.b
    plan = plan_row(body, rows_shape, cols)
    if plan is not None:
        total = k.value(numel(rows_shape))
        rows = (i64(0), total) if part is None else chunk_range(b, total, *part)
        emit_row_phases(k, m, node, plan, outs, ins, rows)
        return
    arrays = {}
    for n in body.nodes:  # stack rows, allocated once before the loop
        v = n.outputs[0]
        if v.shape == vector and n.op not in ROW_ALIASES:
            from kcompile.codegen.lowering.kernel import LLVM_TYPES

            array = b.alloca(LLVM_TYPES[v.dtype], size=i64(cols))
            array.align = 64
            arrays[v] = Operand(array, v.dtype, [Size(0), Size(1)])
    ncols = i64(cols)
    out_of = {v: op for (_, v), op in zip(body.outputs, outs)}
    across = {n.outputs[0]: out_of[n.outputs[0]] for n in body.nodes if is_sum_over_rows(n)}
    for v, op in across.items():  # sums over rows start at zero and grow row by row
        k.fill(op, numel(v.shape), _LLVM_CONST[v.dtype](0))
    total = k.value(numel(rows_shape))
    begin, count = (i64(0), total) if part is None else chunk_range(b, total, *part)
    with for_range(b, count, "row") as j:
        r = b.add(begin, j)
        env: dict[Value, _Row] = {}
        for v, op, outer in zip(body.inputs, ins, node.inputs):
            two = row_strides(outer.shape, rows_shape, cols)
            if two[1].is_zero:
                env[v] = _Row(scalar=k.load(op, _offset2(k, Operand(None, None, two), r, i64(0))))
            else:
                env[v] = _Row(operand=op, strides=two)
        for n in body.nodes:
            if n.outputs[0] in across:
                _accumulate_row(k, m, n, env, across[n.outputs[0]], r, ncols)
                continue
            env[n.outputs[0]] = _row_node(k, m, n, env, arrays, r, ncols)
        for (_, v), op in zip(body.outputs, outs):
            if v in across:
                continue
            held = env[v]
            if v.shape == vector:
                with for_range(b, ncols, "st") as c:
                    k.store(op, b.add(b.mul(r, ncols), c), held.read(k, r, c))
            else:
                k.store(op, r, held.read(k, r, i64(0)))


def _accumulate_row(k: Kernel, m: MathLib, n: Node, env, out: Operand, r, ncols) -> None:
    """out += this row's value (a sum over the batch, built row by row)."""
    b = k.b
    x, value = n.inputs[0], env[n.inputs[0]]
    add = reduction_combine(b, m, n.traits.reduction, x.dtype)
    if x.rank == 2 and x.shape[1] != 1:
        with for_range(b, ncols, "acc") as c:
            k.store(out, c, add(k.load(out, c), value.read(k, r, c)))
    else:
        k.store(out, i64(0), add(k.load(out, i64(0)), value.read(k, r, i64(0))))


# Ops the row kernel lowers itself (besides reductions and scalar rules).
_ROW_OWN = ("constant", *ROW_ALIASES, "argmax", "one_hot")


def lowers_in_loop(kind: str, op: str) -> bool:
    """Whether this module lowers op ``op`` in a fused loop body of kind ``kind``: what
    the op's ``loop_bodies`` trait promises (checked for every op by the tests)."""
    traits = get_op(op).traits
    if kind == "row":
        return op in _ROW_OWN or op in SCALAR_RULES or traits.reduction is not None
    in_every_loop = op in SCALAR_RULES or op in _LOOP_OWN
    if kind == "elementwise":  # slices are strided reads of operands
        return in_every_loop or traits.pattern is Pattern.INJECTIVE
    if kind == "matmul":  # the product, and column sums of its epilogue
        return in_every_loop or traits.pattern is Pattern.PRODUCT or traits.reduction is not None
    return in_every_loop or traits.reduction is not None


# argmax keeps the running maximum and its column.
_ARGMAX_START = Reduction(-math.inf, "max")


def _row_node(k, m, n, env, arrays, r, ncols) -> _Row:
    b = k.b
    out = n.outputs[0]
    op = n.op
    if op == "constant":
        return _Row(scalar=_LLVM_CONST[out.dtype](n.attrs["value"]))
    if op in ROW_ALIASES:
        return env[n.inputs[0]]
    reduction = n.traits.reduction
    if reduction is not None or op == "argmax":
        x = env[n.inputs[0]]
        dtype = n.inputs[0].dtype
        row = _contiguous_row(k, x, r)
        if (
            reduction is not None
            and dtype is DType.f32
            and row is not None
            and reduction.combine != "mul"
        ):
            return _Row(scalar=reduce_row(k, m, reduction, *row, ncols))
        init = reduction_start(reduction or _ARGMAX_START, dtype)
        with for_reduce(b, ncols, [init, ir.Constant(I32, 0)], "rc") as (c, acc):
            value = x.read(k, r, c)
            if reduction is not None:
                acc[0] = reduction_combine(b, m, reduction, dtype)(acc[0], value)
            else:
                better = (
                    b.fcmp_ordered(">", value, acc[0])
                    if dtype is DType.f32
                    else b.icmp_signed(">", value, acc[0])
                )
                first = b.icmp_signed("==", c, i64(0))
                take = b.or_(better, first)
                acc[1] = b.select(take, b.trunc(c, I32), acc[1])
                acc[0] = b.select(take, value, acc[0])
        return _Row(scalar=acc[1] if op == "argmax" else acc[0])
    if op == "one_hot":
        idx = env[n.inputs[0]].read(k, r, i64(0))
        array = arrays[out]
        with for_range(b, ncols, "oh") as c:
            k.store(array, c, b.uitofp(b.icmp_signed("==", idx, b.trunc(c, I32)), F32))
        return _Row(array=array)
    rule = SCALAR_RULES.get(op)
    if rule is None:
        raise NotImplementedError(f"codegen: {op} cannot be part of a row kernel")
    dtypes = [v.dtype for v in n.inputs]
    if op == "select":
        dtypes = dtypes[1:]
    if out in arrays:
        array = arrays[out]
        with for_range(b, ncols, "ew") as c:
            args = [env[v].read(k, r, c) for v in n.inputs]
            k.store(array, c, rule(b, m, args, dtypes, n.attrs))
        return _Row(array=array)
    args = [env[v].read(k, r, i64(0)) for v in n.inputs]
    return _Row(scalar=rule(b, m, args, dtypes, n.attrs))


def _contiguous_row(k: Kernel, x: _Row, r) -> tuple[ir.Value, ir.Value] | None:
    """(pointer, offset of the first column) of row ``r`` of ``x`` when its columns are
    contiguous f32 (a stack row, or an operand read with column stride 1)."""
    if x.array is not None and x.array.dtype is DType.f32:
        return x.array.ptr, i64(0)
    if x.operand is not None and x.operand.dtype is DType.f32 and x.strides[1].is_one:
        return x.operand.ptr, _offset2(k, Operand(None, None, x.strides), r, i64(0))
    return None


# --- reductions with an elementwise prologue ------------------------------------------


# A reduction over the batch axis into at most this many floats runs in chunks of rows,
# each into partial results of its own that are then combined in chunk order (so the bits
# do not depend on the number of threads); a larger result keeps one loop.
PARTIALS_MAX = 4096


def _reduce_loop(k, m, node, body, outs, ins) -> None:
    """One loop over the reduction's operand: the body per element, accumulated into the
    reduced output (and any per-element results stored as they are made); split among
    the threads by rows of the batch when the result is small."""
    red = reduction_of(body)
    total = red.outputs[0]
    size = math.prod(total.shape) if total.type.is_static else None
    if (
        0 not in red.attrs["axes"]
        or total.dtype is not DType.f32
        or not size
        or size > PARTIALS_MAX
    ):
        _reduce_part(k, m, body, outs, ins)
        return
    b = k.b
    partials = b.alloca(ir.ArrayType(F32, CHUNKS * size), name="partials")
    partials.align = 64
    partials.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones

    def emit(kk: Kernel, o, i, part) -> None:
        if part is None:
            _reduce_part(kk, m, body, o, i)
            return
        index, chunks, scratch = part
        mine = kk.b.gep(kk.b.inttoptr(scratch, PTR), [kk.b.mul(index, i64(size))], source_etype=F32)
        _reduce_part(kk, m, body, o, i, (index, chunks), mine)

    elements = numel(red.inputs[0].shape)
    extra = [b.ptrtoint(partials, I64)]
    count = in_parallel(k, elements, emit, outs, ins, loop_weight(body), extra)
    if count is None:
        return
    combine = reduction_combine(b, m, red.traits.reduction, total.dtype)
    out = outs[[v for _, v in body.outputs].index(total)]
    with for_range(b, i64(size), "j") as j:
        first = b.load(b.gep(partials, [j], source_etype=F32), typ=F32)
        with for_reduce(b, b.sub(count, i64(1)), [first], "c") as (c, acc):
            at = b.add(b.mul(b.add(c, i64(1)), i64(size)), j)
            acc[0] = combine(acc[0], b.load(b.gep(partials, [at], source_etype=F32), typ=F32))
        k.store(Operand(out.ptr, out.dtype, []), j, acc[0])


def _reduce_part(k, m, body, outs, ins, part=None, partial=None) -> None:
    """The loop of a reduction body, or the ``part = (chunk, chunks)`` of its outermost
    axis, accumulating into ``partial`` (that chunk's own result) instead of the output."""
    red = reduction_of(body)
    shape = red.inputs[0].shape
    axes = red.attrs["axes"]
    dtype = red.inputs[0].dtype
    out_of = {v: op for (_, v), op in zip(body.outputs, outs)}
    total = red.outputs[0]
    init = reduction_start(red.traits.reduction, dtype)
    combine = reduction_combine(k.b, m, red.traits.reduction, dtype)

    target = out_of[total] if partial is None else Operand(partial, total.dtype, [])
    k.fill(target, numel(total.shape), init)
    kept = iter(contiguous_strides([d for a, d in enumerate(shape) if a not in axes]))
    red_strides = [Size(0) if a in axes else next(kept) for a in range(len(shape))]
    red_op = Operand(target.ptr, total.dtype, red_strides)
    per_element = [
        (v, Operand(op.ptr, op.dtype, contiguous_strides(shape)))
        for v, op in out_of.items()
        if v is not total
    ]
    reads = [
        (v, Operand(op.ptr, op.dtype, broadcast_strides(v.shape, shape)))
        for v, op in zip(body.inputs, ins)
    ]

    def visit(offsets):
        first = 1 + len(per_element)
        env = {v: k.load(op, off) for (v, op), off in zip(reads, offsets[first:])}
        evaluate_body(k, m, body, env, skip={red})
        for (v, op), off in zip(per_element, offsets[1:first]):
            k.store(op, off, env[v])
        k.store(red_op, offsets[0], combine(k.load(red_op, offsets[0]), env[red.inputs[0]]))

    operands = [red_op, *(op for _, op in per_element), *(op for _, op in reads)]
    k.strided_loop(dims_of(shape), operands, visit, part=part)
