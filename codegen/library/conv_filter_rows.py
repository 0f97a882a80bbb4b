"""A convolution's kernel gradient without packing, when the output rows are as wide as
the image's (stride 1, no dilation, "same" width): ``kc_conv_filter_rows``.

    void kc_conv_filter_rows(ptr geometry, ptr X, ptr dY, ptr dW, i64 flags)

dW[tap, c, f] = sum over pixels p of X(p + tap) dY[p, f]. With OW == W and unit
strides, pixel p = (oh, ow) of an image reads X at ``p + dy*W + dx`` (the tap's offset),
linear in p: the tap's product is one GEMM over the image's pixels whose A (``MR``
channels by pixels) is read in place from X with a stride of C floats, and whose B is
dY in place (stride F): nothing is packed (the packed path, ``codegen.library.conv``, spent a
third of its time packing patches). The rows whose tap leaves the image are left out
of the range; within it, a pixel at the left or right edge whose tap falls past the
image's side reads the neighbouring row's pixel instead of padding, whose product is
then subtracted (a product over the edge column's pixels, strided by a row).

Threads take ranges of images into partial products [K, F] of their own, a number of
them fixed by the batch alone, added in range order (the same bits on any number of
threads).
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.library.gemm import (
    ACCUMULATE,
    Tile,
    _ceil_div,
    _declare,
    _dispatch,
    _gep,
    _min,
)
from kcompile.codegen.library.parallel import CHUNK_FN
from kcompile.codegen.loops import F32, I64, PTR, for_range, for_reduce, function_type, i64
from kcompile.ir import abi

FILTER_ROWS = "kc_conv_filter_rows"
# Ranges of images at most (each a partial product to add up).
CHUNKS = 8
# Pixels of a block: its dY rows (F floats each) stay in L1 across the taps.
BLOCK = 128
# Pixels of an image at least, for this path (a 16 x 16 image: 12% faster, 8 x 8 not).
MIN_PIXELS = 256
_JOB = ("N", "H", "W", "C", "OH", "OW", "F", "KH", "KW", "PT", "PL", "X", "dY", "partials",
        "per_chunk", "flags", "dW", "chunks", "parts")  # fmt: skip


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(_JOB.index(name))], source_etype=I64), typ=I64)


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _tap(b: ir.IRBuilder, g: dict, tap):
    """A tap's offsets (dy, dx) from an output pixel's place in the image, and the
    pixels' shift between the two (dy*W + dx)."""
    dy = b.sub(b.udiv(tap, g["KW"]), g["PT"])
    dx = b.sub(b.urem(tap, g["KW"]), g["PL"])
    return dy, dx, b.add(b.mul(dy, g["W"]), dx)


def _tap_range(b: ir.IRBuilder, g: dict, dy, dx):
    """The tap's rows of the output inside the image, and its range of pixels
    ``[p_lo, p_hi)`` of one image: from the first such row's first pixel whose tap lies
    right of the image's left side to the last row's last whose tap lies left of its
    right side (every address in between lies inside the image)."""
    zero = i64(0)
    oh_lo = _max(b, zero, b.neg(dy))
    oh_hi = _min(b, g["OH"], b.sub(g["H"], dy))
    p_lo = b.add(b.mul(oh_lo, g["OW"]), _max(b, zero, b.neg(dx)))
    p_hi = b.sub(b.mul(oh_hi, g["OW"]), _max(b, zero, dx))
    return oh_lo, oh_hi, p_lo, p_hi


def _chunk(module: ir.Module, t: Tile) -> ir.Function:
    """``chunk(job, i)``: images ``[i*per, (i+1)*per)`` into partial product ``i``."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_filter_rows_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    x, dy_all = b.inttoptr(g["X"], PTR), b.inttoptr(g["dY"], PTR)
    c, f = g["C"], g["F"]
    depth = b.mul(b.mul(g["KH"], g["KW"]), c)
    partial = _gep(b, b.inttoptr(g["partials"], PTR), b.mul(b.mul(index, depth), f))
    kernels = [module.globals[f"kc_ukr{r}"] for r in range(1, t.mr + 1)]
    tile = b.alloca(ir.ArrayType(F32, t.mr * t.nr), name="edge")
    tile.align = 64
    tile.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    n0 = b.mul(index, g["per_chunk"])
    n1 = _min(b, g["N"], b.add(n0, g["per_chunk"]))
    image_floats = b.mul(b.mul(g["H"], g["W"]), c)
    pixels = b.mul(g["OH"], g["OW"])
    slivers = _ceil_div(b, c, i64(t.mr))
    panels = _ceil_div(b, f, i64(t.nr))
    taps = b.mul(g["KH"], g["KW"])
    with b.if_then(b.icmp_signed(">", n1, n0)), for_range(b, b.sub(n1, n0), "img") as i:
        n = b.add(n0, i)
        xs = _gep(b, x, b.mul(n, image_floats))
        dys = _gep(b, dy_all, b.mul(b.mul(n, pixels), f))
        # Blocks of pixels, every tap's product over each: a block's dY (and the image
        # rows its taps read) stays in L1 across the taps and slivers.
        with for_range(b, _ceil_div(b, pixels, i64(BLOCK)), "pb") as pb:
            q0 = b.mul(pb, i64(BLOCK))
            q1 = _min(b, pixels, b.add(q0, i64(BLOCK)))
            with for_range(b, taps, "tap") as tap:
                dy, dx, shift = _tap(b, g, tap)
                _, _, p_lo, p_hi = _tap_range(b, g, dy, dx)
                lo, hi = _max(b, p_lo, q0), _min(b, p_hi, q1)
                with b.if_then(b.icmp_signed(">", hi, lo)):
                    a = _gep(b, xs, b.mul(b.add(lo, shift), c))
                    bm = _gep(b, dys, b.mul(lo, f))
                    _products(b, t, kernels, b.sub(hi, lo), a, c, bm, f, partial, tap, g,
                              slivers, panels)  # fmt: skip
        # The edge columns whose tap wrapped into the next or previous row.
        with for_range(b, taps, "tap") as tap:
            dy, dx, shift = _tap(b, g, tap)
            oh_lo, oh_hi, p_lo, p_hi = _tap_range(b, g, dy, dx)
            left = b.icmp_signed("<", dx, i64(0))
            columns = b.select(left, b.neg(dx), dx)
            rows = b.sub(b.sub(oh_hi, oh_lo), i64(1))
            first = b.select(left, b.add(oh_lo, i64(1)), oh_lo)
            live = b.and_(b.icmp_signed(">", p_hi, p_lo), b.icmp_signed(">", rows, i64(0)))
            with b.if_then(live), for_range(b, columns, "edge") as e:
                ow = b.select(left, e, b.sub(g["OW"], b.add(e, i64(1))))
                p = b.add(b.mul(first, g["OW"]), ow)
                a = _gep(b, xs, b.mul(b.add(p, shift), c))
                bm = _gep(b, dys, b.mul(p, f))
                lda, ldb = b.mul(g["W"], c), b.mul(g["OW"], f)
                _subtract(b, t, kernels, rows, a, lda, bm, ldb, partial, tap, g,
                          slivers, panels, tile)  # fmt: skip
    b.ret_void()
    return fn


def _products(b, t: Tile, kernels, kc, a, lda, bm, ldb, partial, tap, g, slivers, panels):
    """partial[tap's rows, :] += A·B: A(r, k) at ``a[k*lda + c0 + r]``, B's row k at
    ``bm + k*ldb``."""
    c, f = g["C"], g["F"]
    with for_range(b, slivers, "sl") as sl, for_range(b, panels, "jp") as jp:
        c0, f0 = b.mul(sl, i64(t.mr)), b.mul(jp, i64(t.nr))
        rows = _min(b, i64(t.mr), b.sub(c, c0))
        nr = _min(b, i64(t.nr), b.sub(f, f0))
        out = _gep(b, partial, b.add(b.mul(b.add(b.mul(tap, c), c0), f), f0))
        args = [kc, _gep(b, a, c0), lda, _gep(b, bm, f0), ldb, out, f, nr, i64(1)]
        _dispatch(b, rows, kernels, args, inline_short=False)


def _subtract(b, t: Tile, kernels, kc, a, lda, bm, ldb, partial, tap, g, slivers, panels, tile):
    """partial[tap's rows, :] -= A·B (as ``_products``), through a tile of its own."""
    c, f = g["C"], g["F"]
    with for_range(b, slivers, "sl") as sl, for_range(b, panels, "jp") as jp:
        c0, f0 = b.mul(sl, i64(t.mr)), b.mul(jp, i64(t.nr))
        rows = _min(b, i64(t.mr), b.sub(c, c0))
        nr = _min(b, i64(t.nr), b.sub(f, f0))
        args = [kc, _gep(b, a, c0), lda, _gep(b, bm, f0), ldb, tile, i64(t.nr), nr, i64(0)]
        _dispatch(b, rows, kernels, args, inline_short=False)
        out = _gep(b, partial, b.add(b.mul(b.add(b.mul(tap, c), c0), f), f0))
        with for_range(b, rows, "sr") as r, for_range(b, nr, "sc") as j:
            at = _gep(b, out, b.add(b.mul(r, f), j))
            wrong = b.load(_gep(b, tile, b.add(b.mul(r, i64(t.nr)), j)), typ=F32)
            b.store(b.fsub(b.load(at, typ=F32), wrong), at)


def _sum(module: ir.Module) -> ir.Function:
    """``chunk(job, i)``: part ``i`` of dW's elements: dW (+)= the partial products'
    sum, in range order."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_filter_rows_sum")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    partials, dw = b.inttoptr(g["partials"], PTR), b.inttoptr(g["dW"], PTR)
    size = b.mul(b.mul(b.mul(g["KH"], g["KW"]), g["C"]), g["F"])
    per = _ceil_div(b, size, g["parts"])
    e0 = _min(b, size, b.mul(index, per))
    e1 = _min(b, size, b.add(e0, per))
    keep = b.icmp_unsigned("!=", b.and_(g["flags"], i64(ACCUMULATE)), i64(0))
    with for_range(b, b.sub(e1, e0), "e") as e:
        at = b.add(e0, e)
        out = _gep(b, dw, at)
        start = b.select(keep, b.load(out, typ=F32), ir.Constant(F32, 0.0))
        with for_reduce(b, g["chunks"], [start], "pc") as (i, total):
            part = b.load(_gep(b, partials, b.add(b.mul(i, size), at)), typ=F32)
            total[0] = b.fadd(total[0], part)
        b.store(total[0], out)
    b.ret_void()
    return fn


def applies(b: ir.IRBuilder, g: dict) -> ir.Value:
    """Whether a kernel gradient of geometry ``g`` (``codegen.library.conv.GEOMETRY``) takes this
    path: unit strides and dilations, output rows as wide as the image's, no tap
    reaching a whole row past the image's side (an edge column wraps into the next
    row only), and images of ``MIN_PIXELS`` at least."""
    ok = b.icmp_signed("==", g["OW"], g["W"])
    for name in ("SH", "SW", "DH", "DW"):
        ok = b.and_(ok, b.icmp_signed("==", g[name], i64(1)))
    right = b.sub(b.sub(g["KW"], i64(1)), g["PL"])
    ok = b.and_(ok, b.icmp_signed("<", g["PL"], g["W"]))
    # A small image's products are too short for their tiles (8 x 8 measured slower).
    ok = b.and_(ok, b.icmp_signed(">=", b.mul(g["OH"], g["OW"]), i64(MIN_PIXELS)))
    return b.and_(ok, b.icmp_signed("<", right, g["W"]))


def add_filter_rows(
    module: ir.Module, t: Tile, parallel_for: ir.Function, geometry_names: tuple
) -> ir.Function:
    """Define ``kc_conv_filter_rows`` (after the GEMM's micro-kernels) and return it;
    ``geometry_names`` name the i64s its geometry argument points at."""
    chunk, summer = _chunk(module, t), _sum(module)
    fn = ir.Function(module, function_type(abi.CONV_FILTER), FILTER_ROWS)
    fn.linkage = "internal"
    geometry, x, dy, dw, flags = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {
        name: b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
        for i, name in enumerate(geometry_names)
    }
    job = b.alloca(ir.ArrayType(I64, len(_JOB)), name="job")
    job.type = PTR
    size = b.mul(b.mul(b.mul(g["KH"], g["KW"]), g["C"]), g["F"])
    chunks = _min(b, i64(CHUNKS), _max(b, g["N"], i64(1)))
    per = _ceil_div(b, _max(b, g["N"], i64(1)), chunks)
    chunks = _ceil_div(b, _max(b, g["N"], i64(1)), per)
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    partials = b.call(calloc, [b.add(b.mul(chunks, size), i64(1)), i64(4)])
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    fields = {
        **{name: g[name] for name in _JOB if name in g},
        "X": b.ptrtoint(x, I64),
        "dY": b.ptrtoint(dy, I64),
        "partials": b.ptrtoint(partials, I64),
        "per_chunk": per,
        "flags": flags,
        "dW": b.ptrtoint(dw, I64),
        "chunks": chunks,
        "parts": _max(b, _min(b, threads, _ceil_div(b, size, i64(1024))), i64(1)),
    }
    for name, value in fields.items():
        b.store(value, b.gep(job, [i64(_JOB.index(name))], source_etype=I64))
    b.call(parallel_for, [chunk, job, chunks])
    b.call(parallel_for, [summer, job, fields["parts"]])
    b.call(free, [partials])
    b.ret_void()
    return fn
