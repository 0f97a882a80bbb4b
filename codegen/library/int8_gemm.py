"""Integer matrix products: int8 operands, exact int32 sums, each sum's f32 in C.

    void kc_igemm(i64 M, i64 N, i64 K, ptr A, i64 rsA, i64 csA, ptr B, i64 rsB, i64 csB,
                  ptr C, i64 ldc, i64 flags, ptr epilogue, ptr epilogue_ctx)

``kc_sgemm``'s ABI (``codegen.library.gemm``) on int8 A and B (strides in elements, which
are bytes): ``C[i, j] (+)= f32(sum_k A[i, k] * B[k, j])``, the sum exact in int32 for
any depth below 2**17, then rounded once to f32: what a quantized layer's product and
its cast give (``passes.int8_products``). Of the flags it reads ``ACCUMULATE`` and
``COLUMNS_OWNED``; the epilogue runs on each finished f32 tile, a null C leaving the
tile in a buffer of its own that only the epilogue reads (as ``kc_sgemm``'s ``TILE_C``).

Engines, chosen from the target's features when the library is built (``kc_igemm_isa()``
says which one a product of more than ``DIRECT_ROW_TILES`` row tiles takes, ``PATHS``):

- AMX-INT8 (``amx-int8``, and Linux granting the tile state): 32 x 32 blocks of
  ``tdpbusd`` tiles (``codegen.library.int8_amx``);
- AVX512_VNNI / AVX_VNNI: ``vpdpbusd``, four byte products a lane (``codegen.library.int8_quads``);
- everywhere: ``pmaddwd`` (SSE2, AVX2 and AVX-512BW widths: two products of 16-bit
  integers summed into each 32-bit lane), below; it also takes the products of few rows
  on every CPU (B read in place).

With ``pmaddwd``, per pair of k a 32-bit word of A (two int16) broadcast meets a vector
of B packed in pairs (each column's two k side by side), and the pairs' sums are added
into ``MR x NR`` int32 accumulators. Both operands are widened to int16 once per call, in
parallel chunks: A row by row (each row's pairs are then consecutive words), B into
``K x NR`` panels of pairs, zero padded. The tiles of C then run in chunks of rows and
columns, each group of ``GROUP`` panels (L2) for every row tile of the chunk (its rows in
L1). The engines' paths pack bytes instead (``Layout``) and run the same chunks.

On AVX2 (an AMD Zen 3), ``pmaddwd`` and the add that follows it issue ~1.5 a cycle
against the FMAs' 2 (independent chains, each instruction 16 multiply-adds against the
FMA's 8): the integer path's peak is ~1.6x the f32 one, and the int8 weights are a
quarter of f32's bytes. One thread, 256 x 784 x 512: 129 GOP/s (of ~143).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from kcompile.codegen.library import bf16_gemm, int8_amx, int8_quads, scratch
from kcompile.codegen.library.gemm import ACCUMULATE, COLUMNS_OWNED, EPILOGUE_FN, GEMM_FN
from kcompile.codegen.library.parallel import CHUNK_FN, threads_for_a_job
from kcompile.codegen.loops import F32, I8, I32, I64, PTR, chunk_range, for_range, for_reduce, i64
from kcompile.ir import abi
from kcompile.ir.abi import Signature

IGEMM = Signature("kc_igemm", None, abi.GEMM.params)
IGEMM_ISA = Signature("kc_igemm_isa", "i32", ())
EXPORTS = (IGEMM, IGEMM_ISA)
# kc_igemm_isa()'s answers: the path of a product of more than DIRECT_ROW_TILES row tiles
# (fewer always multiply in pairs, reading B in place).
PATHS = {"madd": 1, "vnni": 2, "vnni_emulated": 3, "amx": 4, "amx_emulated": 5}
I16 = ir.IntType(16)
# Panels of B per group: the group (GROUP x K x NR int16: 128 KB at K = 512 on AVX2)
# stays in L2 while every row tile of a chunk runs on it.
GROUP = 8
# Below this many multiply-adds a product runs on the calling thread.
PARALLEL_MIN_MACS = 1 << 16
# Chunks of the packing a thread (A's rows, B's panels): more than the threads, so a late
# thread is not waited for.
CHUNKS_PER_THREAD = 4
# Chunks of C a thread, by rows: each chunk streams all of packed B through L2 once per
# group of panels, so fewer, taller chunks read B fewer times (2 threads, interleaved in
# one process, 256x784x512: 4 a thread 1430 us, 2 and 1 1309-1320 us; 2 keeps some
# balance for a late thread).
COMPUTE_CHUNKS_PER_THREAD = 2
# Up to this many row tiles, whole panels of a B of rows (an even depth) are not packed:
# the micro-kernel widens and pairs B's rows itself, in registers (a batch of one row
# read each panel once: packing it was as long as the product).
DIRECT_ROW_TILES = 2
# A single row runs this many panels at once from B in place: a 64-byte line of each row
# of B whole, where a panel at a time read a quarter of each line per pass down B (the
# lines left L1 between passes: 1 x 512 x 512 took 73 us, 24 cycles a pair of k).
DIRECT_SPAN = 4
FIELDS = (
    *("M", "N", "K", "A", "rsA", "csA", "B", "rsB", "csB", "C", "ldc", "acc", "epi", "ctx"),
    *("ap", "bp", "k2", "a_chunks", "b_chunks", "row_chunks", "col_chunks", "no_c", "direct"),
    *("r0", "slab"),
)
# A is widened a slab of rows at a time, each slab then computed: about this many bytes of
# int16 pairs, which stay in cache for the micro-kernels (widened whole, 32768 x 512 rows
# of A took 32 MB and the product ran at 75 GOPS against kc_sgemm's 97; 4096 rows, 108).
SLAB_BYTES = 1 << 20
JOB = ir.ArrayType(I64, len(FIELDS))


@dataclass(frozen=True)
class IntTile:
    """The micro-tile: ``mr`` rows by ``nv`` vectors of ``vw`` int32 lanes."""

    vw: int
    mr: int
    nv: int = 2

    @property
    def nr(self) -> int:
        return self.nv * self.vw

    @staticmethod
    def for_features(features: Callable[[str], bool]) -> IntTile:
        """AVX-512BW: 16 lanes, 32 registers (12 x 32); AVX2: 8 lanes, 16 registers
        (6 x 16: 12 accumulators, 2 of B, 1 broadcast); else SSE2's 4 (6 x 8)."""
        if features("avx512bw"):
            return IntTile(vw=16, mr=12)
        if features("avx2"):
            return IntTile(vw=8, mr=6)
        return IntTile(vw=4, mr=6)


@dataclass(frozen=True)
class Layout:
    """How A's rows and B's panels are packed: int16 pairs of k for ``pmaddwd`` (``PAIRS``)
    or byte quads for ``vpdpbusd`` (``QUADS``, ``codegen.library.int8_quads``); ``kg``
    below is K rounded up to a whole group."""

    group: int  # k per 32-bit lane
    etype: ir.IntType  # a packed element

    def steps(self, b: ir.IRBuilder, kg) -> ir.Value:
        return b.udiv(kg, i64(self.group))

    def a_rows(self, b: ir.IRBuilder, ap, first_row, kg) -> ir.Value:
        return _at(b, ap, b.mul(first_row, kg), self.etype)

    def panel_size(self, b: ir.IRBuilder, kg, nr: int | ir.Value) -> ir.Value:
        """Elements of one packed panel (of ``nr`` columns)."""
        if self.group == int8_quads.QUAD:
            return int8_quads.panel_bytes(b, kg, nr)
        return b.mul(kg, nr if isinstance(nr, ir.Value) else i64(nr))

    def panel(self, b: ir.IRBuilder, bp, p, kg, nr: int) -> ir.Value:
        return _at(b, bp, b.mul(p, self.panel_size(b, kg, nr)), self.etype)


PAIRS = Layout(2, I16)
QUADS = Layout(int8_quads.QUAD, I8)


_MADD = {
    4: "llvm.x86.sse2.pmadd.wd",
    8: "llvm.x86.avx2.pmadd.wd",
    16: "llvm.x86.avx512.pmaddw.d.512",
}


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(FIELDS.index(name))], source_etype=JOB), typ=I64)


def _set(b: ir.IRBuilder, job, name: str, value) -> None:
    b.store(value, b.gep(job, [i64(0), i64(FIELDS.index(name))], source_etype=JOB))


def _ptr(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.inttoptr(_field(b, job, name), PTR)


def _at(b: ir.IRBuilder, ptr, offset, etype) -> ir.Value:
    return b.gep(ptr, [offset], inbounds=True, source_etype=etype)


def _min(b: ir.IRBuilder, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _ceil_div(b: ir.IRBuilder, x, y):
    return b.udiv(b.add(x, b.sub(y, i64(1))), y)


def _byte(b: ir.IRBuilder, ptr, offset, inside) -> ir.Value:
    """The int16 of the int8 at ``ptr[offset]``, or 0 outside (no load there)."""
    at = _at(b, ptr, b.select(inside, offset, i64(0)), I8)
    return b.select(inside, b.sext(b.load(at, typ=I8), I16), ir.Constant(I16, 0))


def _pack_chunk(module: ir.Module, t: IntTile, layout: Layout = PAIRS) -> ir.Function:
    """``chunk(job, i)``: for ``i < a_chunks`` a range of the slab's rows of A (from row
    ``r0``) widened to int16 rows of ``k2`` (K rounded up to even, the last zero); after,
    a range of B's panels
    widened into pairs: ``bp[(panel * k2 / 2 + pair) * NR * 2 + 2 * column + half]``.
    With ``QUADS``, both in ``int8_quads``'s layouts instead (``k2`` is then K rounded up
    to a multiple of 4)."""
    quads = layout is QUADS
    name = f"kc_igemm_pack_quads{t.nr}" if quads else "kc_igemm_pack"
    if name in module.globals:  # VNNI's and AMX's are one on AVX-512 (32 columns)
        return module.globals[name]
    fn = ir.Function(module, CHUNK_FN, name)
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    sums = int8_quads.sums_slot(b, t.nr) if quads else None
    slab, n, depth, k2 = (_field(b, job, name) for name in ("slab", "N", "K", "k2"))
    a_chunks = _field(b, job, "a_chunks")
    with b.if_else(b.icmp_signed("<", index, a_chunks)) as (rows_of_a, panels_of_b):
        with rows_of_a:
            a, ap = _ptr(b, job, "A"), _ptr(b, job, "ap")
            rs, cs = _field(b, job, "rsA"), _field(b, job, "csA")
            first, count = chunk_range(b, slab, index, a_chunks)
            r0 = _field(b, job, "r0")
            with for_range(b, count, "i") as ii:
                i = b.add(first, ii)  # the slab's row i: A's row r0 + i
                row = _at(b, a, b.mul(b.add(r0, i), rs), I8)
                out = _at(b, ap, b.mul(i, k2), layout.etype)
                if quads:
                    int8_quads.pack_row(b, row, cs, depth, k2, out, 4 * t.vw)
                else:
                    _widen_row(b, row, cs, depth, k2, out, 2 * t.vw)
        with panels_of_b:
            chunk = b.sub(index, a_chunks)
            if quads:
                _pack_quad_panels(b, t, job, chunk, n, depth, k2, sums)
            else:
                _pack_panels(b, t, job, chunk, n, depth, k2)
    b.ret_void()
    return fn


def _widen_row(b: ir.IRBuilder, row, cs, depth, k2, out, width: int) -> None:
    """A's row at ``row`` (bytes ``cs`` apart) into ``k2`` int16 at ``out``, zero past
    ``depth``. Contiguous rows: ``width`` bytes sign-extended at once, the rest (and other
    strides) element by element (element by element throughout, 256 x 784 took 140 us:
    2 cycles a byte)."""
    vectors = b.select(b.icmp_signed("==", cs, i64(1)), b.udiv(depth, i64(width)), i64(0))
    with for_range(b, vectors, "kv") as kv:
        at = b.mul(kv, i64(width))
        bytes_ = b.load(_at(b, row, at, I8), typ=ir.VectorType(I8, width), align=1)
        b.store(b.sext(bytes_, ir.VectorType(I16, width)), _at(b, out, at, I16), align=2)
    done = b.mul(vectors, i64(width))
    with for_range(b, b.sub(k2, done), "k") as kk:
        k = b.add(done, kk)
        value = _byte(b, row, b.mul(k, cs), b.icmp_signed("<", k, depth))
        b.store(value, _at(b, out, k, I16))


def _pack_quad_panels(b: ir.IRBuilder, t: IntTile, job, chunk, n, depth, k4, sums) -> None:
    """A range of B's panels in quads and their corrections (``int8_quads.pack_panel``)."""
    src, bp = _ptr(b, job, "B"), _ptr(b, job, "bp")
    rs, cs = _field(b, job, "rsB"), _field(b, job, "csB")
    panels = _ceil_div(b, n, i64(t.nr))
    first, count = chunk_range(b, panels, chunk, _field(b, job, "b_chunks"))
    with for_range(b, count, "p") as pp:
        p = b.add(first, pp)
        col0 = b.mul(p, i64(t.nr))
        cols = _min(b, i64(t.nr), b.sub(n, col0))
        whole = b.and_(b.icmp_signed("==", cols, i64(t.nr)), b.icmp_signed("==", cs, i64(1)))
        base = _at(b, src, b.mul(col0, cs), I8)
        panel = QUADS.panel(b, bp, p, k4, t.nr)
        int8_quads.pack_panel(b, t.nr, base, rs, cs, depth, k4, cols, whole, panel, sums)


def _pack_panels(b: ir.IRBuilder, t: IntTile, job, chunk, n, depth, k2) -> None:
    src, bp = _ptr(b, job, "B"), _ptr(b, job, "bp")
    rs, cs = _field(b, job, "rsB"), _field(b, job, "csB")
    panels = _ceil_div(b, n, i64(t.nr))
    first, count = chunk_range(b, panels, chunk, _field(b, job, "b_chunks"))
    bytes_ = ir.VectorType(I8, t.nr)
    wide = ir.VectorType(I16, t.nr)
    interleave = _interleave(t)
    full_pairs = b.udiv(depth, i64(2))
    direct = b.icmp_unsigned("!=", _field(b, job, "direct"), i64(0))
    with for_range(b, count, "p") as pp:
        p = b.add(first, pp)
        col0 = b.mul(p, i64(t.nr))
        panel = _at(b, bp, b.mul(b.mul(p, k2), i64(t.nr)), I16)
        base = _at(b, src, b.mul(col0, cs), I8)
        whole = b.and_(
            b.icmp_signed("<=", b.add(col0, i64(t.nr)), n), b.icmp_signed("==", cs, i64(1))
        )
        # Read in place by the micro-kernel (``DIRECT_ROW_TILES``): nothing to pack.
        in_place = b.and_(whole, direct)
        whole_pairs = b.select(in_place, i64(0), b.udiv(k2, i64(2)))
        # Whole panels of rows of B: pairs of rows a vector at a time; the rest (a ragged
        # last panel, other strides, an odd K's last row) element by element.
        vector_pairs = b.select(b.and_(whole, b.not_(in_place)), full_pairs, i64(0))
        with for_range(b, vector_pairs, "kp") as kp:
            top = _at(b, base, b.mul(b.mul(kp, i64(2)), rs), I8)
            rows = [b.load(r, typ=bytes_, align=1) for r in (top, _at(b, top, rs, I8))]
            lo, hi = (b.sext(r, wide) for r in rows)
            out = _at(b, panel, b.mul(kp, i64(2 * t.nr)), I16)
            b.store(b.shuffle_vector(lo, hi, interleave), out, align=2)
        vector_pairs = _min(b, vector_pairs, whole_pairs)
        with for_range(b, b.sub(whole_pairs, vector_pairs), "kr") as kr:
            kp = b.add(vector_pairs, kr)
            with for_range(b, i64(2 * t.nr), "e") as e:
                j, half = b.udiv(e, i64(2)), b.urem(e, i64(2))
                k = b.add(b.mul(kp, i64(2)), half)
                inside = b.and_(b.icmp_signed("<", k, depth), b.icmp_signed("<", b.add(col0, j), n))
                value = _byte(b, base, b.add(b.mul(k, rs), b.mul(j, cs)), inside)
                b.store(value, _at(b, panel, b.add(b.mul(kp, i64(2 * t.nr)), e), I16))


def _interleave(t: IntTile) -> ir.Constant:
    """The shuffle that puts row k's column j at lane 2j, row k + 1's at lane 2j + 1."""
    lanes = [x for j in range(t.nr) for x in (j, t.nr + j)]
    return ir.Constant(ir.VectorType(I32, 2 * t.nr), lanes)


def _micro_kernel(
    module: ir.Module, t: IntTile, height: int, direct: bool, span: int = 1
) -> ir.Function:
    """``void ukr(i64 pairs, ptr a, i64 lda, ptr panel, i64 rs, ptr tile)``: the tile of
    ``height`` rows of A (int16 rows ``lda`` apart) times a packed panel, over ``pairs``
    pairs of k, written to ``tile`` (``MR x NR`` f32) as the f32 of each int32 sum.
    ``direct``: ``panel`` is B itself at the panel's first column, int8 rows ``rs``
    apart, widened and paired here, ``span`` panels side by side (the tile then ``span``
    tiles' columns wide)."""
    ftype = ir.FunctionType(ir.VoidType(), [I64, PTR, I64, PTR, I64, PTR])
    kind = "direct" if direct else "packed"
    fn = ir.Function(module, ftype, f"kc_igemm_ukr_{kind}{height}x{span}")
    fn.linkage = "internal"
    pairs, a, lda, panel, rs, tile = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    acc_t = ir.VectorType(I32, t.vw)
    half_t = ir.VectorType(I16, 2 * t.vw)
    madd = module.globals.get(_MADD[t.vw]) or ir.Function(
        module, ir.FunctionType(acc_t, [half_t, half_t]), _MADD[t.vw]
    )
    row_at = [_at(b, a, b.mul(i64(r), lda), I16) for r in range(height)]
    zero = ir.Constant(acc_t, [0] * t.vw)
    splat = ir.Constant(ir.VectorType(I32, t.vw), [0] * t.vw)
    nv = t.nv * span
    with for_reduce(b, pairs, [zero] * (height * nv), "kp") as (kp, accs):
        if direct:
            # Panel by panel: LLVM pairs a panel's 16 bytes in a few shuffles, where one
            # shuffle of whole lines came out long.
            panels = [_at(b, panel, i64(q * t.nr), I8) for q in range(span)]
            bs = [x for at in panels for x in _direct_b(b, t, at, rs, kp)]
        else:
            bs = _packed_b(b, t, panel, kp)
        for r in range(height):
            word = b.load(_at(b, row_at[r], b.mul(kp, i64(2)), I16), typ=I32, align=4)
            one = b.insert_element(ir.Constant(acc_t, None), word, i64(0))
            pair = b.bitcast(b.shuffle_vector(one, one, splat), half_t)
            for v in range(nv):
                s = r * nv + v
                accs[s] = b.add(accs[s], b.call(madd, [pair, bs[v]]))
    for r in range(height):
        for v in range(nv):
            out = _at(b, tile, i64(r * t.nr * span + v * t.vw), F32)
            value = b.sitofp(accs[r * nv + v], ir.VectorType(F32, t.vw))
            b.store(value, out, align=4 * t.vw)
    b.ret_void()
    return fn


def _packed_b(b: ir.IRBuilder, t: IntTile, panel, kp) -> list[ir.Value]:
    """Pair ``kp`` of a packed panel: ``nv`` vectors of ``vw`` columns' two int16."""
    at = b.mul(kp, i64(2 * t.nr))
    half_t = ir.VectorType(I16, 2 * t.vw)
    return [
        b.load(_at(b, panel, b.add(at, i64(2 * v * t.vw)), I16), typ=half_t, align=32)
        for v in range(t.nv)
    ]


def _direct_b(b: ir.IRBuilder, t: IntTile, base, rs, kp) -> list[ir.Value]:
    """Pair ``kp`` of a panel read from B's int8 rows: both rows widened and interleaved
    as the packing does it, in registers."""
    top = _at(b, base, b.mul(b.mul(kp, i64(2)), rs), I8)
    row_t, wide_t = ir.VectorType(I8, t.nr), ir.VectorType(I16, t.nr)
    lo, hi = (b.sext(b.load(r, typ=row_t, align=1), wide_t) for r in (top, _at(b, top, rs, I8)))
    pairs = b.shuffle_vector(lo, hi, _interleave(t))
    part = 2 * t.vw
    return [
        b.shuffle_vector(
            pairs,
            pairs,
            ir.Constant(ir.VectorType(I32, part), list(range(v * part, (v + 1) * part))),
        )
        for v in range(t.nv)
    ]


def _compute_chunk(module: ir.Module, t: IntTile, ukrs: tuple, layout: Layout = PAIRS):
    """``chunk(job, i)``: the tiles of C of chunk ``i`` (a range of the slab's row tiles by
    a range of panels), group of panels by group, through ``ukrs`` (packed, direct); each tile to
    C (added with ``ACCUMULATE``), then to the epilogue. With ``QUADS``, ``ukrs`` holds the
    quads' packed micro-kernels alone (B is never read in place there)."""
    quads = layout is QUADS
    name = f"kc_igemm_tiles_quads{t.mr}x{t.nr}" if quads else "kc_igemm_tiles"
    fn = ir.Function(module, CHUNK_FN, name)
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tile = b.alloca(ir.ArrayType(F32, t.mr * t.nr), name="tile")
    tile.align = 64
    tile.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    m, n, k2 = _field(b, job, "slab"), _field(b, job, "N"), _field(b, job, "k2")
    r0 = _field(b, job, "r0")
    ap = _ptr(b, job, "ap")
    direct = b.icmp_unsigned("!=", _field(b, job, "direct"), i64(0))
    col_chunks = _field(b, job, "col_chunks")
    row_tiles, panels = _ceil_div(b, m, i64(t.mr)), _ceil_div(b, n, i64(t.nr))
    t0, t_count = chunk_range(b, row_tiles, b.udiv(index, col_chunks), _field(b, job, "row_chunks"))
    p0, p_count = chunk_range(b, panels, b.urem(index, col_chunks), col_chunks)
    with for_range(b, _ceil_div(b, p_count, i64(GROUP)), "g") as g:
        g0 = b.add(p0, b.mul(g, i64(GROUP)))
        g_count = _min(b, i64(GROUP), b.sub(b.add(p0, p_count), g0))
        with for_range(b, t_count, "it") as it:
            in_slab = b.mul(b.add(t0, it), i64(t.mr))
            rows = _min(b, i64(t.mr), b.sub(m, in_slab))
            a_rows = layout.a_rows(b, ap, in_slab, k2)
            i0 = b.add(r0, in_slab)  # C's row (and the epilogue's)
            args = [layout.steps(b, k2), a_rows, k2]
            if quads:  # packed panels only
                with for_range(b, g_count, "jp") as jp:
                    p = b.add(g0, jp)
                    _panel_tile(b, job, t, ukrs, tile, p, i0, rows, args, None, layout)
            else:
                _pair_tiles(b, job, t, ukrs, tile, g0, g_count, i0, rows, args, direct)
    b.ret_void()
    return fn


def _pair_tiles(b: ir.IRBuilder, job, t: IntTile, ukrs, tile, g0, g_count, i0, rows, args, direct):
    """The pairs' tiles of rows ``i0`` on over a group's panels: a single row from B in
    place spans ``DIRECT_SPAN`` panels at a time (``ukrs[2]``), the rest panel by panel."""
    n, src, rs = _field(b, job, "N"), _ptr(b, job, "B"), _field(b, job, "rsB")
    spans = _ceil_div(b, g_count, i64(DIRECT_SPAN))
    with for_range(b, spans, "js") as js:
        q0 = b.add(g0, b.mul(js, i64(DIRECT_SPAN)))
        j0 = b.mul(q0, i64(t.nr))
        span_cols = i64(DIRECT_SPAN * t.nr)
        whole_span = b.and_(
            b.icmp_signed("<=", b.add(q0, i64(DIRECT_SPAN)), b.add(g0, g_count)),
            b.icmp_signed("<=", b.add(j0, span_cols), n),
        )
        one_row = b.and_(direct, b.and_(whole_span, b.icmp_signed("==", rows, i64(1))))
        with b.if_else(one_row) as (wide, narrow):
            with wide:
                b.call(ukrs[2], [*args, _at(b, src, j0, I8), rs, tile])
                for q in range(DIRECT_SPAN):
                    jq = b.add(j0, i64(q * t.nr))
                    own = _at(b, tile, i64(q * t.nr), F32)
                    _finish_tile(b, job, own, t, i0, jq, rows, i64(t.nr))
            with narrow:
                count = _min(b, i64(DIRECT_SPAN), b.sub(b.add(g0, g_count), q0))
                with for_range(b, count, "jp") as jp:
                    p = b.add(q0, jp)
                    _panel_tile(b, job, t, ukrs, tile, p, i0, rows, args, direct)


def _panel_tile(
    b: ir.IRBuilder, job, t: IntTile, ukrs, tile, p, i0, rows, args, direct, layout=PAIRS
):
    """The tile of rows ``i0`` on and panel ``p``: from B in place (``direct``, a whole
    panel; None: never) or from its packed panel; then to C and the epilogue."""
    n, k2 = _field(b, job, "N"), _field(b, job, "k2")
    j0 = b.mul(p, i64(t.nr))
    panel = layout.panel(b, _ptr(b, job, "bp"), p, k2, t.nr)
    if direct is None:
        _by_height(b, rows, ukrs[0], [*args, panel, i64(0), tile])
    else:
        in_place = b.and_(direct, b.icmp_signed("<=", b.add(j0, i64(t.nr)), n))
        with b.if_else(in_place) as (from_b, packed):
            with from_b:
                from_src = _at(b, _ptr(b, job, "B"), j0, I8)
                _by_height(b, rows, ukrs[1], [*args, from_src, _field(b, job, "rsB"), tile])
            with packed:
                _by_height(b, rows, ukrs[0], [*args, panel, i64(0), tile])
    _finish_tile(b, job, tile, t, i0, j0, rows, _min(b, i64(t.nr), b.sub(n, j0)))


def _by_height(b: ir.IRBuilder, rows, kernels: list[ir.Function], args) -> None:
    """Call the micro-kernel of ``rows`` rows (a batch of one computes one row, not MR)."""
    after = b.function.append_basic_block("tile.done")
    cases = [b.function.append_basic_block(f"tile.rows{r + 1}") for r in range(len(kernels))]
    switch = b.switch(rows, cases[-1])
    for r, block in enumerate(cases):
        switch.add_case(i64(r + 1), block)
        b.position_at_end(block)
        b.call(kernels[r], args)
        b.branch(after)
    b.position_at_end(after)


def _finish_tile(b: ir.IRBuilder, job, tile, t: IntTile, i0, j0, rows, cols) -> None:
    """The tile into C (unless C is null), then the epilogue on it: C's, or the tile's
    own buffer seen as C (an address that puts (i0, j0) at its start, ``NR`` apart)."""
    no_c = b.icmp_unsigned("!=", _field(b, job, "no_c"), i64(0))
    ldc = _field(b, job, "ldc")
    c = _ptr(b, job, "C")
    accumulate = b.icmp_unsigned("!=", b.and_(_field(b, job, "acc"), i64(ACCUMULATE)), i64(0))
    with b.if_then(b.not_(no_c)), for_range(b, rows, "r") as r:
        out = _at(b, c, b.add(b.mul(b.add(i0, r), ldc), j0), F32)
        src = _at(b, tile, b.mul(r, i64(t.nr)), F32)
        with for_range(b, cols, "c") as col:
            value = b.load(_at(b, src, col, F32), typ=F32)
            at = _at(b, out, col, F32)
            old = b.select(accumulate, b.load(at, typ=F32), ir.Constant(F32, 0.0))
            b.store(b.fadd(old, value), at)
    epi = _field(b, job, "epi")
    with b.if_then(b.icmp_unsigned("!=", epi, i64(0))):
        start = b.mul(b.add(b.mul(i0, i64(t.nr)), j0), i64(4))
        in_tile = b.sub(b.ptrtoint(tile, I64), start)
        c_at = b.select(no_c, in_tile, b.ptrtoint(c, I64))
        epilogue = b.inttoptr(epi, ir.PointerType(EPILOGUE_FN))
        ctx = _field(b, job, "ctx")
        b.call(
            epilogue,
            [b.inttoptr(ctx, PTR), c_at, b.select(no_c, i64(t.nr), ldc), i0, j0, rows, cols],
        )


def _igemm(module: ir.Module, t: IntTile, dot: str | None, amx: str | None) -> ir.Function:
    fn = ir.Function(module, GEMM_FN, IGEMM.symbol)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    args = dict(zip(FIELDS, fn.args))
    m, n, depth = args["M"], args["N"], args["K"]
    with b.if_then(b.or_(b.icmp_signed("<=", m, i64(0)), b.icmp_signed("<=", n, i64(0)))):
        b.ret_void()
    no_c = b.icmp_unsigned("==", b.ptrtoint(args["C"], I64), i64(0))
    with b.if_then(b.and_(no_c, b.icmp_unsigned("==", b.ptrtoint(args["epi"], I64), i64(0)))):
        b.ret_void()
    job = b.alloca(JOB, name="job")
    job.type = PTR
    for name, value in args.items():
        stored = b.ptrtoint(value, I64) if isinstance(value.type, ir.PointerType) else value
        _set(b, job, name, stored)
    row_tiles = _ceil_div(b, m, i64(t.mr))
    # B read in place: few row tiles, rows of B (csB = 1), an even depth (whole pairs).
    direct = b.and_(
        b.icmp_signed("<=", row_tiles, i64(DIRECT_ROW_TILES)),
        b.and_(
            b.icmp_signed("==", args["csB"], i64(1)),
            b.icmp_signed("==", b.and_(depth, i64(1)), i64(0)),
        ),
    )
    _set(b, job, "direct", b.zext(direct, I64))
    # The engine for the rest: AMX's tiles where the CPU has them and Linux grants them,
    # else VNNI's quads, else pairs (pairs always for B read in place).
    false = ir.Constant(ir.IntType(1), 0)
    tiles = false
    if amx == "amx":
        tiles = b.and_(b.not_(direct), b.call(bf16_gemm._permission(module), []))
    elif amx == "emulated":
        tiles = b.not_(direct)
    quads = b.and_(b.not_(direct), b.not_(tiles)) if dot is not None else false
    bytes_ = b.or_(quads, tiles)  # A and B packed as bytes (int8_quads' layouts)
    k2 = b.and_(b.add(depth, i64(1)), i64(-2))
    k2 = b.select(b.icmp_signed("<", k2, i64(2)), i64(2), k2)  # K = 0: one zero pair
    k4 = b.and_(b.add(depth, i64(3)), i64(-4))
    k4 = b.select(b.icmp_signed("<", k4, i64(4)), i64(4), k4)
    k64 = b.and_(b.add(depth, i64(int8_amx.TILE_K - 1)), i64(-int8_amx.TILE_K))
    k64 = b.select(b.icmp_signed("<", k64, i64(int8_amx.TILE_K)), i64(int8_amx.TILE_K), k64)
    kg = b.select(tiles, k64, b.select(quads, k4, k2))  # K in whole groups (the job's "k2")
    row_bytes = b.mul(kg, b.select(bytes_, i64(1), i64(2)))
    mr = b.select(tiles, i64(int8_amx.BLOCK), i64(t.mr))
    nr = b.select(tiles, i64(int8_amx.PANEL), i64(t.nr))
    panels = _ceil_div(b, n, nr)
    take, give_back = scratch.functions(module)
    # Slabs of whole row tiles, SLAB_BYTES of packed rows (at least one tile).
    slab = b.mul(b.udiv(b.udiv(i64(SLAB_BYTES), row_bytes), mr), mr)
    slab = _min(b, m, b.select(b.icmp_signed("<", slab, mr), mr, slab))
    # A tile block reads 32 rows from each row tile's first: room for a short last one.
    a_slack = b.select(tiles, b.mul(i64(int8_amx.BLOCK), row_bytes), i64(0))
    ap = b.call(take, [b.add(b.add(b.mul(slab, row_bytes), a_slack), i64(64))])
    panel_bytes = b.select(
        bytes_, QUADS.panel_size(b, kg, nr), b.mul(PAIRS.panel_size(b, kg, nr), i64(2))
    )
    bp = b.call(take, [b.add(b.mul(panels, panel_bytes), i64(64))])
    _set(b, job, "ap", b.ptrtoint(ap, I64))
    _set(b, job, "bp", b.ptrtoint(bp, I64))
    _set(b, job, "k2", kg)
    _set(b, job, "no_c", b.zext(no_c, I64))
    threads = threads_for_a_job(module, b)
    macs = b.mul(b.mul(m, n), depth)
    threads = b.select(b.icmp_signed("<", macs, i64(PARALLEL_MIN_MACS)), i64(1), threads)
    wanted = b.mul(threads, i64(CHUNKS_PER_THREAD))
    wanted = b.select(b.icmp_signed("==", threads, i64(1)), i64(1), wanted)
    b_chunks = _min(b, panels, wanted)
    _set(b, job, "b_chunks", b_chunks)
    parallel_for = module.globals[abi.PARALLEL_FOR.symbol]
    pack, compute = _engines(module, b, t, dot, amx, quads, tiles)
    owned = b.icmp_unsigned("!=", b.and_(args["acc"], i64(COLUMNS_OWNED)), i64(0))
    tiles_wanted = b.mul(threads, i64(COMPUTE_CHUNKS_PER_THREAD))
    with for_range(b, _ceil_div(b, m, slab), "slab") as s_:
        r0 = b.mul(s_, slab)
        rows = _min(b, slab, b.sub(m, r0))
        _set(b, job, "r0", r0)
        _set(b, job, "slab", rows)
        a_chunks = _min(b, rows, wanted)
        _set(b, job, "a_chunks", a_chunks)
        # B is packed with the first slab's rows of A, and kept for the others.
        first = b.icmp_signed("==", s_, i64(0))
        b_now = b.select(first, b_chunks, i64(0))
        b.call(parallel_for, [pack, job, b.add(a_chunks, b_now)])
        # Rows first (the packed B is shared); an epilogue that sums columns must own
        # whole columns: split by columns alone then.
        slab_tiles = _ceil_div(b, rows, mr)
        row_chunks = b.select(owned, i64(1), _min(b, slab_tiles, tiles_wanted))
        col_chunks = _min(b, panels, _ceil_div(b, tiles_wanted, row_chunks))
        _set(b, job, "row_chunks", row_chunks)
        _set(b, job, "col_chunks", col_chunks)
        b.call(parallel_for, [compute, job, b.mul(row_chunks, col_chunks)])
    b.call(give_back, [bp])
    b.call(give_back, [ap])
    b.ret_void()
    return fn


def _engines(module: ir.Module, b: ir.IRBuilder, t: IntTile, dot, amx, quads, tiles):
    """The packing and compute chunks of the call's engine (``quads``, ``tiles``: the
    run-time choice), as function pointers for the pool."""
    pack = _pack_chunk(module, t)
    ukrs = (
        *([_micro_kernel(module, t, h, direct) for h in range(1, t.mr + 1)] for direct in (0, 1)),
        _micro_kernel(module, t, 1, True, DIRECT_SPAN),
    )
    compute = _compute_chunk(module, t, ukrs)
    if dot is not None:
        quad_ukrs = [
            int8_quads.micro_kernel(module, t.vw, t.nv, h, dot) for h in range(1, t.mr + 1)
        ]
        pack = b.select(quads, _pack_chunk(module, t, QUADS), pack)
        compute = b.select(quads, _compute_chunk(module, t, (quad_ukrs,), QUADS), compute)
    if amx is not None:
        # 32 x 32 micro-tiles on panels of 32 columns, whatever the vector width.
        big = IntTile(vw=t.vw, mr=int8_amx.BLOCK, nv=int8_amx.PANEL // t.vw)
        block = (int8_amx.micro_kernel(module, amx),)
        pack = b.select(tiles, _pack_chunk(module, big, QUADS), pack)
        compute = b.select(tiles, _compute_chunk(module, big, (block,), QUADS), compute)
    return pack, compute


def engines(features: Callable[[str], bool]) -> tuple[IntTile, str | None, str | None]:
    """What ``kc_igemm`` is built with for ``features``: the ``pmaddwd`` tile (the widest
    vectors), VNNI's quad dot product (``int8_quads.dot_kind``) and AMX-INT8's tiles
    (``int8_amx.kind``), each None where the features lack it."""
    t = IntTile.for_features(features)
    return t, int8_quads.dot_kind(features, t.vw), int8_amx.kind(features)


def add_igemm(module: ir.Module, features: Callable[[str], bool]) -> None:
    """Define ``kc_igemm`` and ``kc_igemm_isa`` in ``module`` (which must hold the thread
    pool or declare it), with the engines ``features`` (the target's) allow (``engines``)."""
    t, dot, amx = engines(features)
    _igemm(module, t, dot, amx)
    isa = ir.Function(module, ir.FunctionType(I32, []), IGEMM_ISA.symbol)
    b = ir.IRBuilder(isa.append_basic_block("entry"))
    rest = {None: "madd", "vpdpbusd": "vnni", "emulated": "vnni_emulated"}[dot]
    if amx == "emulated":
        rest = "amx_emulated"
    elif amx == "amx":
        with b.if_then(b.call(bf16_gemm._permission(module), [])):
            b.ret(ir.Constant(I32, PATHS["amx"]))
    b.ret(ir.Constant(I32, PATHS[rest]))


def declare_igemm(module: ir.Module) -> ir.Function:
    existing = module.globals.get(IGEMM.symbol)
    return existing if existing is not None else ir.Function(module, GEMM_FN, IGEMM.symbol)
