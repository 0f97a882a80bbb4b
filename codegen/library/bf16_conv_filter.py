"""A convolution's kernel gradient on bf16 operands with f32 sums: ``kc_sconv_filter`` on
the bf16 engines.

    void kc_sconv_bf16_filter(ptr geometry, ptr X, ptr dY, ptr dW, i64 flags)

has ``kc_sconv_filter``'s ABI and meaning (``codegen.library.conv``: dW[k, f] (+)= the sum over
output pixels i of A[i, k] dY[i, f], A the patch matrix), except that each product is of
X's and dY's elements rounded to bf16 (values a bf16 holds pass unchanged), the sums in
f32.

With AMX-BF16 it is the product dWᵀ = dYᵀ·A whose depth is the pixels: threads take
``CHUNKS`` ranges of pixels (a number that does not depend on the threads, so neither do
the bits), each into a partial [F, K] product of its own in f32, steps of ``STEP`` pixels
at a time. A step packs dYᵀ's tiles (``kc_bgemm``'s packing of A, transposing dY's rows)
and the patch matrix's rows for its pixels straight from the image, as
``codegen.library.bf16_conv`` packs them, then interleaves each two rows into VNNI pairs (the
tiles of B); each 32 x 32 block of the partial is loaded into the accumulators, takes the
step's products and is stored back. The partials are summed, transposed, into dW at the
end, in chunk order. With AVX512_BF16 (no AMX, the tile state refused, or the ``NO_AMX``
bit) the same tiles go through ``kc_bgemm``'s ``vdpbf16ps`` block. Elsewhere (or the
``PORTABLE`` bit) ``kc_sconv_filter`` runs instead. ``X_BF16`` / ``DY_BF16``: X (dY) stored as bf16, packed
as it is (widened into an f32 copy for ``kc_sconv_filter``), the same bits as on f32
operands of the same values.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.library import bf16_gemm as bg
from kcompile.codegen.library.bf16_conv import (
    X_BF16,
    _run_copier,
    on_engine_or_fallback,
    pack_patch_row,
)
from kcompile.codegen.library.conv import (
    FILTER_FN,
    GEOMETRY,
    _alloca,
    _pixel_table,
    declare_conv_filter,
)
from kcompile.codegen.library.gemm import ACCUMULATE
from kcompile.codegen.library.parallel import CHUNK_FN
from kcompile.codegen.loops import F32, I32, I64, PTR, chunk_range, for_range, for_reduce, i64
from kcompile.ir import abi
from kcompile.ir.abi import Signature

BFILTER = Signature("kc_sconv_bf16_filter", None, abi.CONV_FILTER.params)
BLOCK, TILE = bg.BLOCK, bg.TILE_ELEMS
I16 = bg.I16
STEP = 256  # pixels a step packs (8 tiles of depth)
CHUNKS = 8  # ranges of pixels (partial products), whatever the threads
_PIXEL = 4
# Bits of ``flags`` beside ``kc_sconv_filter``'s: X (dY) is of bf16 elements (as
# ``codegen.library.bf16_conv``'s X_BF16 and W_BF16), packed as they are (widened for the f32 path).
DY_BF16 = bg.B_BF16
_JOB = (
    *GEOMETRY,
    *("X", "dY", "partials", "per_chunk", "M", "K", "kp", "fp", "pixels", "acc"),
)
JOB = ir.ArrayType(I64, len(_JOB))
_SUM_JOB = ("partials", "dW", "F", "K", "kp", "chunks", "flags", "parts", "fp")


def _field(b: ir.IRBuilder, job, name: str, names=_JOB) -> ir.Value:
    at = b.gep(job, [i64(names.index(name))], source_etype=I64)
    return b.load(at, typ=I64)


def _interleave(b: ir.IRBuilder, rows, kp, kt, q, tiles) -> None:
    """Rows 2p and 2p+1 of ``rows`` (32 packed patch rows, ``kp`` bf16 each) as row p of
    B's tiles of depth tile ``q``: tile (c, q) at ``tiles + (c*kt + q) * 512`` holds, per
    column, the two rows' values (VNNI pairs)."""
    half = ir.VectorType(I16, 16)
    pairs = ir.Constant(ir.VectorType(I32, 32), [x for c in range(16) for x in (c, 16 + c)])
    with for_range(b, b.udiv(kp, i64(16)), "ct") as ct:
        tile = b.gep(tiles, [b.mul(b.add(b.mul(ct, kt), q), i64(TILE))], source_etype=I16)
        for p in range(16):
            even, odd = (
                b.load(
                    b.gep(rows, [b.add(b.mul(i64(2 * p + h), kp), b.mul(ct, i64(16)))],
                          source_etype=I16),
                    typ=half,
                    align=2,
                )
                for h in (0, 1)
            )  # fmt: skip
            row = b.shuffle_vector(even, odd, pairs)
            b.store(row, b.gep(tile, [i64(p * 32)], source_etype=I16), align=2)


def _chunk(module: ir.Module, engine: str) -> ir.Function:
    """``chunk(job, i)``: pixels ``[i*P, (i+1)*P)`` into partial product ``i`` ([fp, kp]),
    on ``engine``."""
    fn = ir.Function(module, CHUNK_FN, f"kc_sconv_bf16_filter_{engine}_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    x, dy = b.inttoptr(g["X"], PTR), b.inttoptr(g["dY"], PTR)
    pixel_table = b.inttoptr(g["pixels"], PTR)
    f, kp, fp = g["F"], g["kp"], g["fp"]
    partial = b.gep(b.inttoptr(g["partials"], PTR), [b.mul(b.mul(index, fp), kp)],
                    source_etype=F32)  # fmt: skip
    p_first = b.mul(index, g["per_chunk"])
    count = bg._min(b, g["per_chunk"], b.sub(g["M"], p_first))
    aligned_alloc = bg._declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    free = bg._declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    steps_max = i64(STEP // bg.TILE_K)
    a_tiles = b.call(aligned_alloc, [i64(64), b.mul(b.mul(b.udiv(fp, i64(16)), steps_max),
                                                   i64(TILE * 2))])  # fmt: skip
    b_tiles = b.call(aligned_alloc, [i64(64), b.mul(b.mul(b.udiv(kp, i64(16)), steps_max),
                                                   i64(TILE * 2))])  # fmt: skip
    rows = b.call(aligned_alloc, [i64(64), b.add(b.mul(kp, i64(BLOCK * 2)), i64(64))])
    ajob = b.alloca(bg.JOB, name="ajob")
    ajob.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    dy_bf16 = bg._is_set(b, g["acc"], DY_BF16)
    dy_size = b.select(dy_bf16, i64(2), i64(4))
    for name, value in (
        ("M", f), ("rsA", i64(1)), ("csA", f), ("acc", b.select(dy_bf16, i64(bg.A_BF16), i64(0)))
    ):  # fmt: skip
        bg._set(b, ajob, name, value)
    pack_a = module.globals.get("kc_bgemm_pack_a") or bg._pack_a_rows(module, "kc_bgemm_pack_a")
    copy = _run_copier(module)
    block = bg.engine_block(module, engine)
    pixels = b.mul(g["OH"], g["OW"])
    start = [b.udiv(p_first, pixels), b.urem(p_first, pixels)]
    steps = bg._ceil_div(b, count, i64(STEP))
    steps = b.select(b.icmp_signed(">", count, i64(0)), steps, i64(0))
    with for_reduce(b, steps, start, "s") as (s, at):
        p0 = b.add(p_first, b.mul(s, i64(STEP)))
        n_px = bg._min(b, i64(STEP), b.sub(b.add(p_first, count), p0))
        kt = bg._ceil_div(b, n_px, i64(bg.TILE_K))
        # A: dYᵀ's 16-row tiles for these pixels (dY's rows transposed).
        dy_at = b.gep(dy, [b.mul(b.mul(p0, f), dy_size)], source_etype=ir.IntType(8))
        bg._set(b, ajob, "A", b.ptrtoint(dy_at, I64))
        bg._set(b, ajob, "K", n_px)
        bg._set(b, ajob, "kb", kt)
        with for_range(b, b.udiv(fp, i64(16)), "ta") as t:
            dst = b.gep(a_tiles, [b.mul(b.mul(t, kt), i64(TILE))], source_etype=I16)
            b.call(pack_a, [ajob, t, dst])
        # B: the patch matrix's rows, 32 pixels at a time, in VNNI pairs.
        with for_reduce(b, kt, list(at), "q") as (q, pix):
            left = b.sub(n_px, b.mul(q, i64(BLOCK)))
            with for_reduce(b, i64(BLOCK), list(pix), "r") as (r, px):
                image, p = px
                dst = b.gep(rows, [b.mul(r, kp)], source_etype=I16)
                real = b.icmp_signed("<", r, left)
                with b.if_else(real) as (packed, zeros):
                    with packed:
                        pack_patch_row(b, g, x, pixel_table, image, p, dst, kp)
                    with zeros:
                        b.call(copy, [x, dst, kp, i64(0)])
                p1 = b.add(p, i64(1))
                wrap = b.icmp_signed("==", p1, pixels)
                px[0] = b.select(real, b.select(wrap, b.add(image, i64(1)), image), image)
                px[1] = b.select(real, b.select(wrap, i64(0), p1), p)
            pix[:] = px
            _interleave(b, rows, kp, kt, q, b_tiles)
        at[:] = pix
        # Each 32 x 32 block of the partial takes the step's products.
        tile_row = b.mul(kt, i64(TILE))
        with for_range(b, b.udiv(fp, i64(BLOCK)), "fb") as fb:
            a0 = b.gep(a_tiles, [b.mul(b.mul(fb, i64(2)), tile_row)], source_etype=I16)
            a1 = b.gep(a0, [tile_row], source_etype=I16)
            with for_range(b, b.udiv(kp, i64(BLOCK)), "kb") as kb:
                b0 = b.gep(b_tiles, [b.mul(b.mul(kb, i64(2)), tile_row)], source_etype=I16)
                b1 = b.gep(b0, [tile_row], source_etype=I16)
                corner = b.add(b.mul(b.mul(fb, i64(BLOCK)), kp), b.mul(kb, i64(BLOCK)))
                out = b.gep(partial, [corner], source_etype=F32)
                b.call(block, [kt, a0, a1, b0, b1, out, b.mul(kp, i64(4)), i64(1)])
    for buffer in (a_tiles, b_tiles, rows):
        b.call(free, [buffer])
    b.ret_void()
    return fn


def _sum(module: ir.Module) -> ir.Function:
    """``chunk(job, i)``: columns ``f`` of part ``i`` of dW: dW[k, f] (+)= the partials'
    sum at [f, k], in chunk order (the same bits on any number of threads)."""
    fn = ir.Function(module, CHUNK_FN, "kc_sconv_bf16_filter_sum")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    v = {name: _field(b, job, name, _SUM_JOB) for name in _SUM_JOB}
    partials, dw = b.inttoptr(v["partials"], PTR), b.inttoptr(v["dW"], PTR)
    f, depth, kp, fp = v["F"], v["K"], v["kp"], v["fp"]
    f0, count = chunk_range(b, f, index, v["parts"])
    accumulate = b.icmp_unsigned("!=", b.and_(v["flags"], i64(ACCUMULATE)), i64(0))
    with for_range(b, count, "f") as jj, for_range(b, depth, "k") as k:
        j = b.add(f0, jj)
        out = b.gep(dw, [b.add(b.mul(k, f), j)], source_etype=F32)
        start = b.select(accumulate, b.load(out, typ=F32), ir.Constant(F32, 0.0))
        with for_reduce(b, v["chunks"], [start], "pc") as (i, total):
            at = b.add(b.mul(b.add(b.mul(i, fp), j), kp), k)
            total[0] = b.fadd(total[0], b.load(b.gep(partials, [at], source_etype=F32), typ=F32))
        b.store(total[0], out)
    b.ret_void()
    return fn


def _engine_filter(module: ir.Module, engine: str) -> ir.Function:
    fn = ir.Function(module, FILTER_FN, f"kc_sconv_bf16_filter_{engine}")
    fn.linkage = "internal"
    geometry, x, dy, dw, flags = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {
        name: b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
        for i, name in enumerate(GEOMETRY)
    }
    m = b.mul(b.mul(g["N"], g["OH"]), g["OW"])
    f = g["F"]
    depth = b.mul(b.mul(g["KH"], g["KW"]), g["C"])
    kp = b.mul(bg._ceil_div(b, depth, i64(BLOCK)), i64(BLOCK))
    fp = b.mul(bg._ceil_div(b, f, i64(BLOCK)), i64(BLOCK))
    calloc = bg._declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = bg._declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    parallel_for = module.globals[abi.PARALLEL_FOR.symbol]
    # Chunks of at least two steps each, at most CHUNKS (each costs a partial to sum).
    chunks = bg._min(b, i64(CHUNKS), b.udiv(b.add(m, i64(2 * STEP - 1)), i64(2 * STEP)))
    chunks = b.select(b.icmp_signed("<", chunks, i64(1)), i64(1), chunks)
    per_chunk = bg._ceil_div(b, m, chunks)
    partials = b.call(calloc, [b.add(b.mul(b.mul(chunks, fp), kp), i64(16)), i64(4)])
    pixels = b.mul(g["OH"], g["OW"])
    pixel_table = b.call(calloc, [b.add(b.mul(pixels, i64(_PIXEL)), i64(1)), i64(8)])
    _pixel_table(b, g, pixel_table)
    job = _alloca(b, I64, len(_JOB), "job")
    fields = {
        **g, "X": b.ptrtoint(x, I64), "dY": b.ptrtoint(dy, I64),
        "partials": b.ptrtoint(partials, I64), "per_chunk": per_chunk, "M": m, "K": depth,
        "kp": kp, "fp": fp, "pixels": b.ptrtoint(pixel_table, I64), "acc": flags,
    }  # fmt: skip
    for name, value in fields.items():
        b.store(value, b.gep(job, [i64(_JOB.index(name))], source_etype=I64))
    with b.if_then(b.icmp_signed(">", m, i64(0))):
        b.call(parallel_for, [_chunk(module, engine), job, chunks])
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    parts = bg._min(b, threads, b.select(b.icmp_signed("<", f, i64(1)), i64(1), f))
    sum_job = _alloca(b, I64, len(_SUM_JOB), "sum_job")
    values = (partials, dw, f, depth, kp, chunks, flags, parts, fp)
    for i, value in enumerate(values):
        value = b.ptrtoint(value, I64) if isinstance(value.type, ir.PointerType) else value
        b.store(value, b.gep(sum_job, [i64(i)], source_etype=I64))
    b.call(parallel_for, [_sum(module), sum_job, parts])
    b.call(free, [partials])
    b.call(free, [pixel_table])
    b.ret_void()
    return fn


def add_bconv_filter(module: ir.Module, features: Callable[[str], bool]) -> None:
    """Define ``kc_sconv_bf16_filter`` in ``module`` (which must hold ``kc_sconv_filter``
    and the thread pool), with the engines' paths ``features`` have."""
    fn = ir.Function(module, FILTER_FN, BFILTER.symbol)
    operands = ((1, X_BF16, ("N", "H", "W", "C")), (2, DY_BF16, ("N", "OH", "OW", "F")))
    fallback = declare_conv_filter(module)
    on_engine_or_fallback(module, fn, _engine_filter, fallback, features, operands)


def declare_bconv_filter(module: ir.Module) -> ir.Function:
    existing = module.globals.get(BFILTER.symbol)
    return existing if existing is not None else ir.Function(module, FILTER_FN, BFILTER.symbol)
