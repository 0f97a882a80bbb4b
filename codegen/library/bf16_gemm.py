"""Matrix products on bf16 operands with f32 sums: the CPU's matrix engines.

    void kc_bgemm(i64 M, i64 N, i64 K, ptr A, i64 rsA, i64 csA, ptr B, i64 rsB, i64 csB,
                  ptr C, i64 ldc, i64 accumulate, ptr epilogue, ptr epilogue_ctx)

has ``kc_sgemm``'s ABI and meaning (``codegen.library.gemm``: strides for every transposition,
the ``ACCUMULATE`` and ``COLUMNS_OWNED`` bits, the epilogue on each finished tile of C, a
null C for a scratch matrix), except that each product is of A's and B's elements
rounded to bf16 (to nearest, ties to even: values a bf16 holds pass unchanged) and the
sums run in f32. A product of two bf16 numbers is exact in f32, so on operands that hold
bf16 values (``passes.narrow_floats`` makes them) the result is the f32 product's up to
the order of the sums.

Paths, chosen from the target's features when the runtime library is built:

- AMX-BF16 (``amx-bf16``): B packed once per call into 1 KB tiles of bf16 (16 pairs of
  k x 16 columns, VNNI pairs), A's 32 rows of each block row packed just before use
  (tiles of 16 rows x 32 k); a 2 x 2 block of accumulator tiles (``tdpbf16ps``) per
  32 x 32 block of C, stored into C itself (loaded from it first with ``ACCUMULATE``), a
  ragged block through a small f32 buffer; then the epilogue on the block. The packing
  rounds with the CPU's own conversion (``narrow_bits``), a transposed operand's pairs of
  k interleaved before one 16 x 16 transpose of 32-bit pairs, and plain loads for tiles
  inside the matrix (masked ones at its edges); each block prefetches its lines of C
  before its products, whose stores waited on those misses (``PREFETCH_C``). Measured on
  one core of the Xeon (``benchmarks/bf16_gemm.py --mlp --baseline OLD``, interleaved
  against the kernel before these changes): the MLP's 256x784x128 forward 487 -> 723
  GFLOP/s, its 784x256x128 weight gradient (A transposed) 319 -> 534, its 256x128x784
  input gradient (B transposed) 427 -> 740, 4096x128x128 260 -> 415; f32 operands read
  and an f32 C written are most of what remains. Linux grants
  a process the tile state only when asked (``arch_prctl(ARCH_REQ_XCOMP_PERM,
  XFEATURE_XTILEDATA)``): the first call asks, once per process; should the kernel
  refuse, the next path runs instead.
- AVX512_BF16 (``avx512bf16``): the same packing and blocks, each as four 8 x 32 tiles
  of C in 16 vector accumulators through ``vdpbf16ps`` (two products a lane).
- Everywhere: A rounded into an f32 copy, then ``kc_sgemm`` on it and B, which
  ``kc_sgemm`` rounds as it packs it (``ROUND_B``; a bf16 B is widened into a copy). The
  ``PORTABLE`` bit takes this path on any CPU (codegen asks for it for a product that
  rounds its operands itself, ``round_operands``, where the engines do not pay), and
  ``A_ROUNDED`` / ``B_ROUNDED`` say an operand holds bf16 values already: it is read
  in place, not copied.

Operands stored as bf16 (``A_BF16``, ``B_BF16``: 2-byte elements, ``ml_dtypes``' bits,
strides still counted in elements, any strides, no alignment asked): the engines' packing
moves their 16-bit values unrounded, and the AMX path loads the tiles of an A of bf16
rows straight from A where 32 whole rows and a depth of whole tiles allow
(``A_IN_PLACE``); the portable path widens them into its f32 copy. The result is the
f32-operand call's on the same values, bit for bit. One core, interleaved against the
f32-operand call (``benchmarks/bf16_gemm.py --operands``): both operands bf16 1.1-1.4x
(512^3 1.11x, 4096 x 128 x 128 1.19x, the MLP's 1.16-1.39x). Packed B and each chunk's
packed A come from scratch buffers kept across calls (``codegen.library.scratch``): attention's
128 x 32 x 128 heads 1.06x, 64^3 1.14x (a call's ctypes cost included).

Each path is also exported under a name of its own (``kc_bgemm_amx``, ``kc_bgemm_dp``,
``kc_bgemm_round``) for tests, and ``kc_bgemm_isa()`` says which one ``kc_bgemm`` takes
(asking for the tile permission first): 1 AMX, 2 AVX512_BF16, 3 portable.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.library import scratch
from kcompile.codegen.library.gemm import (
    ACCUMULATE,
    COLUMNS_OWNED,
    EPILOGUE_FN,
    GEMM,
    GEMM_FN,
    PARALLEL_MIN_MACS,
    ROUND_B,
    _transpose,
)
from kcompile.codegen.library.parallel import CHUNK_FN, threads_for_a_job
from kcompile.codegen.loops import (
    F32,
    I16,
    I32,
    I64,
    PTR,
    chunk_range,
    for_range,
    for_reduce,
    i64,
    round_bf16,
    unroll_freely,
    widen_bf16,
)
from kcompile.ir import abi
from kcompile.ir.abi import Signature

BGEMM = Signature("kc_bgemm", None, abi.GEMM.params)
BGEMM_ISA = Signature("kc_bgemm_isa", "i32", ())
EXPORTS = (BGEMM, BGEMM_ISA)
PATHS = {"amx": 1, "dp": 2, "round": 3}  # kc_bgemm_isa()'s answers
# Bits of the ``accumulate`` argument besides ``codegen.library.gemm``'s: A (B) holds bf16 values
# already, so the portable path reads it in place; take the portable path (a product
# too narrow for the engines, whose operands still need rounding).
A_ROUNDED, B_ROUNDED, PORTABLE = 4, 8, 16
# ... and: A (B) is of bf16 elements (2 bytes, the raw bits, as ``ml_dtypes.bfloat16``
# stores them; strides still in elements): the engines' packing copies them unrounded,
# the portable path widens them into its f32 copy. (32 is ``kc_sgemm``'s ``TILE_C``.)
A_BF16, B_BF16 = 64, 128
# arch_prctl through syscall(2): ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA.
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18
TILE_ROWS, TILE_K = 16, 32  # an A tile: 16 rows of 32 bf16; a B tile: 16 pairs x 16 columns
TILE_ELEMS = TILE_ROWS * TILE_K  # bf16 per 1 KB tile
BLOCK = 32  # rows and columns of C per block (2 x 2 tiles)
# Prefetch each block's lines of C before its products (``_amx_block``): the callers
# that write C itself set the ``PREFETCH_OUT`` bit of the block's ``init`` (1: load the
# accumulators from ``out``), not those writing an L1 buffer.
PREFETCH_C = True
PREFETCH_OUT = 2
# The AMX path's tiles of an A of bf16 rows (``A_BF16``, unit column stride) load from A
# itself, not from a packed copy, where a block row has 32 whole rows and the depth is a
# multiple of 32 (no tile reads past A's rows), for a chunk of at most
# ``IN_PLACE_MAX_BLOCKS`` blocks a row: one core, interleaved against packing every row,
# 7744 x 288 x 64 1.12x, x 128 1.29x, 4096 x 128 x 128 1.15x; from 8 blocks on packing
# won as often as not (0.70-1.21x: a packed tile is 1 KB of consecutive lines, A's rows
# are 16 lines a K apart).
A_IN_PLACE = True
IN_PLACE_MAX_BLOCKS = 4
# Chunks of work per thread, so a late thread is not waited for.
CHUNKS_PER_THREAD = 4
# The job every chunk reads: the call's arguments, then packed B and the cut.
FIELDS = (
    *("M", "N", "K", "A", "rsA", "csA", "B", "rsB", "csB", "C", "ldc", "acc", "epi", "ctx"),
    *("bp", "kb", "row_chunks", "col_chunks", "pack_chunks", "no_c"),
)
JOB = ir.ArrayType(I64, len(FIELDS))


def has_amx(features: Callable[[str], bool]) -> bool:
    return features("amx-tile") and features("amx-bf16")


def has_dp(features: Callable[[str], bool]) -> bool:
    return features("avx512bf16") and features("avx512f")


def has_engine(features: Callable[[str], bool]) -> bool:
    """Whether ``kc_bgemm`` beats ``kc_sgemm`` on the target: with AMX (on one core of an
    Emerald Rapids 3.5-4.5x at 512^3, about 2x at 4096 x 128 x 128), and with AVX512_BF16
    (on one core of a Zen 4, 1.75-1.85x at 512^3, 256 x 784 x 512 and 4096 x 128 x 128:
    ``python benchmarks/bf16_gemm.py``)."""
    return has_amx(features) or has_dp(features)


class _Named(ir.Type):
    """An LLVM type llvmlite does not model (``x86_amx``, ``bfloat``), by its name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _to_string(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        return isinstance(other, _Named) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("named", self.name))


AMX = _Named("x86_amx")
BF16 = _Named("bfloat")


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ftype, name)


def _gep(b: ir.IRBuilder, ptr, offset, etype=F32):
    return b.gep(ptr, [offset], inbounds=True, source_etype=etype)


def _min(b: ir.IRBuilder, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _ceil_div(b: ir.IRBuilder, x, y):
    return b.udiv(b.add(x, b.sub(y, i64(1))), y)


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(FIELDS.index(name))], source_etype=JOB), typ=I64)


def _set(b: ir.IRBuilder, job, name: str, value) -> None:
    b.store(value, b.gep(job, [i64(0), i64(FIELDS.index(name))], source_etype=JOB))


def bf16_bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The bf16 nearest ``x`` (f32, scalar or vector; ties to even) as i16 bits: NaN stays
    a quiet NaN, overflow goes to infinity (``ml_dtypes``' bits)."""
    wide = I32 if isinstance(x.type, ir.FloatType) else ir.VectorType(I32, x.type.count)
    narrow = I16 if wide is I32 else ir.VectorType(I16, x.type.count)

    def const(v):
        return ir.Constant(wide, v) if wide is I32 else ir.Constant(wide, [v] * wide.count)

    bits = b.bitcast(x, wide)
    high = b.lshr(bits, const(16))
    rounded = b.lshr(b.add(b.add(bits, const(0x7FFF)), b.and_(high, const(1))), const(16))
    nan = b.fcmp_unordered("uno", x, x)
    return b.trunc(b.select(nan, b.or_(high, const(0x40)), rounded), narrow)


def narrow_bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """A vector of f32 rounded to bf16 as i16 bits, as the engines' own conversion does it
    (``vcvtneps2bf16`` on AVX512_BF16: to nearest, ties to even, NaN quieted, denormals
    taken for zero as the tiles and compiled code's DAZ mode take them). For packing the
    engines' operands: one instruction for 16 floats where ``bf16_bits``'s integer
    rounding (which the portable path keeps) takes about ten. An explicit
    ``vcvtne2ps2bf16`` for 32 floats measured no faster: the packing waits on its loads."""
    count = x.type.count
    return b.bitcast(b.fptrunc(x, ir.VectorType(BF16, count)), ir.VectorType(I16, count))


class _Elems:
    """An operand's elements as the packing reads them: f32, rounded to bf16 bits by the
    engines' conversion; or bf16 (``A_BF16``, ``B_BF16``), whose bits are taken as they
    are (the packing then only moves 16-bit values)."""

    def __init__(self, bf16: bool) -> None:
        self.bf16 = bf16
        self.etype = I16 if bf16 else F32
        self.size = 2 if bf16 else 4

    def bits(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        """A vector (or a scalar) read from the operand, as bf16 bits."""
        if self.bf16:
            return x
        return narrow_bits(b, x) if isinstance(x.type, ir.VectorType) else bf16_bits(b, x)


F32_ELEMS, BF16_ELEMS = _Elems(False), _Elems(True)


def _load_clamped(b, base, rows, cols, r, c, rs, cs, elems: _Elems = F32_ELEMS):
    """Element (r, c) of a ``rows x cols`` matrix as bf16 bits, 0 outside it (the address
    is clamped inside, so the load is always of real memory)."""
    inside = b.and_(b.icmp_signed("<", r, rows), b.icmp_signed("<", c, cols))
    rc = _min(b, r, b.sub(rows, i64(1)))
    cc = _min(b, c, b.sub(cols, i64(1)))
    value = b.load(_gep(b, base, b.add(b.mul(rc, rs), b.mul(cc, cs)), elems.etype), typ=elems.etype)
    return b.select(inside, elems.bits(b, value), ir.Constant(I16, 0))


def _load_vec(b: ir.IRBuilder, ptr, width: int, count, etype=F32) -> ir.Value:
    """``width`` elements (``etype``: F32 or I16) at ``ptr``, its lanes from ``count`` on
    zero (not read: ``ptr`` may point past the matrix when ``count`` is 0)."""
    vec = ir.VectorType(etype, width)
    mask_t = ir.VectorType(ir.IntType(1), width)
    suffix = "f32" if etype is F32 else "i16"
    masked_load = _declare(
        b.module,
        f"llvm.masked.load.v{width}{suffix}.p0",
        ir.FunctionType(vec, [PTR, I32, mask_t, vec]),
    )
    if etype is F32:
        lanes = ir.Constant(ir.VectorType(I64, width), list(range(width)))
        limit = b.insert_element(ir.Constant(ir.VectorType(I64, width), None), count, i64(0))
        zeros = ir.Constant(ir.VectorType(I32, width), [0] * width)
        mask = b.icmp_signed("<", lanes, b.shuffle_vector(limit, limit, zeros))
    else:  # the mask's bits from the count (a compare of 32 lanes of i64 is four)
        low = b.sub(b.shl(i64(1), _min(b, count, i64(width))), i64(1))
        mask = b.bitcast(b.trunc(low, ir.IntType(width)), mask_t)
    align = ir.Constant(I32, 4 if etype is F32 else 2)
    return b.call(masked_load, [ptr, align, mask, ir.Constant(vec, None)])


def _rounded_pairs(
    b: ir.IRBuilder, load, corner, stride, p: int, k_left, left, elems: _Elems = F32_ELEMS
) -> ir.Value:
    """Lines ``2p`` and ``2p + 1`` of k (``stride`` elements apart from ``corner``, 16
    each, ``left`` of them inside the matrix) as bf16 (f32 rounded by one conversion) and
    interleaved into 16 VNNI pairs (lane i: line 2p's i, then line 2p + 1's i)."""
    even, odd = (
        load(
            _at(b, corner, b.mul(i64(2 * p + h), stride), elems.etype),
            16,
            _left(b, b.icmp_signed("<", i64(2 * p + h), k_left), left),
        )
        for h in (0, 1)
    )
    join = ir.Constant(ir.VectorType(I32, 32), list(range(32)))
    both = elems.bits(b, b.shuffle_vector(even, odd, join))
    pairs = ir.Constant(ir.VectorType(I32, 32), [x for i in range(16) for x in (i, 16 + i)])
    return b.shuffle_vector(both, both, pairs)


def _merged(b: ir.IRBuilder, bf16, whole, make: Callable) -> list[ir.Value]:
    """``make(load, elems)``'s vectors (bf16 bits, read from the operand), built for its
    three cases and merged by phis, so that what follows (the transposes, the stores) is
    emitted once: f32 elements with plain loads where ``whole`` (the tile lies inside the
    matrix: no lane to mask), with ``_load_vec``'s masked ones at an edge (the masks cost
    as many instructions as the rounding they feed); bf16 elements (``bf16``) always
    masked (no rounding there, and the mask from the count's bits is a few scalar
    instructions)."""

    def loads(etype, masked: bool):
        if masked:
            return lambda ptr, width, count: _load_vec(b, ptr, width, count, etype)
        return lambda ptr, width, count: b.load(ptr, typ=ir.VectorType(etype, width), align=4)

    def merge(cases):
        values = [b.phi(v.type) for v in cases[0][0]]
        for case, block in cases:
            for phi, v in zip(values, case):
                phi.add_incoming(v, block)
        return values

    with b.if_else(bf16) as (narrow, wide):
        with narrow:
            narrowed = (make(loads(I16, True), BF16_ELEMS), b.block)
        with wide:
            with b.if_else(whole) as (inside, edge):
                with inside:
                    plain = (make(loads(F32, False), F32_ELEMS), b.block)
                with edge:
                    masked = (make(loads(F32, True), F32_ELEMS), b.block)
            widened = (merge([plain, masked]), b.block)
    return merge([narrowed, widened])


def _at(b: ir.IRBuilder, ptr, offset, etype=F32):
    """``ptr + offset`` elements, which may lie past the matrix (then never read)."""
    return b.gep(ptr, [offset], source_etype=etype)


def _left(b: ir.IRBuilder, inside, count):
    """``count`` where ``inside``, else 0."""
    return b.select(inside, count, i64(0))


def _is_set(b: ir.IRBuilder, flags, bit: int) -> ir.Value:
    return b.icmp_unsigned("!=", b.and_(flags, i64(bit)), i64(0))


def _by_elements(b: ir.IRBuilder, bf16, body: Callable[[_Elems], None]) -> None:
    """``body(elems)`` for a bf16 operand where ``bf16``, else for an f32 one."""
    with b.if_else(bf16) as (narrow, wide):
        with narrow:
            body(BF16_ELEMS)
        with wide:
            body(F32_ELEMS)


def _store_vec(b: ir.IRBuilder, value, ptr) -> None:
    b.store(value, ptr, align=2)


PACK_A_FN = ir.FunctionType(ir.VoidType(), [PTR, I64, PTR])


def _pack_a_rows(module: ir.Module, name: str) -> ir.Function:
    """``pack(job, t, dst)``: A's 16-row tile row ``t`` as bf16 into ``dst``, tile kb at
    ``dst + kb * 512``, row-major 16 x 32; zero past M and K. The block loop packs each
    row of tiles just before it multiplies it: A is read once, and its packed rows are
    in L1 when the engine reads them (a whole packed A made first, read again from L2,
    cost the 4096 x 128 x 128 product a third of its time). ``A_BF16``: A's elements are
    bf16, copied as they are."""
    fn = ir.Function(module, PACK_A_FN, name)
    fn.linkage = "internal"
    job, t, dst = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    bf16 = _is_set(b, _field(b, job, "acc"), A_BF16)
    m, depth, kb_count = _field(b, job, "M"), _field(b, job, "K"), _field(b, job, "kb")
    a = b.inttoptr(_field(b, job, "A"), PTR)
    rs, cs = _field(b, job, "rsA"), _field(b, job, "csA")
    with for_range(b, kb_count, "kb") as kb:
        tile = _gep(b, dst, b.mul(kb, i64(TILE_ELEMS)), I16)
        i0, k0 = b.mul(t, i64(TILE_ROWS)), b.mul(kb, i64(TILE_K))
        offset = b.add(b.mul(i0, rs), b.mul(k0, cs))
        # Vectors of a row (or a column) of the tile, masked past M and K: the tile's rows
        # (columns) past the matrix are zeros.
        rows_left, k_left = b.sub(m, i0), b.sub(depth, k0)
        whole = b.and_(
            b.icmp_signed(">=", rows_left, i64(TILE_ROWS)), b.icmp_signed(">=", k_left, i64(TILE_K))
        )
        with b.if_else(b.icmp_signed("==", cs, i64(1))) as (rows, other):
            with rows:  # a row of the tile: 32 contiguous elements

                def by_rows(load, elems):
                    corner = _at(b, a, offset, elems.etype)
                    lines = []
                    for r in range(TILE_ROWS):
                        count = _left(b, b.icmp_signed("<", i64(r), rows_left), k_left)
                        at = _at(b, corner, b.mul(i64(r), rs), elems.etype)
                        lines.append(elems.bits(b, load(at, TILE_K, count)))
                    return lines

                for r, line in enumerate(_merged(b, bf16, whole, by_rows)):
                    _store_vec(b, line, _gep(b, tile, i64(r * TILE_K), I16))
            with other, b.if_else(b.icmp_signed("==", rs, i64(1))) as (cols, rest):
                with cols:  # a transposed A: 16 rows contiguous per k
                    # Per pair of k, both lines rounded by one conversion and interleaved:
                    # row r's pair in 32-bit lane r; then one 16 x 16 transpose of pairs
                    # (two of 16-bit lanes took twice the shuffles).

                    def by_columns(load, elems):
                        corner = _at(b, a, offset, elems.etype)
                        return [
                            b.bitcast(
                                _rounded_pairs(b, load, corner, cs, p, k_left, rows_left, elems),
                                ir.VectorType(I32, 16),
                            )
                            for p in range(TILE_K // 2)
                        ]

                    lines = _merged(b, bf16, whole, by_columns)
                    for r, row in enumerate(_transpose(b, lines, 16)):
                        _store_vec(b, row, _gep(b, tile, i64(r * TILE_K), I16))
                with rest:

                    def strided(elems):
                        loops = for_range(b, i64(TILE_ROWS), "r")
                        with loops as r, for_range(b, i64(TILE_K), "kk") as kk:
                            row = b.add(i0, r)
                            k = b.add(k0, kk)
                            bits = _load_clamped(b, a, m, depth, row, k, rs, cs, elems)
                            b.store(bits, _gep(b, tile, b.add(b.mul(r, i64(TILE_K)), kk), I16))

                    _by_elements(b, bf16, strided)
    b.ret_void()
    return fn


def _pack_b_chunk(module: ir.Module, name: str) -> ir.Function:
    """``chunk(job, i)``: B's 16-column tiles of chunk ``i`` in VNNI pairs, tile (t, kb)
    at ``bp + (t*KB + kb) * 512``: row p holds, per column c, B(kb*32 + 2p, c) and
    B(kb*32 + 2p + 1, c); zero past K and N. ``B_BF16``: B's elements are bf16, moved
    as they are."""
    fn = ir.Function(module, CHUNK_FN, name)
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    bf16 = _is_set(b, _field(b, job, "acc"), B_BF16)
    n, depth, kb_count = _field(b, job, "N"), _field(b, job, "K"), _field(b, job, "kb")
    src = b.inttoptr(_field(b, job, "B"), PTR)
    rs, cs = _field(b, job, "rsB"), _field(b, job, "csB")
    bp = b.inttoptr(_field(b, job, "bp"), PTR)
    tiles = b.mul(_ceil_div(b, n, i64(BLOCK)), i64(BLOCK // 16))
    t0, count = chunk_range(b, tiles, index, _field(b, job, "pack_chunks"))
    with for_range(b, count, "t") as it, for_range(b, kb_count, "kb") as kb:
        t = b.add(t0, it)
        tile = _gep(b, bp, b.mul(b.add(b.mul(t, kb_count), kb), i64(TILE_ELEMS)), I16)
        j0, k0 = b.mul(t, i64(16)), b.mul(kb, i64(TILE_K))
        offset = b.add(b.mul(k0, rs), b.mul(j0, cs))
        cols_left, k_left = b.sub(n, j0), b.sub(depth, k0)
        whole = b.and_(
            b.icmp_signed(">=", cols_left, i64(16)), b.icmp_signed(">=", k_left, i64(TILE_K))
        )
        with b.if_else(b.icmp_signed("==", cs, i64(1))) as (rows, other):
            with rows:  # rows k and k+1 of 16 columns, interleaved into pairs

                def by_rows(load, elems):
                    corner = _at(b, src, offset, elems.etype)
                    return [
                        _rounded_pairs(b, load, corner, rs, p, k_left, cols_left, elems)
                        for p in range(TILE_K // 2)
                    ]

                for p, row in enumerate(_merged(b, bf16, whole, by_rows)):
                    _store_vec(b, row, _gep(b, tile, i64(p * 32), I16))
            with other, b.if_else(b.icmp_signed("==", rs, i64(1))) as (cols, rest):
                with cols:  # a transposed B: a column's 32 k contiguous, 16 pairs of them

                    def by_columns(load, elems):
                        corner = _at(b, src, offset, elems.etype)
                        lines = []
                        for c in range(16):
                            count = _left(b, b.icmp_signed("<", i64(c), cols_left), k_left)
                            at = _at(b, corner, b.mul(i64(c), cs), elems.etype)
                            line = elems.bits(b, load(at, TILE_K, count))
                            lines.append(b.bitcast(line, ir.VectorType(I32, 16)))
                        return lines

                    lines = _merged(b, bf16, whole, by_columns)
                    for p, row in enumerate(_transpose(b, lines, 16)):
                        _store_vec(b, row, _gep(b, tile, i64(p * 32), I16))
                with rest:

                    def strided(elems):
                        loops = for_range(b, i64(TILE_K), "kk")
                        with loops as kk, for_range(b, i64(16), "c") as c:
                            k = b.add(k0, kk)
                            col = b.add(j0, c)
                            bits = _load_clamped(b, src, depth, n, k, col, rs, cs, elems)
                            # k = 2p + h lands in row p, column c, half h.
                            half = b.and_(kk, i64(1))
                            at = b.add(
                                b.mul(b.lshr(kk, i64(1)), i64(32)), b.add(b.mul(c, i64(2)), half)
                            )
                            b.store(bits, _gep(b, tile, at, I16))

                    _by_elements(b, bf16, strided)
    b.ret_void()
    return fn


# block(kb, a0, a1, b0, b1, out, ld, init): see ``_amx_block``.
BLOCK_FN = ir.FunctionType(ir.VoidType(), [I64, PTR, PTR, PTR, PTR, PTR, I64, I64])


# block(kb, a0, a1, lda, b0, b1, out, ld, init): ``_amx_block``'s, A's rows ``lda`` bytes
# apart (a row-major packed A: its k tiles 32 bf16 apart).
STRIDED_BLOCK_FN = ir.FunctionType(ir.VoidType(), [I64, PTR, PTR, I64, PTR, PTR, PTR, I64, I64])


def _amx_block(module: ir.Module, strided: bool = False) -> ir.Function:
    """``block(kb, a0, a1, b0, b1, out, ld, init)``: the 32 x 32 f32 block of C from A's
    two row tiles (``a0``, ``a1``, each KB tiles 1 KB apart) and B's two column tiles, in
    a 2 x 2 block of AMX accumulators, stored to ``out`` (rows ``ld`` bytes apart; C
    itself, or a buffer for a ragged block), added to what ``out`` holds when ``init & 1``;
    ``init & PREFETCH_OUT`` prefetches ``out``'s lines first.
    Kept out of line: LLVM configures the tiles (``ldtilecfg``) at its entry. ``strided``:
    ``STRIDED_BLOCK_FN``'s, for an A packed row by row (``codegen.library.bf16_conv``)."""
    name = "kc_bgemm_amx_block_strided" if strided else "kc_bgemm_amx_block"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, STRIDED_BLOCK_FN if strided else BLOCK_FN, name)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    if strided:
        kb_count, a0, a1, a_ld, b0, b1, out, ld, init = fn.args
        a_step = i64(TILE_K)
    else:
        kb_count, a0, a1, b0, b1, out, ld, init = fn.args
        a_ld, a_step = i64(64), i64(TILE_ELEMS)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    shape = [ir.Constant(I16, TILE_ROWS), ir.Constant(I16, 64)]
    corners = [
        b.gep(out, [b.add(b.mul(i64(i * TILE_ROWS), ld), i64(j * 64))], source_etype=ir.IntType(8))
        for i in range(2)
        for j in range(2)
    ]
    zero_fn = _declare(module, "llvm.x86.tilezero.internal", ir.FunctionType(AMX, [I16, I16]))
    load_fn = _declare(
        module, "llvm.x86.tileloadd64.internal", ir.FunctionType(AMX, [I16, I16, PTR, I64])
    )
    dp_fn = _declare(
        module,
        "llvm.x86.tdpbf16ps.internal",
        ir.FunctionType(AMX, [I16, I16, I16, AMX, AMX, AMX]),
    )
    store_fn = _declare(
        module,
        "llvm.x86.tilestored64.internal",
        ir.FunctionType(ir.VoidType(), [I16, I16, PTR, I64, AMX]),
    )
    # Accumulators start from C (ACCUMULATE) or zero, through a phi of tiles.
    load_block = b.append_basic_block("init.load")
    zero_block = b.append_basic_block("init.zero")
    loop_block = b.append_basic_block("init.done")
    starts = b.icmp_unsigned("!=", b.and_(init, i64(1)), i64(0))
    b.cbranch(starts, load_block, zero_block)
    b.position_at_end(load_block)
    loaded = [b.call(load_fn, [*shape, at, ld]) for at in corners]
    b.branch(loop_block)
    b.position_at_end(zero_block)
    zeroed = [b.call(zero_fn, shape) for _ in range(4)]
    b.branch(loop_block)
    b.position_at_end(loop_block)
    zeros = []
    for x, y in zip(loaded, zeroed):
        phi = b.phi(AMX)
        phi.add_incoming(x, load_block)
        phi.add_incoming(y, zero_block)
        zeros.append(phi)
    # The block's 64 lines of ``out`` asked for (to write) before the products: their
    # misses then overlap the tiles' work instead of stalling the stores after it.
    prefetch = _declare(
        module, "llvm.prefetch.p0", ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])
    )
    with b.if_then(b.icmp_unsigned("!=", b.and_(init, i64(PREFETCH_OUT)), i64(0))):
        for r in range(BLOCK):
            for half in range(2):
                line = b.add(b.mul(i64(r), ld), i64(half * 64))
                at = b.gep(out, [line], source_etype=ir.IntType(8))
                b.call(
                    prefetch, [at, ir.Constant(I32, 1), ir.Constant(I32, 3), ir.Constant(I32, 1)]
                )
    stride = i64(64)
    with for_reduce(b, kb_count, zeros, "kb") as (kb, acc):
        at = b.mul(kb, i64(TILE_ELEMS))
        a_at = b.mul(kb, a_step)
        a_tiles = [b.call(load_fn, [*shape, _gep(b, p, a_at, I16), a_ld]) for p in (a0, a1)]
        b_tiles = [b.call(load_fn, [*shape, _gep(b, p, at, I16), stride]) for p in (b0, b1)]
        for i in range(2):
            for j in range(2):
                k = ir.Constant(I16, 64)
                acc[2 * i + j] = b.call(dp_fn, [*shape, k, acc[2 * i + j], a_tiles[i], b_tiles[j]])
    for at, tile in zip(corners, acc):
        b.call(store_fn, [*shape, at, ld, tile])
    b.ret_void()
    return fn


DP_ROWS = 8  # rows of C per vdpbf16ps micro-tile (x 32 columns: 16 accumulators)
DP_KB = 4  # tiles of depth (128 k) per pass over the four micro-tiles


def _dp_block(module: ir.Module, strided: bool = False) -> ir.Function:
    """``block(...)`` as ``_amx_block``'s (``strided``: ``STRIDED_BLOCK_FN``'s, A's rows
    ``lda`` bytes apart), through AVX512_BF16: four 8 x 32 micro-tiles, each in 16 vector
    accumulators; per pair of k, two vectors of B (VNNI pairs as the tiles hold them) and
    a broadcast pair of A per row, ``vdpbf16ps`` two products a lane."""
    name = "kc_bgemm_dp_block_strided" if strided else "kc_bgemm_dp_block"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, STRIDED_BLOCK_FN if strided else BLOCK_FN, name)
    fn.linkage = "internal"
    # Rolled: unrolled by LLVM, its 16 accumulators' loop hoisted the next pair's
    # broadcasts and spilled four of them a step (a strided 3x3 convolution's ran at
    # 107 GFLOP/s on a Zen 4 core).
    unroll_freely(fn, False)
    if strided:
        kb_count, a0, a1, a_ld, b0, b1, out, ld, init = fn.args
        a_step = i64(TILE_K)
    else:
        kb_count, a0, a1, b0, b1, out, ld, init = fn.args
        a_step = i64(TILE_ELEMS)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    # A's row r of a tile starts a_row elements after the tile's (bf16 elements).
    a_row = b.lshr(a_ld, i64(1)) if strided else i64(TILE_K)
    vec = ir.VectorType(F32, 16)
    first = b.icmp_unsigned("!=", b.and_(init, i64(1)), i64(0))

    def at_out(r, j):
        return b.gep(out, [b.add(b.mul(i64(r), ld), i64(j * 64))], source_etype=ir.IntType(8))

    pairs = ir.VectorType(BF16, 32)
    dp = _declare(
        module,
        "llvm.x86.avx512bf16.dpbf16ps.512",
        ir.FunctionType(vec, [vec, pairs, pairs]),
    )

    i32x16 = ir.VectorType(I32, 16)
    # K in chunks of DP_KB tiles, each for all four micro-tiles: the chunk's A and B stay
    # in L1 (the whole depth of a 32-row block did not: 0.25x of kc_sgemm at 512^3).
    chunks = b.select(
        b.icmp_signed(">", kb_count, i64(0)), _ceil_div(b, kb_count, i64(DP_KB)), i64(1)
    )
    with for_range(b, chunks, "kc") as kc:
        kb0 = b.mul(kc, i64(DP_KB))
        steps = b.mul(_min(b, i64(DP_KB), b.sub(kb_count, kb0)), i64(TILE_K // 2))
        steps = b.select(b.icmp_signed(">", steps, i64(0)), steps, i64(0))
        carry = b.or_(first, b.icmp_signed(">", kc, i64(0)))
        for sub in range(BLOCK // DP_ROWS):
            r0 = sub * DP_ROWS
            a_tile = a0 if r0 < TILE_ROWS else a1
            zero = ir.Constant(vec, None)
            starts = [
                b.select(carry, b.load(at_out(r0 + r, j), typ=vec, align=4), zero)
                for r in range(DP_ROWS)
                for j in range(2)
            ]
            with for_reduce(b, steps, starts, f"p{sub}") as (q, acc):
                p = b.add(b.mul(kb0, i64(TILE_K // 2)), q)
                kb = b.lshr(p, i64(4))
                pp = b.and_(p, i64(15))
                # B: row pp of tile kb, 32 bf16 (16 columns x 2): tiles of 16 rows
                # follow each other, so row p of them all.
                at_b = b.mul(p, i64(32))
                bvec = [
                    b.bitcast(
                        b.load(_gep(b, t, at_b, I16), typ=ir.VectorType(I16, 32), align=2), pairs
                    )
                    for t in (b0, b1)
                ]
                # A's pair p: in a row-major A the row's elements 2p, 2p + 1.
                at_k = b.mul(p, i64(2)) if strided else b.add(b.mul(kb, a_step), b.mul(pp, i64(2)))
                for r in range(DP_ROWS):
                    row = (r0 + r) % TILE_ROWS
                    at_a = b.add(b.mul(i64(row), a_row), at_k)
                    pair = b.load(_gep(b, a_tile, at_a, I16), typ=I32, align=2)
                    splat = b.insert_element(ir.Constant(i32x16, None), pair, i64(0))
                    splat = b.shuffle_vector(splat, splat, ir.Constant(i32x16, [0] * 16))
                    avec = b.bitcast(splat, pairs)
                    for j in range(2):
                        acc[2 * r + j] = b.call(dp, [acc[2 * r + j], avec, bvec[j]])
            for r in range(DP_ROWS):
                for j in range(2):
                    b.store(acc[2 * r + j], at_out(r0 + r, j), align=4)
    b.ret_void()
    return fn


ENGINE_BLOCKS = {"amx": _amx_block, "dp": _dp_block}


def engine_block(module: ir.Module, engine: str, strided: bool = False) -> ir.Function:
    """The 32 x 32 block of C on ``engine`` ("amx" or "dp"): ``BLOCK_FN``'s, or with
    ``strided`` ``STRIDED_BLOCK_FN``'s (an A packed row by row, or read in place)."""
    return ENGINE_BLOCKS[engine](module, strided)


def engine_unit(features: Callable[[str], bool]) -> str:
    """The unit the engines' path runs bf16 products on (``kcompile profile``'s name):
    AMX's tiles where ``features`` have them, else ``vdpbf16ps``."""
    return "amx_bf16" if has_amx(features) else "dp_bf16"


def engines(features: Callable[[str], bool]) -> list[str]:
    """The bf16 engines ``features`` have, in the order a call tries them."""
    return [name for name, has in (("amx", has_amx), ("dp", has_dp)) if has(features)]


def _compute_chunk(
    module: ir.Module,
    name: str,
    block: ir.Function,
    pack_a: ir.Function,
    direct_block: ir.Function | None = None,
) -> ir.Function:
    """``chunk(job, i)``: the 32 x 32 blocks of C of chunk ``i`` (a range of block rows
    by a range of block columns): per block row, its 32 rows of A packed (``pack_a``),
    then each block through ``block`` (``_block_of_c``). With ``direct_block`` (a
    ``STRIDED_BLOCK_FN``'s) a block row of an A of bf16 rows, 32 whole rows of a depth a
    multiple of 32, is not packed: its tiles load from A itself (``A_IN_PLACE``)."""
    fn = ir.Function(module, CHUNK_FN, name)
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    buf = b.alloca(ir.ArrayType(F32, BLOCK * BLOCK), name="block")
    buf.align = 64
    buf.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    m, n, kb_count = _field(b, job, "M"), _field(b, job, "N"), _field(b, job, "kb")
    bp = b.inttoptr(_field(b, job, "bp"), PTR)
    col_chunks = _field(b, job, "col_chunks")
    row_blocks, col_blocks = _ceil_div(b, m, i64(BLOCK)), _ceil_div(b, n, i64(BLOCK))
    i_first, i_count = chunk_range(
        b, row_blocks, b.udiv(index, col_chunks), _field(b, job, "row_chunks")
    )
    j_first, j_count = chunk_range(b, col_blocks, b.urem(index, col_chunks), col_chunks)
    tile_bytes = b.mul(kb_count, i64(TILE_ELEMS))  # bf16 of a row of tiles
    take, give_back = scratch.functions(module)
    a0 = b.call(take, [b.add(b.mul(tile_bytes, i64(2 * 2)), i64(64))])
    a1 = _gep(b, a0, tile_bytes, I16)
    in_place = ir.Constant(ir.IntType(1), 0)
    if direct_block is not None and A_IN_PLACE:
        rs_a, depth = _field(b, job, "rsA"), _field(b, job, "K")
        in_place = b.and_(
            _is_set(b, _field(b, job, "acc"), A_BF16),
            b.and_(
                b.icmp_signed("==", _field(b, job, "csA"), i64(1)),
                b.icmp_signed("==", b.and_(depth, i64(TILE_K - 1)), i64(0)),
            ),
        )
        few = b.icmp_signed("<=", j_count, i64(IN_PLACE_MAX_BLOCKS))
        in_place = b.and_(in_place, few)
        a = b.inttoptr(_field(b, job, "A"), PTR)
    with for_range(b, i_count, "ib") as ii:
        ib = b.add(i_first, ii)
        whole = b.icmp_signed("<=", b.mul(b.add(ib, i64(1)), i64(BLOCK)), m)
        with b.if_else(b.and_(in_place, whole)) as (direct, packed):
            with direct:
                if direct_block is not None and A_IN_PLACE:
                    row0 = _gep(b, a, b.mul(b.mul(ib, i64(BLOCK)), rs_a), I16)
                    row16 = _gep(b, row0, b.mul(i64(TILE_ROWS), rs_a), I16)
                    a_ld = b.mul(rs_a, i64(2))
                    with for_range(b, j_count, "jd") as jj:
                        jb = b.add(j_first, jj)
                        _block_of_c(b, direct_block, job, row0, row16, bp, ib, jb, buf, a_ld)
            with packed:
                b.call(pack_a, [job, b.mul(ib, i64(2)), a0])
                b.call(pack_a, [job, b.add(b.mul(ib, i64(2)), i64(1)), a1])
                with for_range(b, j_count, "jb") as jj:
                    jb = b.add(j_first, jj)
                    _block_of_c(b, block, job, a0, a1, bp, ib, jb, buf)
    b.call(give_back, [a0])
    b.ret_void()
    return fn


def _block_of_c(b, block, job, a0, a1, bp, ib, jb, buf, a_ld=None) -> None:
    """Block (ib, jb) of C from the packed rows ``a0``, ``a1`` of A (or A's own rows,
    ``a_ld`` bytes apart, for a ``STRIDED_BLOCK_FN`` block) and B's packed tiles,
    written (added) to C, then handed to the epilogue. Without C (a product only the
    epilogue reads) the block stays in ``buf``, and the epilogue gets it as C's
    (i0, j0) corner: a base ``(i0 * 32 + j0)`` floats before ``buf`` and ``ldc`` 32; no
    M x N scratch matrix (its pages were faulted in at every call)."""
    a_args = [a0, a1] if a_ld is None else [a0, a1, a_ld]
    m, n, kb_count = _field(b, job, "M"), _field(b, job, "N"), _field(b, job, "kb")
    c, ldc = b.inttoptr(_field(b, job, "C"), PTR), _field(b, job, "ldc")
    epi, ctx = _field(b, job, "epi"), _field(b, job, "ctx")
    accumulate = b.icmp_unsigned("!=", b.and_(_field(b, job, "acc"), i64(ACCUMULATE)), i64(0))
    tile_bytes = b.mul(kb_count, i64(TILE_ELEMS))
    b0 = _gep(b, bp, b.mul(b.mul(jb, i64(2)), tile_bytes), I16)
    b1 = _gep(b, b0, tile_bytes, I16)
    i0, j0 = b.mul(ib, i64(BLOCK)), b.mul(jb, i64(BLOCK))
    rows = _min(b, i64(BLOCK), b.sub(m, i0))
    cols = _min(b, i64(BLOCK), b.sub(n, j0))
    inside = b.and_(b.icmp_signed("==", rows, i64(BLOCK)), b.icmp_signed("==", cols, i64(BLOCK)))
    no_c = b.icmp_unsigned("!=", _field(b, job, "no_c"), i64(0))
    callback = b.inttoptr(epi, ir.PointerType(EPILOGUE_FN))
    with b.if_else(no_c) as (buffered, direct):
        with buffered:
            b.call(block, [kb_count, *a_args, b0, b1, buf, i64(BLOCK * 4), i64(0)])
            shift = b.mul(b.add(b.mul(i0, i64(BLOCK)), j0), i64(4))
            base = b.sub(b.ptrtoint(buf, I64), shift)
            b.call(callback, [b.inttoptr(ctx, PTR), base, i64(BLOCK), i0, j0, rows, cols])
        with direct:
            with b.if_else(inside) as (whole, ragged):
                with whole:  # straight into C, from it with ACCUMULATE
                    corner = _gep(b, c, b.add(b.mul(i0, ldc), j0))
                    init = b.or_(b.zext(accumulate, I64), i64(PREFETCH_OUT if PREFETCH_C else 0))
                    b.call(block, [kb_count, *a_args, b0, b1, corner, b.mul(ldc, i64(4)), init])
                with ragged:  # through the buffer: the block's rows and columns past C's
                    b.call(block, [kb_count, *a_args, b0, b1, buf, i64(BLOCK * 4), i64(0)])
                    _write_block(b, buf, c, ldc, i0, j0, rows, cols, accumulate)
            with b.if_then(b.icmp_unsigned("!=", epi, i64(0))):
                at = b.ptrtoint(c, I64)
                b.call(callback, [b.inttoptr(ctx, PTR), at, ldc, i0, j0, rows, cols])


def _write_block(b, buf, c, ldc, i0, j0, rows, cols, accumulate) -> None:
    """C's ``rows x cols`` at (i0, j0) (+)= the block buffer's (a ragged block)."""
    corner = _gep(b, c, b.add(b.mul(i0, ldc), j0))

    with b.if_else(accumulate) as (add, put):
        for branch, adding in ((add, True), (put, False)):
            with branch, for_range(b, rows, "wr") as r, for_range(b, cols, "wc") as col:
                value = b.load(_gep(b, buf, b.add(b.mul(r, i64(BLOCK)), col)), typ=F32)
                at = _gep(b, corner, b.add(b.mul(r, ldc), col))
                b.store(b.fadd(b.load(at, typ=F32), value) if adding else value, at)


def _permission(module: ir.Module) -> ir.Function:
    """``i1 kc_amx_permitted()``: whether this process may use the tiles; the first call
    asks Linux for them (a second thread asking at the same time asks again: harmless).
    One per module (the convolutions' piece asks through its own)."""
    if "kc_amx_permitted" in module.globals:
        return module.globals["kc_amx_permitted"]
    state = ir.GlobalVariable(module, I32, "kc_amx_state")
    state.linkage = "internal"
    state.initializer = ir.Constant(I32, 0)  # 0 not asked, 1 granted, 2 refused
    fn = ir.Function(module, ir.FunctionType(ir.IntType(1), []), "kc_amx_permitted")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    syscall = _declare(module, "syscall", ir.FunctionType(I64, [I64], var_arg=True))
    with b.if_then(
        b.icmp_signed("==", b.load_atomic(state, "monotonic", 4, typ=I32), ir.Constant(I32, 0))
    ):
        args = [i64(SYS_ARCH_PRCTL), i64(ARCH_REQ_XCOMP_PERM), i64(XFEATURE_XTILEDATA)]
        granted = b.icmp_signed("==", b.call(syscall, args), i64(0))
        answer = b.select(granted, ir.Constant(I32, 1), ir.Constant(I32, 2))
        b.store_atomic(answer, state, "monotonic", 4)
    b.ret(b.icmp_signed("==", b.load_atomic(state, "monotonic", 4, typ=I32), ir.Constant(I32, 1)))
    return fn


def _engine(module: ir.Module, name: str, engine: str) -> ir.Function:
    """``kc_bgemm``'s ABI (``name``, internal) through ``engine``'s 32 x 32 blocks: B
    packed in parallel, then the blocks of C in parallel chunks (each packing its rows of
    A). The engines share the packing code (one layout)."""
    pack_b = module.globals.get("kc_bgemm_pack_b") or _pack_b_chunk(module, "kc_bgemm_pack_b")
    pack_a = module.globals.get("kc_bgemm_pack_a") or _pack_a_rows(module, "kc_bgemm_pack_a")
    block, direct = engine_block(module, engine), engine_block(module, engine, strided=True)
    compute = _compute_chunk(module, f"{name}_blocks", block, pack_a, direct)
    fn = ir.Function(module, GEMM_FN, name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    args = dict(zip(FIELDS, fn.args))
    m, n, depth = args["M"], args["N"], args["K"]
    with b.if_then(b.or_(b.icmp_signed("<=", m, i64(0)), b.icmp_signed("<=", n, i64(0)))):
        b.ret_void()
    job = b.alloca(JOB, name="job")
    job.type = PTR
    # No C: the product lives only in each block's buffer, for the epilogue (a null
    # epilogue too then: nothing to compute).
    no_c = b.icmp_unsigned("==", b.ptrtoint(args["C"], I64), i64(0))
    with b.if_then(b.and_(no_c, b.icmp_unsigned("==", b.ptrtoint(args["epi"], I64), i64(0)))):
        b.ret_void()
    kb_count = _ceil_div(b, depth, i64(TILE_K))
    row_blocks, col_blocks = _ceil_div(b, m, i64(BLOCK)), _ceil_div(b, n, i64(BLOCK))
    # Packed bytes: 32 rows (columns) of KB tiles' 32 bf16 per block; at least a line.
    b_bytes = b.add(b.mul(b.mul(col_blocks, kb_count), i64(BLOCK * TILE_K * 2)), i64(64))
    take, give_back = scratch.functions(module)
    bp = b.call(take, [b_bytes])
    for name_, value in args.items():
        _set(
            b,
            job,
            name_,
            b.ptrtoint(value, I64) if isinstance(value.type, ir.PointerType) else value,
        )
    _set(b, job, "bp", b.ptrtoint(bp, I64))
    _set(b, job, "no_c", b.zext(no_c, I64))
    _set(b, job, "kb", kb_count)
    threads = threads_for_a_job(module, b)
    macs = b.mul(b.mul(m, n), depth)
    threads = b.select(b.icmp_signed("<", macs, i64(PARALLEL_MIN_MACS)), i64(1), threads)
    parallel_for = module.globals[abi.PARALLEL_FOR.symbol]
    wanted = b.mul(threads, i64(CHUNKS_PER_THREAD))
    wanted = b.select(b.icmp_signed("==", threads, i64(1)), i64(1), wanted)
    chunks = _min(b, b.mul(col_blocks, i64(2)), wanted)
    _set(b, job, "pack_chunks", chunks)
    b.call(parallel_for, [pack_b, job, chunks])
    # Rows first (each chunk packs the rows of A it reads); an epilogue that sums
    # columns must own whole columns: split by columns alone then.
    owned = b.icmp_unsigned("!=", b.and_(args["acc"], i64(COLUMNS_OWNED)), i64(0))
    row_chunks = b.select(owned, i64(1), _min(b, row_blocks, wanted))
    col_chunks = _min(b, col_blocks, _ceil_div(b, wanted, row_chunks))
    _set(b, job, "col_chunks", col_chunks)
    _set(b, job, "row_chunks", row_chunks)
    b.call(parallel_for, [compute, job, b.mul(col_chunks, row_chunks)])
    b.call(give_back, [bp])
    b.ret_void()
    return fn


def _rounding(module: ir.Module, name: str) -> ir.Function:
    """``kc_bgemm``'s ABI (``name``) anywhere: A and B rounded to bf16 into f32 copies
    (row-major), then ``kc_sgemm`` on them; an operand the flags say holds bf16 values
    already (``A_ROUNDED``, ``B_ROUNDED``) is read in place, one of bf16 elements
    (``A_BF16``, ``B_BF16``) widened into the copy."""
    fn = ir.Function(module, GEMM_FN, name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    m, n, depth, a, rs_a, cs_a, src_b, rs_b, cs_b, c, ldc, acc, epi, ctx = fn.args
    aligned_alloc = _declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    operands = []
    # An f32 B to round is rounded by kc_sgemm as it packs it (``ROUND_B``): no copy.
    round_b = b.icmp_unsigned("==", b.and_(acc, i64(B_ROUNDED | B_BF16)), i64(0))
    for rows, cols, src, rs, cs, rounded, narrow in (
        (m, depth, a, rs_a, cs_a, A_ROUNDED, A_BF16),
        (depth, n, src_b, rs_b, cs_b, B_ROUNDED, B_BF16),
    ):
        entry = b.block
        bf16 = _is_set(b, acc, narrow)
        to_round = b.icmp_unsigned("==", b.and_(acc, i64(rounded)), i64(0))
        if narrow == B_BF16:
            to_round = b.and_(to_round, b.not_(round_b))
        with b.if_then(b.or_(bf16, to_round)):
            copied, copy_rs, copy_cs = _rounded_copy(
                b, rows, cols, src, rs, cs, aligned_alloc, bf16
            )
            copy_block = b.block
        operand = b.phi(PTR)
        operand.add_incoming(src, entry)
        operand.add_incoming(copied, copy_block)
        copy = b.phi(PTR)
        copy.add_incoming(ir.Constant(PTR, None), entry)
        copy.add_incoming(copied, copy_block)
        strides = []
        for given, made in ((rs, copy_rs), (cs, copy_cs)):
            stride = b.phi(I64)
            stride.add_incoming(given, entry)
            stride.add_incoming(made, copy_block)
            strides.append(stride)
        operands.append((operand, *strides, copy))
    gemm = module.globals[GEMM]
    flags = b.and_(acc, i64(ACCUMULATE | COLUMNS_OWNED))
    flags = b.or_(flags, b.select(round_b, i64(ROUND_B), i64(0)))
    (pa, rsa, csa, _), (pb, rsb, csb, _) = operands
    b.call(gemm, [m, n, depth, pa, rsa, csa, pb, rsb, csb, c, ldc, flags, epi, ctx])
    for *_, copy in operands:
        b.call(free, [copy])  # free(NULL) does nothing
    b.ret_void()
    return fn


def _rounded_copy(b: ir.IRBuilder, rows, cols, src, rs, cs, aligned_alloc, bf16):
    """``src``'s ``rows x cols`` elements rounded to bf16 (f32 elements), or widened (bf16
    elements, where ``bf16``), into a new f32 matrix: (its pointer, row stride, column
    stride). In ``src``'s order where one of its strides is 1 (a transposed operand stays
    transposed), 16 lanes at a time; else row-major."""
    rows = b.select(b.icmp_signed("<", rows, i64(0)), i64(0), rows)
    cols = b.select(b.icmp_signed("<", cols, i64(0)), i64(0), cols)
    size = b.add(b.mul(_ceil_div(b, b.mul(b.mul(rows, cols), i64(4)), i64(64)), i64(64)), i64(64))
    dst = b.call(aligned_alloc, [i64(64), size])
    by_columns = b.and_(b.icmp_signed("==", rs, i64(1)), b.icmp_signed("!=", cs, i64(1)))
    # Lines of contiguous elements: rows (columns) of ``length`` elements ``step`` apart.
    lines = b.select(by_columns, cols, rows)
    length = b.select(by_columns, rows, cols)
    step = b.select(by_columns, cs, rs)
    along = b.select(by_columns, rs, cs)
    parts = _ceil_div(b, length, i64(16))

    def copy(elems: _Elems) -> None:
        et = elems.etype
        with b.if_else(b.icmp_signed("==", along, i64(1))) as (contiguous, strided):
            with contiguous, for_range(b, lines, "line") as line, for_range(b, parts, "p") as part:
                at = b.mul(part, i64(16))
                left = b.sub(length, at)
                vec = _load_part(b, _at(b, src, b.add(b.mul(line, step), at), et), left, et)
                out = _at(b, dst, b.add(b.mul(line, length), at))
                _store_masked(b, _as_f32(b, vec, elems), out, left)
            with strided, for_range(b, rows, "r") as r, for_range(b, cols, "c") as col:
                value = b.load(_gep(b, src, b.add(b.mul(r, rs), b.mul(col, cs)), et), typ=et)
                b.store(_as_f32(b, value, elems), _gep(b, dst, b.add(b.mul(r, cols), col)))

    _by_elements(b, bf16, copy)
    # Row-major (``cols``, 1) unless copied by columns (1, ``rows``).
    return dst, b.select(by_columns, i64(1), cols), b.select(by_columns, rows, i64(1))


def _as_f32(b: ir.IRBuilder, x: ir.Value, elems: _Elems) -> ir.Value:
    """Elements read from an operand (a vector or a scalar) as f32 holding bf16 values: f32
    rounded (``round_bf16``, as the reference rounds), bf16 widened."""
    return widen_bf16(b, x) if elems.bf16 else round_bf16(b, x)


def widener(module: ir.Module) -> ir.Function:
    """``widen(src, dst, count)`` (internal): ``count`` bf16 at ``src`` as f32 at ``dst``
    (exact: a bf16 is the high half of its f32)."""
    name = "kc_bgemm_widen"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64]), name)
    fn.linkage = "internal"
    src, dst, count = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, _ceil_div(b, count, i64(16)), "w") as part:
        at = b.mul(part, i64(16))
        left = b.sub(count, at)
        vec = _load_part(b, _at(b, src, at, I16), left, I16)
        _store_masked(b, _as_f32(b, vec, BF16_ELEMS), _at(b, dst, at), left)
    b.ret_void()
    return fn


def _load_part(b: ir.IRBuilder, ptr, count, etype) -> ir.Value:
    """``_load_vec``'s 16 lanes, through a plain load where all 16 are inside (``count``
    >= 16): without AVX-512 a masked load of 16-bit lanes is 16 scalar ones."""
    vec = ir.VectorType(etype, 16)
    with b.if_else(b.icmp_signed(">=", count, i64(16))) as (whole, part):
        with whole:
            plain = b.load(ptr, typ=vec, align=4 if etype is F32 else 2)
            whole_block = b.block
        with part:
            masked = _load_vec(b, ptr, 16, count, etype)
            part_block = b.block
    value = b.phi(vec)
    value.add_incoming(plain, whole_block)
    value.add_incoming(masked, part_block)
    return value


def _store_masked(b: ir.IRBuilder, value: ir.Value, ptr, count) -> None:
    """The first ``count`` lanes of ``value`` (at most its width) stored at ``ptr``."""
    width = value.type.count
    mask_t = ir.VectorType(ir.IntType(1), width)
    masked_store = _declare(
        b.module,
        f"llvm.masked.store.v{width}f32.p0",
        ir.FunctionType(ir.VoidType(), [value.type, PTR, I32, mask_t]),
    )
    lanes = ir.Constant(ir.VectorType(I64, width), list(range(width)))
    limit = b.insert_element(ir.Constant(ir.VectorType(I64, width), None), count, i64(0))
    limit = b.shuffle_vector(limit, limit, ir.Constant(ir.VectorType(I32, width), [0] * width))
    b.call(masked_store, [value, ptr, ir.Constant(I32, 4), b.icmp_signed("<", lanes, limit)])


def add_bgemm(module: ir.Module, features: Callable[[str], bool]) -> None:
    """Define ``kc_bgemm`` and ``kc_bgemm_isa`` in ``module`` (which must hold the thread
    pool and ``kc_sgemm``), with the paths ``features`` (the target's) allow."""
    portable = _rounding(module, "kc_bgemm_round")
    paths: list[tuple[int, ir.Function]] = []
    permitted = None
    if has_amx(features):
        permitted = _permission(module)
        paths.append((PATHS["amx"], _engine(module, "kc_bgemm_amx_engine", "amx")))
    if has_dp(features):
        paths.append((PATHS["dp"], _engine(module, "kc_bgemm_dp_engine", "dp")))
    paths.append((PATHS["round"], portable))

    def dispatch(b: ir.IRBuilder, choices, run) -> None:
        """``run(code, fn)`` for the first of ``choices`` this process may use."""
        for code, target in choices:
            if code == PATHS["amx"]:
                with b.if_then(b.call(permitted, [])):
                    run(code, target)
            else:
                run(code, target)
                return

    def entry(name: str, choices) -> None:
        fn = ir.Function(module, GEMM_FN, name)
        b = ir.IRBuilder(fn.append_basic_block("entry"))

        def run(code, target):
            b.call(target, list(fn.args))
            b.ret_void()

        flags = fn.args[FIELDS.index("acc")]
        with b.if_then(b.icmp_unsigned("!=", b.and_(flags, i64(PORTABLE)), i64(0))):
            run(PATHS["round"], portable)
        dispatch(b, choices, run)

    entry(BGEMM.symbol, paths)
    for code, _ in paths[:-1]:
        name = next(k for k, v in PATHS.items() if v == code)
        entry(f"kc_bgemm_{name}", [p for p in paths if p[0] >= code])
    isa = ir.Function(module, ir.FunctionType(I32, []), BGEMM_ISA.symbol)
    b = ir.IRBuilder(isa.append_basic_block("entry"))
    dispatch(b, paths, lambda code, target: b.ret(ir.Constant(I32, code)))


def declare_bgemm(module: ir.Module) -> ir.Function:
    existing = module.globals.get(BGEMM.symbol)
    return existing if existing is not None else ir.Function(module, GEMM_FN, BGEMM.symbol)
