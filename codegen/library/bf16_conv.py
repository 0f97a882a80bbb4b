"""Convolutions on bf16 operands with f32 sums: ``kc_sconv`` on the bf16 engines.

    void kc_sconv_bf16(ptr geometry, ptr X, ptr W, ptr C, i64 flags, ptr epilogue, ptr ctx)

has ``kc_sconv``'s ABI and meaning (``codegen.library.conv``: the geometry, the ``ACCUMULATE``,
``COLUMNS_OWNED`` and ``POOLED`` bits, the epilogue on each finished block of C, a null
C for a result only the epilogue reads), except that each product is of X's and W's
elements rounded to bf16 (to nearest, ties to even; values a bf16 holds pass
unchanged) and the sums run in f32: on operands that hold bf16 values
(``passes.narrow_floats`` marks such a ``conv2d`` ``precision="bf16"``) the result is
the f32 convolution's up to the order of the sums.

With AMX-BF16 (and the tile state granted, ``codegen.library.bf16_gemm``): the kernel, a
[KH*KW*C, F] matrix, is packed once per call into VNNI pairs (``kc_bgemm``'s packing of
B); threads take ranges of 32-row blocks of C (output pixels, in pooling-window order
when ``POOLED``), and each block's 32 rows of the patch matrix are packed straight from
the image into a row-major bf16 buffer (implicit GEMM: a window inside the image gives
each kernel row as one run of KW*C floats, any other window a run of C per tap or
zeros in the padding; ``vcvtneps2bf16`` rounds while packing), zero past the depth to
a multiple of 32; then each 32 x 32 block of C runs in a 2 x 2 block of AMX
accumulators (``tdpbf16ps``), stored into C (or a buffer: a ragged or pooled block), and
the epilogue runs on it. With AVX512_BF16 (no AMX, the tile state refused, or the
``NO_AMX`` bit) the same packing feeds ``kc_bgemm``'s ``vdpbf16ps`` block instead (four
8 x 32 micro-tiles in vector accumulators). Elsewhere (or the ``PORTABLE`` bit)
``kc_sconv`` runs: exact on operands holding bf16 values.

``X_BF16`` / ``W_BF16``: X (W) is stored as bf16 (2-byte elements, ``ml_dtypes``' bits,
dense NHWC / [KH, KW, C, F] as the f32 ones): the patch rows and the kernel's tiles are
packed by moving 16-bit values, unrounded; the f32 path gets widened copies. The result
is the f32-operand call's, bit for bit. Where the patch matrix is X itself (1 x 1, strides
1, no padding nor pooling, channels a multiple of 32) the tiles load from X's rows, as
``kc_bgemm``'s do from A's: 1x1 128->256 1.05x against packing them. One core, against the
same call on f32 operands (``benchmarks/bf16_conv.py --operands``): forward 1.0-1.2x,
kernel gradient 1.1-1.4x.

``kc_sconv_bf16_isa()`` says which path a call takes: 1 AMX, 2 AVX512_BF16, 3 the f32 one.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.library import bf16_gemm as bg
from kcompile.codegen.library.conv import (
    CONV_FN,
    GEOMETRY,
    POOLED,
    SUM_SPAN,
    _alloca,
    _gep_i64,
    _pixel_table,
    declare_conv,
)
from kcompile.codegen.library.gemm import ACCUMULATE, COLUMNS_OWNED, EPILOGUE_FN
from kcompile.codegen.library.parallel import CHUNK_FN
from kcompile.codegen.loops import F32, I32, I64, PTR, for_range, for_reduce, i64
from kcompile.ir import abi
from kcompile.ir.abi import Signature

BCONV = Signature("kc_sconv_bf16", None, abi.CONV.params)
BCONV_ISA = Signature("kc_sconv_bf16_isa", "i32", ())
EXPORTS = (BCONV, BCONV_ISA)
# Bits of ``flags`` beside ``kc_sconv``'s: take the f32 path on any CPU (tests); X (W)
# is of bf16 elements (2 bytes, ``ml_dtypes.bfloat16``'s bits), packed for the tiles as
# they are, widened into an f32 copy for the f32 path.
PORTABLE = bg.PORTABLE
X_BF16, W_BF16 = bg.A_BF16, bg.B_BF16
# ... and: pass AMX over for the next engine (AVX512_BF16), so a host with both tests both.
NO_AMX = 512
# A 1 x 1 convolution of stride 1 over a bf16 X of channels a multiple of 32 loads its
# tiles from X's rows (the patch matrix is X), as ``kc_bgemm`` does (``A_IN_PLACE``).
X_IN_PLACE = True
BLOCK = bg.BLOCK  # rows and columns of C per block (2 x 2 tiles)
# Below this many multiply-adds a convolution runs in the calling thread.
PARALLEL_MIN_MACS = 1 << 16
_PIXEL = 4  # i64s per pixel of ``codegen.library.conv``'s pixel table
_JOB = (
    *GEOMETRY,
    *("X", "Cm", "ldc", "acc", "epi", "ctx", "pixels", "bp", "kb", "M", "per_chunk"),
)
JOB = ir.ArrayType(I64, len(_JOB))
I16 = bg.I16
VW = 16  # floats a vector


def has_conv_engine(features: Callable[[str], bool]) -> bool:
    """Whether ``kc_sconv_bf16`` has an engine's path (AMX, AVX512_BF16) on a CPU of these
    features."""
    return bool(bg.engines(features))


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB), typ=I64)


def _set(b: ir.IRBuilder, job, name: str, value: ir.Value) -> None:
    b.store(value, b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB))


def _lanes(b: ir.IRBuilder, count, width: int = VW) -> ir.Value:
    """The mask of the first ``count`` of ``width`` lanes."""
    lanes = ir.Constant(ir.VectorType(I64, width), list(range(width)))
    limit = b.insert_element(ir.Constant(ir.VectorType(I64, width), None), count, i64(0))
    limit = b.shuffle_vector(limit, limit, ir.Constant(ir.VectorType(I32, width), [0] * width))
    return b.icmp_signed("<", lanes, limit)


def _bf16_vec(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """16 floats rounded to bf16 (to nearest, ties to even: ``vcvtneps2bf16``, which like
    the tiles takes denormals for zero, as compiled code's DAZ mode does), as i16 bits."""
    narrow = b.fptrunc(x, ir.VectorType(bg.BF16, VW))
    return b.bitcast(narrow, ir.VectorType(I16, VW))


def _run_copier(module: ir.Module, bf16: bool = False) -> ir.Function:
    """``copy(src, dst, length, inside)``: ``length`` floats at ``src`` as bf16 at
    ``dst`` (``bf16``: ``length`` bf16 copied as they are); zeros when not ``inside`` (a
    tap in the padding: ``src`` is not read)."""
    name = "kc_sconv_bf16_run16" if bf16 else "kc_sconv_bf16_run"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64]), name)
    fn.linkage = "internal"
    src, dst, length, inside = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    # A bf16 run is moved 32 at a time (a 64-byte line); floats 16 at a time.
    lanes = 2 * VW if bf16 else VW
    etype, suffix = (I16, "i16") if bf16 else (F32, "f32")
    vec, half = ir.VectorType(etype, lanes), ir.VectorType(I16, lanes)
    mask_t = ir.VectorType(ir.IntType(1), lanes)
    load = bg._declare(
        module,
        f"llvm.masked.load.v{lanes}{suffix}.p0",
        ir.FunctionType(vec, [PTR, I32, mask_t, vec]),
    )
    store = bg._declare(
        module,
        f"llvm.masked.store.v{lanes}i16.p0",
        ir.FunctionType(ir.VoidType(), [half, PTR, I32, mask_t]),
    )
    align = 2 if bf16 else 4

    def bits(value):
        return value if bf16 else _bf16_vec(b, value)

    shift = lanes.bit_length() - 1
    full = b.lshr(length, i64(shift))
    tail = b.and_(length, i64(lanes - 1))
    read = b.icmp_unsigned("!=", inside, i64(0))
    with b.if_else(read) as (copy, zeros):
        with copy:
            with for_range(b, full, "q") as q:
                at = b.mul(q, i64(lanes))
                value = b.load(b.gep(src, [at], source_etype=etype), typ=vec, align=align)
                b.store(bits(value), b.gep(dst, [at], source_etype=I16), align=2)
            with b.if_then(b.icmp_unsigned("!=", tail, i64(0))):
                at = b.mul(full, i64(lanes))
                mask = _lanes(b, tail, lanes)
                value = b.call(
                    load,
                    [b.gep(src, [at], source_etype=etype), ir.Constant(I32, align), mask,
                     ir.Constant(vec, None)],
                )  # fmt: skip
                b.call(store, [bits(value), b.gep(dst, [at], source_etype=I16),
                               ir.Constant(I32, 2), mask])  # fmt: skip
        with zeros:
            parts = b.lshr(b.add(length, i64(lanes - 1)), i64(shift))
            with for_range(b, parts, "z") as q:
                at = b.mul(q, i64(lanes))
                mask = _lanes(b, b.sub(length, at), lanes)
                b.call(store, [ir.Constant(half, None), b.gep(dst, [at], source_etype=I16),
                               ir.Constant(I32, 2), mask])  # fmt: skip
    b.ret_void()
    return fn


def _pack_row(b: ir.IRBuilder, g: dict, x, pixel_table, image, p, dst, kp, copy, etype=F32):
    """Row (``image``, pixel ``p``) of the patch matrix as bf16 at ``dst``, ``kp`` wide
    (zeros past the depth); the image's elements ``etype`` (F32, or I16 for bf16 with
    ``copy`` the bf16 copier)."""
    entry = _gep_i64(b, pixel_table, b.mul(p, i64(_PIXEL)))
    y0, x0, at, fits = (b.load(_gep_i64(b, entry, j), typ=I64) for j in range(_PIXEL))
    c = g["C"]
    image_at = b.mul(image, b.mul(b.mul(g["H"], g["W"]), c))
    run = b.mul(g["KW"], c)
    merged = b.and_(b.icmp_unsigned("!=", fits, i64(0)), b.icmp_signed("==", g["DW"], i64(1)))
    with b.if_else(merged) as (inner, border):
        with inner:  # each kernel row one run of KW*C elements
            corner = b.add(image_at, at)
            step = b.mul(b.mul(g["DH"], g["W"]), c)
            with for_range(b, g["KH"], "kh") as kh:
                src = b.gep(x, [b.add(corner, b.mul(kh, step))], source_etype=etype)
                out = b.gep(dst, [b.mul(kh, run)], source_etype=I16)
                b.call(copy, [src, out, run, i64(1)])
        # a run of C per tap, zeros in the padding
        with border, for_range(b, g["KH"], "bh") as kh, for_range(b, g["KW"], "bw") as kw:
            y = b.add(y0, b.mul(kh, g["DH"]))
            xx = b.add(x0, b.mul(kw, g["DW"]))
            inside = b.and_(b.icmp_unsigned("<", y, g["H"]), b.icmp_unsigned("<", xx, g["W"]))
            pixel = b.add(b.mul(b.add(b.mul(image, g["H"]), y), g["W"]), xx)
            src_at = b.select(inside, b.mul(pixel, c), i64(0))
            src = b.gep(x, [src_at], source_etype=etype)
            out = b.gep(dst, [b.mul(b.add(b.mul(kh, g["KW"]), kw), c)], source_etype=I16)
            b.call(copy, [src, out, c, b.zext(inside, I64)])
    depth = b.mul(g["KH"], run)
    b.call(copy, [x, b.gep(dst, [depth], source_etype=I16), b.sub(kp, depth), i64(0)])


def pack_patch_row(b: ir.IRBuilder, g: dict, x, pixel_table, image, p, dst, kp) -> None:
    """``_pack_row`` for the image of the call (``g["acc"]``'s ``X_BF16``: bf16 or f32)."""
    module = b.module
    wide, narrow = _run_copier(module), _run_copier(module, bf16=True)
    with b.if_else(bg._is_set(b, g["acc"], X_BF16)) as (bf16, f32):
        with bf16:
            _pack_row(b, g, x, pixel_table, image, p, dst, kp, narrow, I16)
        with f32:
            _pack_row(b, g, x, pixel_table, image, p, dst, kp, wide, F32)


def _chunk(module: ir.Module, engine: str) -> ir.Function:
    """``chunk(job, i)``: the 32-row blocks ``[i*P, (i+1)*P)`` of C, all columns, each
    packed, multiplied on ``engine`` and handed to the epilogue."""
    fn = ir.Function(module, CHUNK_FN, f"kc_sconv_bf16_{engine}_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    x, cm = b.inttoptr(g["X"], PTR), b.inttoptr(g["Cm"], PTR)
    bp, pixel_table = b.inttoptr(g["bp"], PTR), b.inttoptr(g["pixels"], PTR)
    m, n, ldc, kb_count = g["M"], g["F"], g["ldc"], g["kb"]
    epilogue = b.inttoptr(g["epi"], ir.PointerType(EPILOGUE_FN))
    has_epilogue = b.icmp_unsigned("!=", g["epi"], i64(0))
    ctx = b.inttoptr(g["ctx"], PTR)
    pooled = b.icmp_unsigned("!=", b.and_(g["acc"], i64(POOLED)), i64(0))
    accumulate = b.icmp_unsigned("!=", b.and_(g["acc"], i64(ACCUMULATE)), i64(0))
    kp = b.mul(kb_count, i64(bg.TILE_K))
    row_blocks = bg._ceil_div(b, m, i64(BLOCK))
    col_blocks = bg._ceil_div(b, n, i64(BLOCK))
    wide = b.mul(col_blocks, i64(BLOCK))  # the block buffer's row: all of C's columns
    first = b.mul(index, g["per_chunk"])
    count = b.sub(bg._min(b, row_blocks, b.add(first, g["per_chunk"])), first)
    aligned_alloc = bg._declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    free = bg._declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    a_bytes = b.add(b.mul(kp, i64(BLOCK * 2)), i64(64))
    a = b.call(aligned_alloc, [i64(64), b.mul(bg._ceil_div(b, a_bytes, i64(64)), i64(64))])
    buf = b.call(aligned_alloc, [i64(64), b.add(b.mul(wide, i64(BLOCK * 4)), i64(64))])
    a1 = b.gep(a, [b.mul(kp, i64(bg.TILE_ROWS))], source_etype=I16)
    block = bg.engine_block(module, engine, strided=True)
    pixels = b.mul(g["OH"], g["OW"])
    i_first = b.mul(first, i64(BLOCK))
    start = [b.udiv(i_first, pixels), b.urem(i_first, pixels)]
    flat = _patches_are_rows(b, g) if X_IN_PLACE else ir.Constant(ir.IntType(1), 0)
    with for_reduce(b, count, start, "blk") as (blk, at):
        i0 = b.mul(b.add(first, blk), i64(BLOCK))
        rows = bg._min(b, i64(BLOCK), b.sub(m, i0))
        in_place = b.and_(flat, b.icmp_signed("==", rows, i64(BLOCK)))
        with b.if_else(in_place) as (from_x, packed):
            with from_x:  # the block's 32 rows are X's: its tiles load from X
                x_rows = b.gep(x, [b.mul(i0, g["C"])], source_etype=I16)
                x_rows1 = b.gep(x_rows, [b.mul(i64(bg.TILE_ROWS), g["C"])], source_etype=I16)
                nxt = b.add(i0, rows)
                x_at = [b.udiv(nxt, pixels), b.urem(nxt, pixels)]
                x_ld = b.mul(g["C"], i64(2))
                x_block = b.block
            with packed:
                # The block's rows of the patch matrix; the pixels by counting (no division).
                with for_reduce(b, rows, list(at), "row") as (r, pix):
                    image, p = pix
                    dst = b.gep(a, [b.mul(r, kp)], source_etype=I16)
                    pack_patch_row(b, g, x, pixel_table, image, p, dst, kp)
                    p1 = b.add(p, i64(1))
                    wrap = b.icmp_signed("==", p1, pixels)
                    pix[0] = b.select(wrap, b.add(image, i64(1)), image)
                    pix[1] = b.select(wrap, i64(0), p1)
                packed_ld = b.mul(kp, i64(2))
                packed_block = b.block

        def merge(from_x_value, packed_value):
            phi = b.phi(from_x_value.type)
            phi.add_incoming(from_x_value, x_block)
            phi.add_incoming(packed_value, packed_block)
            return phi

        at[:] = [merge(v, w) for v, w in zip(x_at, pix)]
        a_rows, a_rows1 = merge(x_rows, a), merge(x_rows1, a1)
        a_ld = merge(x_ld, packed_ld)
        with for_range(b, col_blocks, "jb") as jb:
            j0 = b.mul(jb, i64(BLOCK))
            cols = bg._min(b, i64(BLOCK), b.sub(n, j0))
            b0 = b.gep(bp, [b.mul(b.mul(jb, i64(2)), b.mul(kb_count, i64(bg.TILE_ELEMS)))],
                       source_etype=I16)  # fmt: skip
            b1 = b.gep(b0, [b.mul(kb_count, i64(bg.TILE_ELEMS))], source_etype=I16)
            whole = b.and_(
                b.icmp_signed("==", rows, i64(BLOCK)), b.icmp_signed("==", cols, i64(BLOCK))
            )
            direct = b.and_(whole, b.not_(pooled))
            with b.if_else(direct) as (into_c, buffered):
                with into_c:
                    corner = b.gep(cm, [b.add(b.mul(i0, ldc), j0)], source_etype=F32)
                    prefetch = bg.PREFETCH_OUT if bg.PREFETCH_C else 0
                    init = b.or_(b.zext(accumulate, I64), i64(prefetch))  # into C: prefetched
                    at_c = [corner, b.mul(ldc, i64(4)), init]
                    b.call(block, [kb_count, a_rows, a_rows1, a_ld, b0, b1, *at_c])
                with buffered:
                    out = b.gep(buf, [j0], source_etype=F32)
                    at_buf = [out, b.mul(wide, i64(4)), i64(0)]
                    b.call(block, [kb_count, a_rows, a_rows1, a_ld, b0, b1, *at_buf])
                    with b.if_then(b.not_(pooled)):
                        _write_block(b, out, wide, cm, ldc, i0, j0, rows, cols, accumulate)
            with b.if_then(has_epilogue):
                c_at = b.ptrtoint(b.select(pooled, buf, cm), I64)
                ld = b.select(pooled, wide, ldc)
                b.call(epilogue, [ctx, c_at, ld, i0, j0, rows, cols])
    b.call(free, [a])
    b.call(free, [buf])
    b.ret_void()
    return fn


def _patches_are_rows(b: ir.IRBuilder, g: dict) -> ir.Value:
    """Whether the patch matrix is X itself, row for row, in bf16 tiles: a 1 x 1 kernel,
    strides 1, no padding, no pooling order, X of bf16 elements and channels a multiple
    of 32 (a tile's row is 32 of them; none read past a row)."""
    ones = [b.icmp_signed("==", g[name], i64(1)) for name in ("KH", "KW", "SH", "SW")]
    same = [b.icmp_signed("==", g[o], g[i]) for o, i in (("OH", "H"), ("OW", "W"))]
    unpadded = [b.icmp_signed("==", g[name], i64(0)) for name in ("PT", "PL")]
    whole = b.icmp_signed("==", b.and_(g["C"], i64(bg.TILE_K - 1)), i64(0))
    conditions = [*ones, *same, *unpadded, whole, bg._is_set(b, g["acc"], X_BF16)]
    conditions.append(b.not_(bg._is_set(b, g["acc"], POOLED)))
    result = conditions[0]
    for condition in conditions[1:]:
        result = b.and_(result, condition)
    return result


def _write_block(b, out, wide, c, ldc, i0, j0, rows, cols, accumulate) -> None:
    """C's ``rows x cols`` at (i0, j0) (+)= the buffer's block at ``out`` (rows ``wide``
    floats apart)."""
    with for_range(b, rows, "wr") as r, for_range(b, cols, "wc") as col:
        value = b.load(b.gep(out, [b.add(b.mul(r, wide), col)], source_etype=F32), typ=F32)
        at = b.gep(c, [b.add(b.mul(b.add(i0, r), ldc), b.add(j0, col))], source_etype=F32)
        start = b.select(accumulate, b.load(at, typ=F32), ir.Constant(F32, 0.0))
        b.store(b.fadd(start, value), at)


def _engine_conv(module: ir.Module, engine: str) -> ir.Function:
    """``kc_sconv``'s ABI (internal) on ``engine`` ("amx": the tiles; "dp": ``vdpbf16ps``)."""
    fn = ir.Function(module, CONV_FN, f"kc_sconv_bf16_{engine}")
    fn.linkage = "internal"
    geometry, x, w, c, flags, epi, ctx = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {
        name: b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
        for i, name in enumerate(GEOMETRY)
    }
    m = b.mul(b.mul(g["N"], g["OH"]), g["OW"])
    n = g["F"]
    with b.if_then(b.or_(b.icmp_signed("<=", m, i64(0)), b.icmp_signed("<=", n, i64(0)))):
        b.ret_void()
    depth = b.mul(b.mul(g["KH"], g["KW"]), g["C"])
    kb_count = bg._ceil_div(b, depth, i64(bg.TILE_K))
    aligned_alloc = bg._declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    free = bg._declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))

    def alloc(byte_count):
        size = b.mul(bg._ceil_div(b, b.add(byte_count, i64(64)), i64(64)), i64(64))
        return b.call(aligned_alloc, [i64(64), size])

    # No C (and not pooled): the product in a scratch matrix only the epilogue reads.
    pooled = b.icmp_unsigned("!=", b.and_(flags, i64(POOLED)), i64(0))
    no_c = b.and_(b.icmp_unsigned("==", b.ptrtoint(c, I64), i64(0)), b.not_(pooled))
    scratch_slot = b.alloca(PTR, name="scratch")
    b.store(ir.Constant(PTR, None), scratch_slot)
    with b.if_then(no_c):
        b.store(alloc(b.mul(b.mul(m, n), i64(4))), scratch_slot)
    scratch = b.load(scratch_slot, typ=PTR)
    c = b.select(no_c, scratch, c)
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    macs = b.mul(b.mul(m, n), depth)
    alone = b.icmp_signed("<", macs, i64(PARALLEL_MIN_MACS))
    threads = b.select(alone, i64(1), threads)
    parallel_for = module.globals[abi.PARALLEL_FOR.symbol]
    # The kernel as B, [depth, F] row-major, in VNNI pairs: kc_bgemm's packing.
    col_blocks = bg._ceil_div(b, n, i64(BLOCK))
    bp = alloc(b.mul(b.mul(col_blocks, kb_count), i64(BLOCK * bg.TILE_K * 2)))
    bjob = b.alloca(bg.JOB, name="bjob")
    bjob.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    pack_chunks = bg._min(b, b.mul(col_blocks, i64(2)), b.mul(threads, i64(4)))
    for name, value in (
        ("N", n), ("K", depth), ("B", b.ptrtoint(w, I64)), ("rsB", n), ("csB", i64(1)),
        ("bp", b.ptrtoint(bp, I64)), ("kb", kb_count), ("pack_chunks", pack_chunks),
        ("acc", b.and_(flags, i64(W_BF16))),  # W_BF16 is B_BF16: the kernel is B
    ):  # fmt: skip
        bg._set(b, bjob, name, value)
    pack_b = module.globals.get("kc_bgemm_pack_b") or bg._pack_b_chunk(module, "kc_bgemm_pack_b")
    b.call(parallel_for, [pack_b, bjob, pack_chunks])
    pixels = b.mul(g["OH"], g["OW"])
    pixel_table = alloc(b.mul(pixels, i64(_PIXEL * 8)))
    _pixel_table(b, g, pixel_table)
    row_blocks = bg._ceil_div(b, m, i64(BLOCK))
    chunks = bg._min(b, row_blocks, b.mul(threads, i64(8)))
    per_chunk = bg._ceil_div(b, row_blocks, chunks)
    # Pooled: chunks end on a window's last row (a window's rows are pooled in order).
    # Column sums: on a span's last row (each span's partial belongs to one chunk).
    owned = b.icmp_unsigned("!=", b.and_(flags, i64(COLUMNS_OWNED)), i64(0))
    unit = b.select(owned, i64(SUM_SPAN // BLOCK), b.mul(g["PH"], g["PW"]))
    per_chunk = b.mul(bg._ceil_div(b, per_chunk, unit), unit)
    chunks = bg._ceil_div(b, row_blocks, per_chunk)
    job = _alloca(b, I64, len(_JOB), "job")
    fields = {
        **g,
        "X": b.ptrtoint(x, I64), "Cm": b.ptrtoint(c, I64), "ldc": n, "acc": flags,
        "epi": b.ptrtoint(epi, I64), "ctx": b.ptrtoint(ctx, I64),
        "pixels": b.ptrtoint(pixel_table, I64), "bp": b.ptrtoint(bp, I64), "kb": kb_count,
        "M": m, "per_chunk": per_chunk,
    }  # fmt: skip
    for name, value in fields.items():
        _set(b, job, name, value)
    b.call(parallel_for, [_chunk(module, engine), job, chunks])
    b.call(free, [bp])
    b.call(free, [pixel_table])
    with b.if_then(no_c):
        b.call(free, [scratch])
    b.ret_void()
    return fn


def add_bconv(module: ir.Module, features: Callable[[str], bool]) -> None:
    """Define ``kc_sconv_bf16`` and ``kc_sconv_bf16_isa`` in ``module`` (which must hold
    ``kc_sconv`` and the thread pool), with the engines' paths ``features`` have."""
    fn = ir.Function(module, CONV_FN, BCONV.symbol)
    operands = ((1, X_BF16, ("N", "H", "W", "C")), (2, W_BF16, ("KH", "KW", "C", "F")))
    on_engine_or_fallback(module, fn, _engine_conv, declare_conv(module), features, operands)
    isa = ir.Function(module, ir.FunctionType(I32, []), BCONV_ISA.symbol)
    bi = ir.IRBuilder(isa.append_basic_block("entry"))
    for engine in bg.engines(features):
        code = ir.Constant(I32, bg.PATHS[engine])
        if engine != "amx":
            bi.ret(code)
            return
        with bi.if_then(bi.call(bg._permission(module), [])):
            bi.ret(code)
    bi.ret(ir.Constant(I32, bg.PATHS["round"]))


def on_engine_or_fallback(
    module: ir.Module,
    fn: ir.Function,
    make_engine: Callable[[ir.Module, str], ir.Function],
    fallback: ir.Function,
    features: Callable[[str], bool],
    operands: tuple[tuple[int, int, tuple[str, ...]], ...],
) -> None:
    """The body of ``fn`` (geometry its first argument, flags its fifth), ``PORTABLE``
    clear: the function ``make_engine(module, engine)`` defines for the first engine
    ``features`` have (``bf16_gemm.engines``) that this process may use (AMX: where Linux
    grants the tile state); else ``fallback`` (the f32 kernel of the same ABI) without
    ``PORTABLE``. ``operands``: (argument, bit of flags, the geometry's sizes whose product
    is its element count) of each operand that may be of bf16 elements: the fallback gets
    an f32 copy of it (widened), and the bit cleared."""
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    flags = fn.args[4]
    on = b.icmp_unsigned("==", b.and_(flags, i64(PORTABLE)), i64(0))
    for engine in bg.engines(features):
        usable = on
        if engine == "amx":
            wanted = b.and_(on, b.icmp_unsigned("==", b.and_(flags, i64(NO_AMX)), i64(0)))
            usable = b.and_(wanted, b.call(bg._permission(module), []))
        with b.if_then(usable):
            b.call(make_engine(module, engine), list(fn.args))
            b.ret_void()
    args = list(fn.args)
    aligned_alloc = bg._declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    free = bg._declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    widen = bg.widener(module)
    copies, bits = [], PORTABLE | NO_AMX
    for index, bit, sizes in operands:
        bits |= bit
        entry = b.block
        with b.if_then(bg._is_set(b, flags, bit)):
            count = i64(1)
            for name in sizes:
                at = b.gep(args[0], [i64(GEOMETRY.index(name))], source_etype=I64)
                count = b.mul(count, b.load(at, typ=I64))
            size = b.mul(bg._ceil_div(b, b.add(b.mul(count, i64(4)), i64(64)), i64(64)), i64(64))
            wide = b.call(aligned_alloc, [i64(64), size])
            b.call(widen, [args[index], wide, count])
            copied = b.block
        operand, copy = b.phi(PTR), b.phi(PTR)
        operand.add_incoming(args[index], entry)
        operand.add_incoming(wide, copied)
        copy.add_incoming(ir.Constant(PTR, None), entry)
        copy.add_incoming(wide, copied)
        args[index] = operand
        copies.append(copy)
    args[4] = b.and_(flags, i64(~bits))
    b.call(fallback, args)
    for copy in copies:
        b.call(free, [copy])  # free(NULL) does nothing
    b.ret_void()


def declare_bconv(module: ir.Module) -> ir.Function:
    existing = module.globals.get(BCONV.symbol)
    return existing if existing is not None else ir.Function(module, CONV_FN, BCONV.symbol)
