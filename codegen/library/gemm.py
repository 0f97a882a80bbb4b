"""Matrix products in the style of BLIS/GotoBLAS, as LLVM IR with explicit vectors.

    void kc_sgemm(i64 M, i64 N, i64 K, ptr A, i64 rsA, i64 csA, ptr B, i64 rsB, i64 csB,
                  ptr C, i64 ldc, i64 accumulate, ptr epilogue, ptr epilogue_ctx)

computes ``C[i, j] (+)= sum_k A[i*rsA + k*csA] * B[k*rsB + j*csB]`` for row-major C
(``accumulate`` holds the bits ``ACCUMULATE``, ``COLUMNS_OWNED``, ``TILE_C``,
``ROUND_B``: B rounded to bf16 as it is packed, ``B_I8``: B holds int8 values, widened
as it is packed, and ``B_I4``: B is an int4 kernel, unpacked as it is packed): every
transposition is a choice of strides. Then, when ``epilogue`` is not null,
``epilogue(ctx, C, ldc, i0, j0, rows, cols)`` runs on each finished micro-tile of C while
it is still in L1 (bias, activation, column sums, an optimizer's update: the fused
epilogue). A null ``C`` asks for a scratch matrix that only the epilogue reads (every
result of the epilogue overwrites one of its operands in place); with the bit ``TILE_C``
too, a product one block of the depth deep (``Tile.kc``) and not split over K puts each
tile in a buffer of its chunk's own instead, where the epilogue reads it at once.

- The micro-kernel holds an ``MR x NR`` tile of C in ``MR * NR / VW`` vector
  registers (6 x 16 on AVX2: 12 ``<8 x float>`` accumulators), broadcasts one
  element of A per row and FMAs it with ``NR / VW`` vectors of packed B per k.
  There is one micro-kernel per row count 1..MR (narrower tiles for the last
  rows) and the last columns are stored with masked stores (no scalar loop).
- B is packed into ``KC x NR`` panels, zero padded on the right, 64-byte aligned,
  in the caller's stack: contiguous rows are copied with vector loads, transposed
  ones through ``VW x VW`` register transposes. When C has few row tiles a packed
  panel would be reused too little: full panels are then read from B in place.
- A is read in place when a row of it is contiguous (``kc_ukr_rows{rows}``: one
  pointer per row, no copy; the lines of a sliver stay in L1 across its panels) and
  when a column is, up to ``IN_PLACE_DEPTH`` (deeper, rows a power of two apart
  would conflict in L1). Deeper, the slivers of ``BLOCK_TILES`` row tiles are packed
  together from whole rows of A (a stream the hardware prefetcher follows) and each
  panel of B then runs for every tile of the block. Other strides are packed per
  ``MR``-row sliver, k-major, so the micro-kernel reads A at constant offsets from
  one pointer.
- The micro-kernel prefetches the row of B ``PREFETCH_B`` iterations ahead: B read
  in place, rows 2 KB apart, is a stride no hardware prefetcher follows.
- Ragged panels of B (a narrow N) are packed with masked loads, columns of any
  stride with masked gathers: no scalar loops. A full-height tile of a panel of at
  most VW columns runs a narrow micro-kernel (one vector of B a k).
- Threads split the columns into chunks of whole panels when there are enough of
  them (every thread then reads all of A), else the rows (every thread packs all
  of B). No two threads ever write one element of C; an epilogue that sums columns
  asks for column chunks (``COLUMNS_OWNED``), so it needs no atomics.

The vector width and tile come from the host's features (``Tile.for_host``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llvmlite import ir

from kcompile.codegen.library.parallel import CHUNK_FN, threads_for_a_job
from kcompile.codegen.loops import (
    F32,
    I8,
    I32,
    I64,
    PTR,
    for_range,
    for_reduce,
    function_type,
    i64,
    round_bf16,
)
from kcompile.ir import abi

# epilogue(ctx, C's address, ldc, i0, j0, rows, cols)
EPILOGUE_FN = ir.FunctionType(ir.VoidType(), [PTR, I64, I64, I64, I64, I64, I64])
GEMM_FN = function_type(abi.GEMM)
GEMM = abi.GEMM.symbol
# A product runs in the calling thread below PARALLEL_MIN_MACS multiply-adds, and below
# PARALLEL_ANY_MACS unless B has PARALLEL_MIN_B elements or more (each thread then
# streams half of a large B, the case of batch-1 inference); otherwise waking the pool
# costs more than it saves (measured: 37x100x50 ran 0.75x as fast on two threads).
PARALLEL_MIN_MACS = 1 << 16
PARALLEL_ANY_MACS = 1 << 18
PARALLEL_MIN_B = 1 << 15
# B is read in place, not packed, when C has at most this many tiles of rows.
DIRECT_ROW_TILES = 24
# The micro-kernel asks for the row of B this many iterations ahead of the one it reads.
PREFETCH_B = 8
# A transposed A is read in place up to this depth (deeper, its sliver is packed).
IN_PLACE_DEPTH = 64
# ... deeper, the slivers of this many row tiles are packed at once (on the stack; 8, 16
# and 48 ran alike at 512 x 4096 x 128).
BLOCK_TILES = 8
# llvm.prefetch(address, write, locality, data)
PREFETCH_FN = ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])


@dataclass(frozen=True)
class Tile:
    vw: int  # floats per vector register
    mr: int  # rows of a micro-tile
    nv: int = 2  # vectors per row: NR = nv * vw columns
    kc: int = 256  # depth of a packed block of B
    panels: int = 16  # panels of B packed at once (KC x NC stays in L2)

    @property
    def nr(self) -> int:
        return self.nv * self.vw

    @staticmethod
    def for_host(features) -> Tile:
        """AVX-512: 16 floats and 32 registers (12 x 32 tile); AVX: 8 floats and 16
        registers (6 x 16); otherwise SSE's 4 floats (6 x 8)."""
        if features("avx512f"):
            return Tile(vw=16, mr=12)
        if features("avx"):
            return Tile(vw=8, mr=6)
        return Tile(vw=4, mr=6)


def _vec(t: Tile) -> ir.VectorType:
    return ir.VectorType(F32, t.vw)


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ftype, name)


def _gep(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value) -> ir.Value:
    return b.gep(ptr, [offset], inbounds=True, source_etype=F32)


def _gep_b(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value, b_i8: ir.Value) -> ir.Value:
    """B's element ``offset`` from ``ptr``: a float's, or a byte's under ``B_I8``."""
    as_bytes = b.gep(ptr, [offset], inbounds=True, source_etype=I8)
    return b.select(b_i8, as_bytes, _gep(b, ptr, offset))


def _splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    vec = b.insert_element(ir.Constant(ir.VectorType(value.type, width), None), value, i64(0))
    return b.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(I32, width), [0] * width))


def _micro_kernel(
    module: ir.Module, t: Tile, rows: int, a_by_rows: bool = False, narrow: bool = False
) -> ir.Function:
    """``void ukr(i64 kc, ptr a, i64 lda, ptr b, i64 ldb, ptr c, i64 ldc, i64 nr, i64 beta)``
    for a tile of ``rows`` rows: A(r, k) at ``a[k*lda + r]`` (packed k-major with lda = MR,
    or a transposed A or a single row of A in place), row k of the B panel at
    ``b + k*ldb`` (a packed panel, or B itself); columns of C past ``nr`` are neither
    read nor written. ``a_by_rows`` (``kc_ukr_rows{rows}``): A(r, k) at ``a[r*lda + k]``,
    a row-major A read in place, one pointer per row. ``narrow`` (``..._narrow``): the
    first VW columns of the panel only (a panel of at most VW columns: half the FMAs)."""
    if narrow:
        t = replace(t, nv=1)
    vec = _vec(t)
    fma = _declare(module, f"llvm.fma.v{t.vw}f32", ir.FunctionType(vec, [vec, vec, vec]))
    name = f"kc_ukr{'_rows' if a_by_rows else ''}{'_narrow' if narrow else ''}{rows}"
    fn = ir.Function(
        module,
        ir.FunctionType(ir.VoidType(), [I64, PTR, I64, PTR, I64, PTR, I64, I64, I64]),
        name,
    )
    fn.linkage = "internal"
    kc, a, lda, bp, ldb, c, ldc, nr, beta = fn.args
    for arg in (a, bp, c):
        arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero = ir.Constant(vec, None)
    tile = rows * t.nv
    # A short tile has too few independent FMA chains to hide the FMA latency: it keeps
    # ``sets`` copies of its accumulators over interleaved k and adds them at the end.
    sets = max(1, 8 // tile)
    prefetch = _declare(module, "llvm.prefetch.p0", PREFETCH_FN)
    row_ptrs = [_gep(b, a, b.mul(i64(r), lda)) for r in range(rows)] if a_by_rows else []

    def step(k, acc, offset):
        base = b.mul(k, ldb)
        bvec = [
            b.load(_gep(b, bp, b.add(base, i64(v * t.vw))), typ=vec, align=4) for v in range(t.nv)
        ]
        # B read in place streams from L2 (or further) with a wide stride: ask for its
        # row PREFETCH_B iterations ahead (an address past the panel is only a hint).
        ahead = b.mul(b.add(k, i64(PREFETCH_B)), ldb)
        for v in range(0, t.nr, 16):
            at = b.gep(bp, [b.add(ahead, i64(v))], source_etype=F32)
            b.call(prefetch, [at, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])
        at = b.mul(k, lda)
        for r in range(rows):
            ptr = _gep(b, row_ptrs[r], k) if a_by_rows else _gep(b, a, b.add(at, i64(r)))
            broadcast = _splat(b, b.load(ptr, typ=F32), t.vw)
            for v in range(t.nv):
                i = offset + r * t.nv + v
                acc[i] = b.call(fma, [broadcast, bvec[v], acc[i]])

    rounds = b.udiv(kc, i64(sets))
    with for_reduce(b, rounds, [zero] * (tile * sets), "k") as (kr, acc):
        for s_ in range(sets):
            step(b.add(b.mul(kr, i64(sets)), i64(s_)), acc, s_ * tile)
    total = acc[:tile]
    for s_ in range(1, sets):
        total = [b.fadd(x, y) for x, y in zip(total, acc[s_ * tile : (s_ + 1) * tile])]
    done = b.mul(rounds, i64(sets))
    with for_reduce(b, b.sub(kc, done), total, "kt") as (kt, acc):
        step(b.add(done, kt), acc, 0)
    _store_tile(b, module, t, rows, acc, c, ldc, nr, beta)
    b.ret_void()
    return fn


def _store_tile(b, module, t: Tile, rows: int, acc, c, ldc, nr, beta) -> None:
    """C tile (+)= acc: plain vector stores for a full tile, masked ones for the last
    columns; C is read first only when ``beta``."""
    vec = _vec(t)
    mask_t = ir.VectorType(ir.IntType(1), t.vw)
    masked_load = _declare(
        module, f"llvm.masked.load.v{t.vw}f32.p0", ir.FunctionType(vec, [PTR, I32, mask_t, vec])
    )
    masked_store = _declare(
        module,
        f"llvm.masked.store.v{t.vw}f32.p0",
        ir.FunctionType(ir.VoidType(), [vec, PTR, I32, mask_t]),
    )
    align = ir.Constant(I32, 4)
    with b.if_else(b.icmp_signed(">=", nr, i64(t.nr))) as (whole, part):
        with whole:
            _store_rows(
                b,
                t,
                rows,
                acc,
                c,
                ldc,
                beta,
                lambda ptr, v: b.load(ptr, typ=vec, align=4),
                lambda value, ptr, v: b.store(value, ptr, align=4),
            )
        with part:
            lanes = ir.Constant(ir.VectorType(I64, t.vw), list(range(t.vw)))
            limit = _splat(b, nr, t.vw)
            masks = [
                b.icmp_signed("<", b.add(lanes, _splat(b, i64(v * t.vw), t.vw)), limit)
                for v in range(t.nv)
            ]
            _store_rows(
                b,
                t,
                rows,
                acc,
                c,
                ldc,
                beta,
                lambda ptr, v: b.call(masked_load, [ptr, align, masks[v], ir.Constant(vec, None)]),
                lambda value, ptr, v: b.call(masked_store, [value, ptr, align, masks[v]]),
            )


def _store_rows(b, t: Tile, rows: int, acc, c, ldc, beta, load, store) -> None:
    with b.if_else(b.icmp_signed("!=", beta, i64(0))) as (add, overwrite):
        for branch, accumulate in ((add, True), (overwrite, False)):
            with branch:
                for r in range(rows):
                    row = _gep(b, c, b.mul(i64(r), ldc))
                    for v in range(t.nv):
                        ptr = _gep(b, row, i64(v * t.vw))
                        value = acc[r * t.nv + v]
                        if accumulate:
                            value = b.fadd(value, load(ptr, v))
                        store(value, ptr, v)


def _transpose(b: ir.IRBuilder, rows: list[ir.Value], width: int) -> list[ir.Value]:
    """A ``width x width`` transpose of vectors: log2(width) rounds of interleaving row r
    with row r + width/2 (a perfect shuffle), which LLVM lowers to unpack/permute."""
    half = width // 2
    lo = ir.Constant(ir.VectorType(I32, width), [x for i in range(half) for x in (i, width + i)])
    hi = ir.Constant(
        ir.VectorType(I32, width), [x for i in range(half, width) for x in (i, width + i)]
    )
    for _ in range(width.bit_length() - 1):
        shuffled = []
        for r in range(half):
            shuffled += [
                b.shuffle_vector(rows[r], rows[r + half], lo),
                b.shuffle_vector(rows[r], rows[r + half], hi),
            ]
        rows = shuffled
    return rows


def _packing(module: ir.Module, name: str) -> tuple[ir.Function, ir.IRBuilder]:
    """An internal ``void name(i64 kc, i64 ncols, ptr B, i64 rsB, i64 csB, ptr dst)``
    (a packing of B into panels; source and panels never overlap) and a builder at its
    entry."""
    ftype = ir.FunctionType(ir.VoidType(), [I64, I64, PTR, I64, I64, PTR])
    fn = ir.Function(module, ftype, name)
    fn.linkage = "internal"
    fn.args[2].add_attribute("noalias")
    fn.args[5].add_attribute("noalias")
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _pack_b(module: ir.Module, t: Tile, rounded: bool = False) -> ir.Function:
    """``void pack(i64 kc, i64 ncols, ptr B, i64 rsB, i64 csB, ptr dst)``: ``kc`` rows of
    ``ncols`` columns of B into panels of ``kc x NR``, the last one zero padded; with
    ``rounded`` (``kc_pack_b_round``), each element then rounded to bf16 in place, while
    the panels are in cache (``ROUND_B``)."""
    vec = _vec(t)
    fn, b = _packing(module, "kc_pack_b_round" if rounded else "kc_pack_b")
    kc, ncols, src_b, rs, cs, dst = fn.args
    panels = b.udiv(b.add(ncols, i64(t.nr - 1)), i64(t.nr))
    with for_range(b, panels, "p") as p:
        col0 = b.mul(p, i64(t.nr))
        panel = _gep(b, dst, b.mul(b.mul(p, kc), i64(t.nr)))
        src = _gep(b, src_b, b.mul(col0, cs))
        cols_left = b.sub(ncols, col0)
        full = b.icmp_signed(">=", cols_left, i64(t.nr))
        with b.if_else(b.icmp_signed("==", cs, i64(1))) as (rows_contiguous, other):
            with rows_contiguous:
                # A ragged last panel (a narrow B: 10 classes) through masked loads, its
                # lanes past the last column zero.
                masks = _column_masks(b, t, cols_left)
                masked_load = _masked_load(module, t)
                zero = ir.Constant(vec, None)
                with b.if_else(full) as (whole, ragged):
                    for branch, masked in ((whole, False), (ragged, True)):
                        with branch, for_range(b, kc, "k") as k:
                            row = _gep(b, src, b.mul(k, rs))
                            out = _gep(b, panel, b.mul(k, i64(t.nr)))
                            for v in range(t.nv):
                                at = _gep(b, row, i64(v * t.vw))
                                if masked:
                                    args = [at, ir.Constant(I32, 4), masks[v], zero]
                                    value = b.call(masked_load, args)
                                else:
                                    value = b.load(at, typ=vec, align=4)
                                b.store(value, _gep(b, out, i64(v * t.vw)), align=t.vw * 4)
            with other:
                columns_contiguous = b.and_(full, b.icmp_signed("==", rs, i64(1)))
                with b.if_else(columns_contiguous) as (transposed, generic):
                    with transposed:
                        done = _pack_transposed(b, t, kc, src, cs, panel)
                        _pack_gathered(b, module, t, done, kc, cols_left, src, rs, cs, panel)
                    with generic:
                        _pack_gathered(b, module, t, i64(0), kc, cols_left, src, rs, cs, panel)
    if rounded:
        with for_range(b, b.mul(b.mul(panels, kc), i64(t.nv)), "v") as v:
            at = _gep(b, dst, b.mul(v, i64(t.vw)))
            b.store(round_bf16(b, b.load(at, typ=vec, align=t.vw * 4)), at, align=t.vw * 4)
    b.ret_void()
    return fn


def _pack_b_i8(module: ir.Module, t: Tile) -> ir.Function:
    """``void kc_pack_b_i8(i64 kc, i64 ncols, ptr B, i64 rsB, i64 csB, ptr dst)``: as
    ``kc_pack_b``, from a B of int8 values (strides in bytes), each widened to f32
    (``B_I8``). Whole rows of a panel are widened a vector at a time; a ragged panel and
    other strides element by element (a quantized kernel is read by rows)."""
    vec = _vec(t)
    ints = ir.VectorType(I8, t.vw)
    fn, b = _packing(module, "kc_pack_b_i8")
    kc, ncols, src_b, rs, cs, dst = fn.args
    panels = b.udiv(b.add(ncols, i64(t.nr - 1)), i64(t.nr))
    with for_range(b, panels, "p") as p:
        col0 = b.mul(p, i64(t.nr))
        panel = _gep(b, dst, b.mul(b.mul(p, kc), i64(t.nr)))
        src = b.gep(src_b, [b.mul(col0, cs)], inbounds=True, source_etype=I8)
        cols_left = b.sub(ncols, col0)
        whole = b.and_(b.icmp_signed(">=", cols_left, i64(t.nr)), b.icmp_signed("==", cs, i64(1)))
        with b.if_else(whole) as (rows, other):
            with rows, for_range(b, kc, "k") as k:
                row = b.gep(src, [b.mul(k, rs)], inbounds=True, source_etype=I8)
                out = _gep(b, panel, b.mul(k, i64(t.nr)))
                for v in range(t.nv):
                    at = b.gep(row, [i64(v * t.vw)], inbounds=True, source_etype=I8)
                    value = b.sitofp(b.load(at, typ=ints, align=1), vec)
                    b.store(value, _gep(b, out, i64(v * t.vw)), align=t.vw * 4)
            with other, for_range(b, kc, "k") as k, for_range(b, i64(t.nr), "c") as c:
                inside = b.icmp_signed("<", c, cols_left)
                at = b.gep(
                    src,
                    [b.select(inside, b.add(b.mul(k, rs), b.mul(c, cs)), i64(0))],
                    inbounds=True,
                    source_etype=I8,
                )
                value = b.select(inside, b.sitofp(b.load(at, typ=I8), F32), ir.Constant(F32, 0.0))
                b.store(value, _gep(b, panel, b.add(b.mul(k, i64(t.nr)), c)))
    b.ret_void()
    return fn


def _record_field(b: ir.IRBuilder, record: ir.Value, name: str) -> ir.Value:
    at = b.gep(record, [i64(0), i64(INT4_KERNEL.index(name))], source_etype=INT4_RECORD)
    return b.load(at, typ=I64)


def int4_value(b: ir.IRBuilder, packed: ir.Value, row_start: ir.Value, col: ir.Value) -> ir.Value:
    """The f32 of column ``col`` of an int4 kernel's row whose bytes start at byte
    ``row_start`` of ``packed``: a signed nibble, the low one for an even column."""
    at = b.add(row_start, b.udiv(col, i64(2)))
    byte = b.load(b.gep(packed, [at], source_etype=I8), typ=I8)
    four = ir.Constant(I8, 4)
    low = b.ashr(b.shl(byte, four), four)
    return b.sitofp(b.select(b.trunc(col, ir.IntType(1)), b.ashr(byte, four), low), F32)


def int4_group(b: ir.IRBuilder, g_idx: ir.Value, last: ir.Value) -> ir.Value:
    """A row's group (its f32 ``g_idx`` entry) clamped to ``0..last``: the reference
    refuses a group out of range; native code must not read outside the scales."""
    return _min(b, _max(b, b.fptosi(g_idx, I64), i64(0)), last)


def int4_dequantized(
    b: ir.IRBuilder, value: ir.Value, zero: ir.Value, scale: ir.Value, at: ir.Value, count: int
) -> ir.Value:
    """``(value - zero) * scale`` for ``count`` columns (1: a scalar) of the zero points
    (i8) and scales (f32) from element ``at``: the subtraction exact, one rounding."""
    ty = ir.VectorType(F32, count) if count > 1 else F32
    z = b.gep(zero, [at], source_etype=I8)
    z = b.load(z, typ=ir.VectorType(I8, count) if count > 1 else I8, align=1)
    s_ = b.load(_gep(b, scale, at), typ=ty, align=4)
    return b.fmul(b.fsub(value, b.sitofp(z, ty)), s_)


def _pack_b_i4(module: ir.Module, t: Tile) -> ir.Function:
    """``void kc_pack_b_i4(i64 kc, i64 ncols, ptr kernel, i64 k0, i64 col0, ptr dst)``: as
    ``kc_pack_b`` for rows ``k0..k0+kc`` (past the record's first row) and columns
    ``col0..col0+ncols`` of an int4 kernel (``B_I4``; ``kernel`` an ``INT4_KERNEL``
    record), each value unpacked from its nibble and, with scales, dequantized with its
    row's group's: ``(q - zero) * scale``, the subtraction exact, one rounding (the
    values ``dequantize_int4`` gives). A whole panel takes ``NR / 2`` bytes a row: their
    low and high nibbles sign-extended in vectors, interleaved, widened; a ragged one
    goes element by element. A group index out of range is clamped (the reference
    refuses it; native code must not read outside the scales)."""
    vec = _vec(t)
    half = t.nr // 2
    nibbles = ir.VectorType(I8, half)
    fn, b = _packing(module, "kc_pack_b_i4")
    kc, ncols, record, k0, col0, dst = fn.args
    packed = b.inttoptr(_record_field(b, record, "packed"), PTR)
    row_bytes = _record_field(b, record, "row_bytes")
    scale = b.inttoptr(_record_field(b, record, "scale"), PTR)
    zero = b.inttoptr(_record_field(b, record, "zero"), PTR)
    g_idx = b.inttoptr(_record_field(b, record, "g_idx"), PTR)
    first = b.add(_record_field(b, record, "first_row"), k0)
    width = _record_field(b, record, "columns")
    last_group = b.sub(_record_field(b, record, "groups"), i64(1))
    grouped = b.icmp_unsigned("!=", b.ptrtoint(scale, I64), i64(0))
    panels = b.udiv(b.add(ncols, i64(t.nr - 1)), i64(t.nr))
    four = ir.Constant(nibbles, [4] * half)
    lanes = [i // 2 + (i % 2) * half for i in range(t.nr)]  # low, high, low, high, ...
    interleave = ir.Constant(ir.VectorType(I32, t.nr), lanes)

    def group_start(row) -> ir.Value:
        """Where row ``row``'s group's scales and zero points start."""
        g_of_row = b.load(b.gep(g_idx, [row], source_etype=F32), typ=F32)
        return b.mul(int4_group(b, g_of_row, last_group), width)

    def dequantize(value, start, count: int):
        return int4_dequantized(b, value, zero, scale, start, count)

    with for_range(b, panels, "p") as p:
        c0 = b.add(col0, b.mul(p, i64(t.nr)))
        panel = _gep(b, dst, b.mul(b.mul(p, kc), i64(t.nr)))
        cols_left = b.sub(ncols, b.mul(p, i64(t.nr)))
        with b.if_else(b.icmp_signed(">=", cols_left, i64(t.nr))) as (whole, ragged):
            with whole, b.if_else(grouped) as (in_groups, per_channel):
                # Two loops, so that neither tests for groups a row.
                for branch, dequantized in ((in_groups, True), (per_channel, False)):
                    with branch, for_range(b, kc, "k") as k:
                        row = b.add(first, k)
                        at = b.add(b.mul(row, row_bytes), b.udiv(c0, i64(2)))
                        x = b.load(b.gep(packed, [at], source_etype=I8), typ=nibbles, align=1)
                        low, high = b.ashr(b.shl(x, four), four), b.ashr(x, four)
                        values = b.sitofp(
                            b.shuffle_vector(low, high, interleave), ir.VectorType(F32, t.nr)
                        )
                        out = _gep(b, panel, b.mul(k, i64(t.nr)))
                        start = b.add(group_start(row), c0) if dequantized else None
                        for v in range(t.nv):
                            lanes_v = list(range(v * t.vw, (v + 1) * t.vw))
                            take = ir.Constant(ir.VectorType(I32, t.vw), lanes_v)
                            part = b.shuffle_vector(values, values, take)
                            if dequantized:
                                part = dequantize(part, b.add(start, i64(v * t.vw)), t.vw)
                            b.store(part, _gep(b, out, i64(v * t.vw)), align=t.vw * 4)
            # A ragged panel (a classifier's 10 columns): the row zeroed a vector at a time,
            # then its columns one by one, the group found once a row.
            with ragged, b.if_else(grouped) as (in_groups, per_channel):
                for branch, dequantized in ((in_groups, True), (per_channel, False)):
                    with branch, for_range(b, kc, "k") as k:
                        row = b.add(first, k)
                        out = _gep(b, panel, b.mul(k, i64(t.nr)))
                        for v in range(t.nv):
                            zero_v = ir.Constant(vec, None)
                            b.store(zero_v, _gep(b, out, i64(v * t.vw)), align=t.vw * 4)
                        start = group_start(row) if dequantized else None
                        with for_range(b, cols_left, "c") as c:
                            col = b.add(c0, c)
                            value = int4_value(b, packed, b.mul(row, row_bytes), col)
                            if dequantized:
                                value = dequantize(value, b.add(start, col), 1)
                            b.store(value, _gep(b, out, c))
    b.ret_void()
    return fn


def _column_masks(b: ir.IRBuilder, t: Tile, cols) -> list[ir.Value]:
    """Per vector of a panel row, the lanes of its first ``cols`` columns."""
    lanes = ir.Constant(ir.VectorType(I64, t.vw), list(range(t.vw)))
    limit = _splat(b, cols, t.vw)
    return [
        b.icmp_signed("<", b.add(lanes, _splat(b, i64(v * t.vw), t.vw)), limit) for v in range(t.nv)
    ]


def _masked_load(module: ir.Module, t: Tile) -> ir.Function:
    vec = _vec(t)
    mask_t = ir.VectorType(ir.IntType(1), t.vw)
    return _declare(
        module, f"llvm.masked.load.v{t.vw}f32.p0", ir.FunctionType(vec, [PTR, I32, mask_t, vec])
    )


def _pack_transposed(b, t: Tile, kc, src, cs, panel) -> ir.Value:
    """Rows k of a panel whose columns are contiguous in memory, VW at a time through
    register transposes; returns how many rows it packed."""
    vec = _vec(t)
    blocks = b.udiv(kc, i64(t.vw))
    with for_range(b, blocks, "kb") as kb:
        k0 = b.mul(kb, i64(t.vw))
        for v in range(t.nv):
            columns = [
                b.load(_gep(b, src, b.add(b.mul(i64(v * t.vw + j), cs), k0)), typ=vec, align=4)
                for j in range(t.vw)
            ]
            for k, row in enumerate(_transpose(b, columns, t.vw)):
                at = b.add(b.mul(b.add(k0, i64(k)), i64(t.nr)), i64(v * t.vw))
                b.store(row, _gep(b, panel, at), align=t.vw * 4)
    return b.mul(blocks, i64(t.vw))


def _pack_gathered(b, module, t: Tile, k_from, kc, cols_left, src, rs, cs, panel) -> None:
    """Rows ``k_from..kc`` of a panel a vector at a time through masked gathers (columns
    of any stride), zero past ``cols_left``."""
    vec = _vec(t)
    lanes_t = ir.VectorType(I64, t.vw)
    ptrs_t = ir.VectorType(PTR, t.vw)
    mask_t = ir.VectorType(ir.IntType(1), t.vw)
    gather = _declare(
        module,
        f"llvm.masked.gather.v{t.vw}f32.v{t.vw}p0",
        ir.FunctionType(vec, [ptrs_t, I32, mask_t, vec]),
    )
    masks = _column_masks(b, t, cols_left)
    strides = _splat(b, b.mul(cs, i64(4)), t.vw)
    offsets = [
        b.mul(ir.Constant(lanes_t, [v * t.vw + j for j in range(t.vw)]), strides)
        for v in range(t.nv)
    ]
    with for_range(b, b.sub(kc, k_from), "kg") as kk:
        k = b.add(k_from, kk)
        row = _splat(b, b.ptrtoint(_gep(b, src, b.mul(k, rs)), I64), t.vw)
        out = _gep(b, panel, b.mul(k, i64(t.nr)))
        for v in range(t.nv):
            ptrs = b.inttoptr(b.add(row, offsets[v]), ptrs_t)
            zero = ir.Constant(vec, None)
            value = b.call(gather, [ptrs, ir.Constant(I32, 4), masks[v], zero])
            b.store(value, _gep(b, out, i64(v * t.vw)), align=t.vw * 4)


JOB_FIELDS = ("M", "N", "K", "A", "rsA", "csA", "B", "rsB", "csB", "C", "ldc", "acc", "epi", "ctx")
_POINTERS = {"A", "B", "C", "ctx"}
SPLIT = ("col_chunks", "row_chunks")  # how the driver cut the work (``_balanced``)
# Split-K (``_split_k``): partial products' scratch, the depth in MR-row tiles, chunks.
SPLIT_K = ("scratch", "k_tiles", "k_chunks")
FIELDS = (*JOB_FIELDS, *SPLIT, *SPLIT_K)
JOB = ir.ArrayType(I64, len(FIELDS))
# Split-K applies from this depth on (in MR-row tiles per thread): below it the partial
# products' sum costs more than the column split's shared reads of B.
SPLIT_K_MIN_TILES = 8
# ... and for any number of rows when K is this many times both M and N: the partial
# products (M x N each) are then small next to the operands.
SPLIT_K_DEPTH_RATIO = 8
ACCUMULATE, COLUMNS_OWNED = 1, 2  # bits of the ``accumulate`` argument
# ... and: with no C, each tile of the product may live in a buffer of its own while the
# epilogue reads it (bits 4, 8 and 16 are ``kc_bgemm``'s).
TILE_C = 32
# ... and: B's elements rounded to bf16 as they are packed (every panel packed, none read
# in place): a ``mixed_bfloat16`` product off the matrix engines rounds its weight operand
# so, for nothing but the rounding, instead of in a kernel of its own or a copy
# (``codegen.lowering.products``; bits 64 and 128 are ``kc_bgemm``'s too).
ROUND_B = 256
# ... and: B holds int8 values (a quantized layer's kernel, ``passes.int8_products``),
# widened to f32 as it is packed (every panel packed): the weight stays a byte an element
# in memory, and no kernel widens it first.
B_I8 = 512
# ... and: B is an int4 kernel (``matmul_int4``, ``passes.int4_products``): ``B`` points
# to an ``INT4_KERNEL`` record, not at B's elements, and each panel is unpacked from the
# nibbles (and dequantized with its rows' groups' scales and zero points) as it is
# packed (every panel packed): the kernel stays half a byte a weight in memory.
B_I4 = 1024
# The record ``B`` points to under ``B_I4``, i64s: the packed bytes (K x ceil(N / 2), two
# values a byte along the row, the first in the low nibble), bytes a row, the scales (f32
# G x N; 0 per channel: the values as they are), the zero points (i8 G x N), each row's
# group (f32 K), the first row of B this product reads (split-K's partials start further
# down), N (the scales' row length) and the number of groups.
INT4_KERNEL = ("packed", "row_bytes", "scale", "zero", "g_idx", "first_row", "columns", "groups")
INT4_RECORD = ir.ArrayType(I64, len(INT4_KERNEL))


def _ceil_div(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.udiv(b.add(x, b.sub(y, i64(1))), y)


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _balanced(b: ir.IRBuilder, total, parts, i) -> tuple[ir.Value, ir.Value]:
    """Part ``i`` of ``total`` units cut into ``parts`` parts, as [start, end): the first
    ``total mod parts`` parts one unit longer. Chunk i runs on thread i mod T, so the
    threads' shares differ by at most a unit (66 row tiles in 4 chunks: 17, 17, 16, 16,
    33 a thread, where chunks of 17 gave one thread 34 and the other 32); and a product
    and the split-K product after it that reads its result cut alike."""
    q, r = b.udiv(total, parts), b.urem(total, parts)
    start = b.add(b.mul(i, q), _min(b, i, r))
    return start, b.add(b.add(start, q), b.zext(b.icmp_unsigned("<", i, r), I64))


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _chunk(module: ir.Module, t: Tile, kernels, row_kernels, narrow, packs):
    """``void chunk(ptr job, i64 index)``: columns ``[index*P*NR, (index+1)*P*NR)`` of C
    for all rows and the whole depth (P panels per chunk, from the job); ``packs``: B's
    packing as it is, rounded to bf16 (``ROUND_B``), widened from int8 (``B_I8``) and
    unpacked from int4 (``B_I4``)."""
    fn = ir.Function(module, CHUNK_FN, "kc_gemm_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    packed_t = ir.ArrayType(F32, t.kc * t.panels * t.nr)
    packed = b.alloca(packed_t, name="packed")
    packed.align = 64
    packed.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    a_packed = b.alloca(ir.ArrayType(F32, t.kc * t.mr + t.vw), name="a_packed")
    a_packed.align = 64
    a_packed.type = PTR
    sliver = t.kc * t.mr + t.vw  # floats of a packed sliver (VW of slack: whole vectors)
    a_block = b.alloca(ir.ArrayType(F32, BLOCK_TILES * sliver), name="a_block")
    a_block.align = 64
    a_block.type = PTR
    c_tile = b.alloca(ir.ArrayType(F32, t.mr * t.nr), name="c_tile")
    c_tile.align = 64
    c_tile.type = PTR
    f = {}
    for i, name in enumerate(FIELDS[: len(JOB_FIELDS) + len(SPLIT)]):
        value = b.load(b.gep(job, [i64(0), i64(i)], source_etype=JOB), typ=I64)
        f[name] = b.inttoptr(value, PTR) if name in _POINTERS else value
    epilogue = b.inttoptr(f["epi"], ir.PointerType(EPILOGUE_FN))
    has_epilogue = b.icmp_unsigned("!=", f["epi"], i64(0))
    # A null C (``TILE_C``, ``_gemm``): each tile into ``c_tile``, the epilogue's next.
    in_tile = b.icmp_unsigned("==", b.ptrtoint(f["C"], I64), i64(0))
    ldc = b.select(in_tile, i64(t.nr), f["ldc"])
    m, n, depth = f["M"], f["N"], f["K"]
    panels = _ceil_div(b, n, i64(t.nr))
    p0, p1 = _balanced(b, panels, f["col_chunks"], b.urem(index, f["col_chunks"]))
    k_blocks = b.select(b.icmp_signed(">", depth, i64(0)), _ceil_div(b, depth, i64(t.kc)), i64(1))
    k_step = _ceil_div(b, depth, k_blocks)  # balanced blocks: 784 -> 4 x 196, not 3 x 256 + 16
    groups = _ceil_div(b, b.sub(p1, p0), i64(t.panels))
    row_tiles = _ceil_div(b, m, i64(t.mr))
    t0, t1 = _balanced(b, row_tiles, f["row_chunks"], b.udiv(index, f["col_chunks"]))
    # With few row tiles a packed panel is reused too little to pay for its copy.
    round_b = b.icmp_unsigned("!=", b.and_(f["acc"], i64(ROUND_B)), i64(0))
    b_i8 = b.icmp_unsigned("!=", b.and_(f["acc"], i64(B_I8)), i64(0))
    b_i4 = b.icmp_unsigned("!=", b.and_(f["acc"], i64(B_I4)), i64(0))
    direct = b.and_(
        b.icmp_signed("==", f["csB"], i64(1)), b.icmp_signed("<=", row_tiles, i64(DIRECT_ROW_TILES))
    )
    direct = b.and_(direct, b.not_(b.or_(b.or_(round_b, b_i8), b_i4)))
    by_column = b.icmp_signed("==", f["rsA"], i64(1))
    by_rows = b.and_(b.icmp_signed("==", f["csA"], i64(1)), b.not_(by_column))
    with for_range(b, groups, "g") as g:
        g0 = b.add(p0, b.mul(g, i64(t.panels)))
        g1 = _min(b, p1, b.add(g0, i64(t.panels)))
        col0 = b.mul(g0, i64(t.nr))
        cols = b.sub(_min(b, n, b.mul(g1, i64(t.nr))), col0)
        with for_range(b, k_blocks, "kb") as kb:
            pc = b.mul(kb, k_step)
            kc = _min(b, k_step, b.sub(depth, pc))
            src = _gep_b(b, f["B"], b.add(b.mul(pc, f["rsB"]), b.mul(col0, f["csB"])), b_i8)
            # Direct: full panels read from B itself, only a ragged last panel is packed.
            full_cols = b.mul(b.udiv(cols, i64(t.nr)), i64(t.nr))
            first_packed = b.select(direct, full_cols, i64(0))
            with b.if_then(b.icmp_signed("<", first_packed, cols)):
                ragged = _gep(b, src, b.mul(first_packed, f["csB"]))
                args = [kc, b.sub(cols, first_packed), ragged, f["rsB"], f["csB"], packed]
                with b.if_else(b_i4) as (unpacking, other_kinds):
                    with unpacking:  # B is the kernel's record: rows and columns by index
                        b.call(packs[3], [kc, cols, f["B"], pc, col0, packed])
                    with other_kinds, b.if_else(b_i8) as (widening, other):
                        with widening:
                            b.call(packs[2], args)
                        with other, b.if_else(round_b) as (rounding, plain):
                            with rounding:
                                b.call(packs[1], args)
                            with plain:
                                b.call(packs[0], args)
            # A transposed A is read in place when its slivers are short enough to stay
            # in L1 even when its rows are a power of two apart (L1 sets conflict).
            column_in_place = b.and_(by_column, b.icmp_signed("<=", kc, i64(IN_PLACE_DEPTH)))
            accumulate = b.and_(f["acc"], i64(ACCUMULATE))
            beta = b.or_(accumulate, b.zext(b.icmp_signed(">", kb, i64(0)), I64))
            last = b.and_(has_epilogue, b.icmp_signed("==", kb, b.sub(k_blocks, i64(1))))

            def tile_product(i0, rows, a_tile, lda, jp, row_major) -> None:
                j0 = b.add(col0, b.mul(jp, i64(t.nr)))
                nr = _min(b, i64(t.nr), b.sub(n, j0))
                c = _gep(b, f["C"], b.add(b.mul(i0, f["ldc"]), j0))
                c = b.select(in_tile, c_tile, c)
                from_b = b.and_(direct, b.icmp_signed("==", nr, i64(t.nr)))
                packed_at = b.select(direct, i64(0), b.mul(b.mul(jp, kc), i64(t.nr)))
                panel = b.select(
                    from_b, _gep(b, src, b.mul(jp, i64(t.nr))), _gep(b, packed, packed_at)
                )
                ldb = b.select(from_b, f["rsB"], i64(t.nr))
                args = [kc, a_tile, lda, panel, ldb, c, ldc, nr, beta]
                # A full-height tile of a panel of at most VW columns (a classifier's 10)
                # takes a narrow micro-kernel: one vector of B a k, not NR / VW.
                thin = b.and_(
                    b.icmp_signed("<=", nr, i64(t.vw)), b.icmp_signed("==", rows, i64(t.mr))
                )
                with b.if_else(row_major) as (by_row, other):
                    with by_row, b.if_else(thin) as (narrow_tile, wide_tile):
                        with narrow_tile:
                            b.call(narrow[1], args)
                        with wide_tile:
                            _dispatch(b, rows, row_kernels, args, inline_short=False)
                    with other, b.if_else(thin) as (narrow_tile, wide_tile):
                        with narrow_tile:
                            b.call(narrow[0], args)
                        with wide_tile:
                            _dispatch(b, rows, kernels, args)
                with b.if_then(last):
                    # The epilogue reads element (i, j) at C + i*ldc + j: for the tile in
                    # c_tile, C is an address that puts (i0, j0) at its start.
                    start = b.mul(b.add(b.mul(i0, ldc), j0), i64(4))
                    in_buffer = b.sub(b.ptrtoint(c_tile, I64), start)
                    c_at = b.select(in_tile, in_buffer, b.ptrtoint(f["C"], I64))
                    b.call(epilogue, [f["ctx"], c_at, ldc, i0, j0, rows, nr])

            # A deep transposed A: its slivers for BLOCK_TILES row tiles packed at once,
            # reading whole rows of it (lines the hardware prefetcher follows, where one
            # sliver alone takes 48 bytes of each line); then each panel of B, in L1,
            # runs for every tile of the block.
            # (A block's vector a tile needs MR <= VW: true of every host tile.)
            false = ir.Constant(ir.IntType(1), 0)
            blocked = b.and_(by_column, b.not_(column_in_place)) if t.mr <= t.vw else false
            with b.if_else(blocked) as (in_blocks, per_tile):
                with in_blocks:
                    tiles = b.sub(t1, t0)
                    a_col = _gep(b, f["A"], b.mul(pc, f["csA"]))
                    with for_range(b, _ceil_div(b, tiles, i64(BLOCK_TILES)), "rb") as rb:
                        b0 = b.add(t0, b.mul(rb, i64(BLOCK_TILES)))
                        count = _min(b, i64(BLOCK_TILES), b.sub(t1, b0))
                        _pack_a_block(b, module, t, a_col, f["csA"], m, kc, b0, count, a_block)
                        panels_of = for_range(b, b.sub(g1, g0), "jb")
                        with panels_of as jp, for_range(b, count, "ib") as it:
                            i0 = b.mul(b.add(b0, it), i64(t.mr))
                            rows = _min(b, i64(t.mr), b.sub(m, i0))
                            a_tile = _gep(b, a_block, b.mul(it, i64(sliver)))
                            tile_product(i0, rows, a_tile, i64(t.mr), jp, false)
                with per_tile, for_range(b, b.sub(t1, t0), "it") as it:
                    i0 = b.mul(b.add(t0, it), i64(t.mr))
                    rows = _min(b, i64(t.mr), b.sub(m, i0))
                    a = _gep(b, f["A"], b.add(b.mul(i0, f["rsA"]), b.mul(pc, f["csA"])))
                    # A is read in place when a row or a column of it is contiguous (its
                    # lines then stay in L1 across the panels): the micro-kernel
                    # broadcasts from them as well as from a packed sliver, without the
                    # copy. One row is read in place whatever its stride.
                    single = b.or_(b.icmp_signed("==", rows, i64(1)), column_in_place)
                    with b.if_then(b.not_(b.or_(single, by_rows))):
                        whole = b.icmp_signed(">=", b.sub(m, i0), i64(t.vw))
                        _pack_a(b, t, a, f["rsA"], f["csA"], kc, rows, whole, a_packed)
                    a_tile = b.select(b.or_(single, by_rows), a, a_packed)
                    lda = b.select(single, f["csA"], b.select(by_rows, f["rsA"], i64(t.mr)))
                    row_major = b.and_(by_rows, b.not_(single))
                    with for_range(b, b.sub(g1, g0), "jp") as jp:
                        tile_product(i0, rows, a_tile, lda, jp, row_major)
    b.ret_void()
    return fn


# Whether a transposed A's block packing loads whole vectors without a mask where it can
# (off only to measure against).
PLAIN_A_LOADS = True


def _pack_a_block(b: ir.IRBuilder, module, t: Tile, a, cs_a, m, kc, b0, count, dst) -> None:
    """The slivers of row tiles ``b0 .. b0+count`` of a transposed A (A(i, k) at
    ``a[k*cs_a + i]``, M rows) into ``dst``, one every ``kc_max*MR + VW`` floats, each
    k-major as ``_pack_a`` packs one: row k of A is read once, a vector per tile (its
    lanes past MR land in the next k's slots, overwritten after; past M, masked)."""
    vec = _vec(t)
    masked_load = _masked_load(module, t)
    lanes = ir.Constant(ir.VectorType(I64, t.vw), list(range(t.vw)))
    zero = ir.Constant(vec, None)
    with for_range(b, kc, "kk") as k:
        row = _gep(b, a, b.mul(k, cs_a))
        with for_range(b, count, "tb") as it:
            i0 = b.mul(b.add(b0, it), i64(t.mr))
            at = _gep(b, dst, b.add(b.mul(it, i64(t.kc * t.mr + t.vw)), b.mul(k, i64(t.mr))))
            # A plain load where the vector lies within A's M rows (all tiles but the
            # last): the masked load and its mask, made again each time, cost twice as
            # much (6% of the encoder's train step on AVX2).
            inside = b.icmp_signed(">=", b.sub(m, i0), i64(t.vw if PLAIN_A_LOADS else 1 << 40))
            with b.if_else(inside) as (whole, tail):
                with whole:
                    b.store(b.load(_gep(b, row, i0), typ=vec, align=4), at, align=4)
                with tail:
                    mask = b.icmp_signed("<", lanes, _splat(b, b.sub(m, i0), t.vw))
                    args = [_gep(b, row, i0), ir.Constant(I32, 4), mask, zero]
                    b.store(b.call(masked_load, args), at, align=4)


def _pack_a(b: ir.IRBuilder, t: Tile, a, rs_a, cs_a, kc, rows, whole, dst) -> None:
    """The ``rows x kc`` sliver of A at ``a`` into ``dst`` k-major (``dst[k*MR + r]``), so
    the micro-kernel reads A at constant offsets from one pointer. Vectors where the
    layout allows (lanes past ``rows`` land in the next k's slots, overwritten after):
    rows contiguous in memory (a transposed A) are copied a vector per k; a full sliver
    of row-major A goes through ``VW x VW`` register transposes, VW k at a time."""
    vec = _vec(t)
    by_column = b.and_(whole, b.icmp_signed("==", rs_a, i64(1)))
    with b.if_then(by_column), for_range(b, kc, "ka") as k:
        value = b.load(_gep(b, a, b.mul(k, cs_a)), typ=vec, align=4)
        b.store(value, _gep(b, dst, b.mul(k, i64(t.mr))), align=4)
    k_from = b.select(by_column, kc, i64(0))
    if t.mr <= t.vw:
        full_rows = b.and_(b.icmp_signed("==", rows, i64(t.mr)), b.icmp_signed("==", cs_a, i64(1)))
        full_rows = b.and_(full_rows, b.not_(by_column))
        blocks = b.udiv(kc, i64(t.vw))
        with b.if_then(full_rows), for_range(b, blocks, "kt") as kb:
            k0 = b.mul(kb, i64(t.vw))
            # Rows past MR repeat row 0: real memory, lanes that get overwritten.
            lines = [
                b.load(
                    _gep(b, a, b.add(b.mul(i64(r if r < t.mr else 0), rs_a), k0)),
                    typ=vec,
                    align=4,
                )
                for r in range(t.vw)
            ]
            for k, column in enumerate(_transpose(b, lines, t.vw)):
                at = b.mul(b.add(k0, i64(k)), i64(t.mr))
                b.store(column, _gep(b, dst, at), align=4)
        k_from = b.select(full_rows, b.mul(blocks, i64(t.vw)), k_from)
    with for_range(b, b.sub(kc, k_from), "ka") as kk, for_range(b, rows, "ra") as r:
        k = b.add(k_from, kk)
        value = b.load(_gep(b, a, b.add(b.mul(r, rs_a), b.mul(k, cs_a))), typ=F32)
        b.store(value, _gep(b, dst, b.add(b.mul(k, i64(t.mr)), r)))


def _dispatch(
    b: ir.IRBuilder, rows: ir.Value, kernels: list[ir.Function], args, inline_short=True
) -> None:
    """Call the micro-kernel for ``rows`` rows (the full-height one is the common case;
    without ``inline_short`` the others stay calls, which keeps the code small)."""
    fn = b.function
    after = fn.append_basic_block("tile.done")
    cases = [fn.append_basic_block(f"tile.rows{r + 1}") for r in range(len(kernels))]
    switch = b.switch(rows, cases[-1])
    for r, block in enumerate(cases):
        switch.add_case(i64(r + 1), block)
        b.position_at_end(block)
        short = r + 1 < len(kernels)
        b.call(kernels[r], args, attrs=("noinline",) if short and not inline_short else ())
        b.branch(after)
    b.position_at_end(after)


def _gemm(
    module: ir.Module, t: Tile, chunk: ir.Function, parallel_for: ir.Function, splitters
) -> None:
    fn = ir.Function(module, GEMM_FN, GEMM)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    args = dict(zip(JOB_FIELDS, fn.args))
    job = b.alloca(JOB, name="job")
    job.type = PTR
    m, n, depth = args["M"], args["N"], args["K"]
    empty = b.or_(b.icmp_signed("<=", m, i64(0)), b.icmp_signed("<=", n, i64(0)))
    with b.if_then(empty):
        b.ret_void()
    no_c = b.icmp_unsigned("==", b.ptrtoint(args["C"], I64), i64(0))
    panels = _ceil_div(b, n, i64(t.nr))
    threads = threads_for_a_job(module, b)
    macs = b.mul(b.mul(m, n), depth)
    small_b = b.icmp_signed("<", b.mul(depth, n), i64(PARALLEL_MIN_B))
    small = b.or_(
        b.icmp_signed("<", macs, i64(PARALLEL_MIN_MACS)),
        b.and_(small_b, b.icmp_signed("<", macs, i64(PARALLEL_ANY_MACS))),
    )
    threads = b.select(small, i64(1), threads)
    row_tiles = _ceil_div(b, m, i64(t.mr))
    # Columns are split when each thread gets 4 panels or more (or the epilogue sums
    # columns, so two threads must not share one): every thread then reads all of A.
    # Otherwise rows: every thread packs all of B, which is the narrow operand.
    owned = b.icmp_unsigned("!=", b.and_(args["acc"], i64(COLUMNS_OWNED)), i64(0))
    wide = b.icmp_signed(">=", panels, b.mul(threads, i64(4)))
    by_columns = b.or_(b.or_(owned, wide), b.icmp_signed("<", row_tiles, b.mul(threads, i64(2))))
    # Column chunks: at least one per thread, none wider than one packed block.
    col_chunks = b.mul(threads, _ceil_div(b, panels, b.mul(threads, i64(t.panels))))
    col_chunks = b.select(by_columns, col_chunks, _ceil_div(b, panels, i64(t.panels)))
    col_chunks = _min(b, col_chunks, panels)
    # One thread (a small product): one chunk, which the caller runs without waking the pool.
    per_thread = b.select(b.icmp_signed(">", threads, i64(1)), i64(2), i64(1))
    row_chunks = b.select(by_columns, i64(1), _min(b, b.mul(threads, per_thread), row_tiles))
    # Split-K: few rows of C (a small batch), or a product much deeper than it is tall
    # and wide (a weight gradient contracting the batch: split by rows, every thread
    # would pack all of a B as large as the activations), on several threads.
    k_tiles = _ceil_div(b, depth, i64(t.mr))
    far_deeper = b.icmp_signed(">=", depth, b.mul(i64(SPLIT_K_DEPTH_RATIO), _max(b, m, n)))
    few_rows = b.icmp_signed("<", row_tiles, b.mul(threads, i64(2)))
    split_k = b.and_(
        b.and_(b.or_(few_rows, far_deeper), b.not_(owned)),
        b.and_(
            b.icmp_signed(">", threads, i64(1)),
            b.icmp_signed(">=", k_tiles, b.mul(threads, i64(SPLIT_K_MIN_TILES))),
        ),
    )
    # No C: the product lives in a scratch matrix that only the epilogue reads; or, with
    # TILE_C, one pass over the depth (one block of it) and no split-K, in a tile of the
    # chunk's own that the epilogue reads right after (``_chunk``): no M x N matrix to
    # allocate, write and read back (the MLP's weight update: 400 KB a step).
    in_tiles = b.icmp_unsigned("!=", b.and_(args["acc"], i64(TILE_C)), i64(0))
    in_tiles = b.and_(b.and_(in_tiles, b.icmp_signed("<=", depth, i64(t.kc))), b.not_(split_k))
    scratch_slot = b.alloca(PTR, name="scratch")
    b.store(ir.Constant(PTR, None), scratch_slot)
    with b.if_then(b.and_(no_c, b.not_(in_tiles))):
        size = b.mul(b.mul(m, n), i64(4))
        size = b.mul(_ceil_div(b, size, i64(64)), i64(64))
        aligned_alloc = _declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
        b.store(b.call(aligned_alloc, [i64(64), size]), scratch_slot)
    scratch = b.load(scratch_slot, typ=PTR)
    args["C"] = b.select(no_c, scratch, args["C"])
    args["ldc"] = b.select(no_c, n, args["ldc"])
    for i, name in enumerate(JOB_FIELDS):
        value = b.ptrtoint(args[name], I64) if name in _POINTERS | {"epi"} else args[name]
        b.store(value, b.gep(job, [i64(0), i64(i)], source_etype=JOB))
    for i, value in enumerate((col_chunks, row_chunks)):
        b.store(value, b.gep(job, [i64(0), i64(len(JOB_FIELDS) + i)], source_etype=JOB))
    with b.if_else(split_k) as (deep, plain):
        with deep:
            _split_k(b, module, t, job, threads, k_tiles, parallel_for, splitters)
        with plain:
            b.call(parallel_for, [chunk, job, b.mul(col_chunks, row_chunks)])
    with b.if_then(no_c):
        free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
        b.call(free, [scratch])
    b.ret_void()


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(FIELDS.index(name))], source_etype=JOB), typ=I64)


def _set_field(b: ir.IRBuilder, job, name: str, value: ir.Value) -> None:
    b.store(value, b.gep(job, [i64(0), i64(FIELDS.index(name))], source_etype=JOB))


def _split_k(b, module, t: Tile, job, threads, k_tiles, parallel_for, splitters) -> None:
    """C (+)= A·B as ``2 x threads`` partial products over ranges of K, each a whole
    product of its own into scratch, then their sum (and the epilogue) by columns.

    A small batch's forward product reads the weights whole; split by columns, every
    thread reads every row of them, half of which the other thread's weight update (a
    product with as many rows as K, split by rows) has just written. Split by K in
    MR-row units and ``2 x threads`` chunks, thread i mod T reads exactly the rows the
    update gave it: the weights stay in their core's cache (the MLP's step: the forward
    35 µs instead of 58 µs in the train step)."""
    partial, total = splitters
    m, n = _field(b, job, "M"), _field(b, job, "N")
    chunks = _min(b, b.mul(threads, i64(2)), k_tiles)
    size = b.mul(_ceil_div(b, b.mul(b.mul(b.mul(m, n), chunks), i64(4)), i64(64)), i64(64))
    aligned_alloc = _declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    scratch = b.call(aligned_alloc, [i64(64), size])
    _set_field(b, job, "scratch", b.ptrtoint(scratch, I64))
    _set_field(b, job, "k_tiles", k_tiles)
    _set_field(b, job, "k_chunks", chunks)
    b.call(parallel_for, [partial, job, chunks])
    panels = _ceil_div(b, n, i64(t.nr))
    b.call(parallel_for, [total, job, _min(b, panels, threads)])
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    b.call(free, [scratch])


def _partial_chunk(module: ir.Module, t: Tile, chunk: ir.Function) -> ir.Function:
    """``chunk(job, i)`` of split-K: range ``i`` of K (``_balanced``, in MR-row units)
    into scratch block ``i`` (M x N, overwritten), through the plain chunk on a job of
    its own."""
    fn = ir.Function(module, CHUNK_FN, "kc_gemm_partial")
    fn.linkage = "internal"
    base, i = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    job = b.alloca(JOB, name="part")
    job.type = PTR
    for name in FIELDS:
        _set_field(b, job, name, _field(b, base, name))
    b_i8 = b.icmp_unsigned("!=", b.and_(_field(b, base, "acc"), i64(B_I8)), i64(0))
    b_i4 = b.icmp_unsigned("!=", b.and_(_field(b, base, "acc"), i64(B_I4)), i64(0))
    depth = _field(b, base, "K")
    m, n = _field(b, base, "M"), _field(b, base, "N")
    tile0, tile1 = _balanced(b, _field(b, base, "k_tiles"), _field(b, base, "k_chunks"), i)
    k0 = b.mul(tile0, i64(t.mr))
    a = b.inttoptr(_field(b, base, "A"), PTR)
    b_ = b.inttoptr(_field(b, base, "B"), PTR)
    scratch = b.inttoptr(_field(b, base, "scratch"), PTR)
    block = _gep(b, scratch, b.mul(b.mul(m, n), i))
    # An int4 kernel's record, copied with its first row moved down to this range's.
    record = b.alloca(INT4_RECORD, name="int4_part")
    record.type = PTR
    with b.if_then(b_i4):
        for index, name in enumerate(INT4_KERNEL):
            value = _record_field(b, b_, name)
            value = b.add(value, k0) if name == "first_row" else value
            b.store(value, b.gep(record, [i64(0), i64(index)], source_etype=INT4_RECORD))
    b_part = b.select(b_i4, record, _gep_b(b, b_, b.mul(k0, _field(b, base, "rsB")), b_i8))
    fields = {
        "K": b.sub(_min(b, depth, b.mul(tile1, i64(t.mr))), k0),
        "A": b.ptrtoint(_gep(b, a, b.mul(k0, _field(b, base, "csA"))), I64),
        "B": b.ptrtoint(b_part, I64),
        "C": b.ptrtoint(block, I64),
        "ldc": n,
        # A partial sum overwrites; B's kind stays.
        "acc": b.and_(_field(b, base, "acc"), i64(ROUND_B | B_I8 | B_I4)),
        "epi": i64(0),
        "col_chunks": i64(1),
        "row_chunks": i64(1),
    }
    for name, value in fields.items():
        _set_field(b, job, name, value)
    b.call(chunk, [job, i64(0)])
    b.ret_void()
    return fn


def _total_chunk(module: ir.Module, t: Tile) -> ir.Function:
    """``chunk(job, j)`` of split-K: panel range ``j`` of C, the sum of the partial
    products (added to C with ``ACCUMULATE``), then the epilogue on each tile."""
    fn = ir.Function(module, CHUNK_FN, "kc_gemm_total")
    fn.linkage = "internal"
    job, j = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    m, n, ldc = _field(b, job, "M"), _field(b, job, "N"), _field(b, job, "ldc")
    c = b.inttoptr(_field(b, job, "C"), PTR)
    scratch = b.inttoptr(_field(b, job, "scratch"), PTR)
    chunks = _field(b, job, "k_chunks")
    accumulate = b.icmp_unsigned("!=", b.and_(_field(b, job, "acc"), i64(ACCUMULATE)), i64(0))
    panels = _ceil_div(b, n, i64(t.nr))
    threads = _min(b, panels, b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64))
    per = _ceil_div(b, panels, threads)
    p0 = b.mul(j, per)
    col0 = _min(b, n, b.mul(p0, i64(t.nr)))
    col1 = _min(b, n, b.mul(b.add(p0, per), i64(t.nr)))
    zero = ir.Constant(F32, 0.0)
    with for_range(b, m, "r") as r:
        row = _gep(b, c, b.mul(r, ldc))
        partial_row = _gep(b, scratch, b.mul(r, n))
        # Partial 0 first, then each next one added: rows of contiguous columns, which
        # LLVM vectorizes; the sum's order is fixed, so every run gives the same bits.
        with for_range(b, b.sub(col1, col0), "c") as cc:
            col = b.add(col0, cc)
            start = b.select(accumulate, b.load(_gep(b, row, col), typ=F32), zero)
            value = b.load(_gep(b, partial_row, col), typ=F32)
            b.store(b.fadd(start, value), _gep(b, row, col))
        with for_range(b, b.sub(chunks, i64(1)), "k") as k:
            block = _gep(b, partial_row, b.mul(b.mul(m, n), b.add(k, i64(1))))
            with for_range(b, b.sub(col1, col0), "c") as cc:
                col = b.add(col0, cc)
                at = _gep(b, row, col)
                b.store(b.fadd(b.load(at, typ=F32), b.load(_gep(b, block, col), typ=F32)), at)
    epi = _field(b, job, "epi")
    with b.if_then(b.icmp_unsigned("!=", epi, i64(0))):
        epilogue = b.inttoptr(epi, ir.PointerType(EPILOGUE_FN))
        ctx = b.inttoptr(_field(b, job, "ctx"), PTR)
        tiles = _ceil_div(b, m, i64(t.mr))
        width = _ceil_div(b, b.sub(col1, col0), i64(t.nr))
        with for_range(b, tiles, "ti") as ti, for_range(b, width, "tj") as tj:
            i0 = b.mul(ti, i64(t.mr))
            j0 = b.add(col0, b.mul(tj, i64(t.nr)))
            rows = _min(b, i64(t.mr), b.sub(m, i0))
            cols = _min(b, i64(t.nr), b.sub(col1, j0))
            b.call(epilogue, [ctx, b.ptrtoint(c, I64), ldc, i0, j0, rows, cols])
    b.ret_void()
    return fn


def add_gemm(module: ir.Module, t: Tile) -> None:
    """Define ``kc_sgemm`` in ``module`` (which must hold the thread pool)."""
    kernels = [_micro_kernel(module, t, rows) for rows in range(1, t.mr + 1)]
    row_kernels = [_micro_kernel(module, t, rows, a_by_rows=True) for rows in range(1, t.mr + 1)]
    narrow = [_micro_kernel(module, t, t.mr, by_rows, narrow=True) for by_rows in (False, True)]
    packs = (
        _pack_b(module, t),
        _pack_b(module, t, rounded=True),
        _pack_b_i8(module, t),
        _pack_b_i4(module, t),
    )
    chunk = _chunk(module, t, kernels, row_kernels, narrow, packs)
    splitters = (_partial_chunk(module, t, chunk), _total_chunk(module, t))
    _gemm(module, t, chunk, module.globals[abi.PARALLEL_FOR.symbol], splitters)


def declare_gemm(module: ir.Module) -> ir.Function:
    existing = module.globals.get(GEMM)
    return existing if existing is not None else ir.Function(module, GEMM_FN, GEMM)
