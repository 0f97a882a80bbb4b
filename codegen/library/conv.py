"""Convolutions as implicit GEMM: the product of the patch matrix and the kernel, and the
kernel's gradient, without the patch matrix (no im2col).

    void kc_sconv(ptr geometry, ptr X, ptr W, ptr C, i64 flags, ptr epilogue, ptr ctx)
    void kc_sconv_filter(ptr geometry, ptr X, ptr dY, ptr dW, i64 flags)

``geometry`` points at the i64s of ``GEOMETRY`` (N, H, W, C, OH, OW, F, KH, KW, strides,
dilations, top and left padding, pooling window); X is the channels-last image
[N, H, W, C], W the kernel [KH, KW, C, F] (read as a [KH*KW*C, F] matrix), C the
row-major result [N*OH*OW, F]. Row i of the patch matrix is output pixel (n, oh, ow),
column k is tap (kh, kw) and channel c, and A[i, k] = X[base(i) + offset(k)]: the
addressing separates.

- ``kc_sconv``: each ``MR``-row sliver of C computes, once per block of taps, a pointer
  per row and run of the image (a run of zeros for a tap in the padding), and the
  micro-kernel walks runs and floats from those pointers: A is never packed. A sliver
  whose windows all lie inside the image reads a kernel row as one run of KW*C floats
  at fixed offsets from its rows' corners; a shallow product (depth <= PAD_MAX_DEPTH,
  the stem) whose windows reach into the padding runs on a zero-padded copy of its
  image (small next to its result), so that all its slivers are of that kind, and
  reads tap k of every row at one offset from the row's corner (``_flat_kernel``). The
  kernel is packed once per call into ``K x NR`` panels that all threads share. Flags
  and the epilogue are the GEMM's (``codegen.library.gemm``): the epilogue runs on each
  finished tile of C while it is in L1. With ``POOLED`` the rows run pooling window by
  window and PH*PW tiles (MR whole windows) go to a buffer, from which the epilogue pools
  them into the pooled result (``codegen.lowering.fused``): the full-size result is never
  written. Threads split the rows (a convolution has few columns). An epilogue that sums
  columns (``COLUMNS_OWNED``) gets chunks that start at multiples of ``SUM_SPAN`` rows: it
  sums each span of rows into a partial of its own, which no other thread touches, and
  the caller adds the partials in span order (the same bits on any number of threads).
- A 3x3 stride-1 kernel over 16 channels or more in and out runs Winograd's F(2x2, 3x3)
  (``codegen.library.conv_winograd``), its kernel gradient too.
- ``kc_sconv_filter``: dW = Aᵀ·dY, depth the pixels, through the GEMM's micro-kernel,
  with B's panels packed straight from the image (see below); when the output rows are
  as wide as the image's (stride 1, "same" width), with nothing packed
  (``codegen.library.conv_filter_rows``).
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.library import conv_filter_rows as filter_rows
from kcompile.codegen.library import conv_winograd as winograd
from kcompile.codegen.library.gemm import (
    ACCUMULATE,
    COLUMNS_OWNED,
    EPILOGUE_FN,
    Tile,
    _ceil_div,
    _declare,
    _dispatch,
    _gep,
    _min,
    _splat,
    _store_tile,
    _vec,
)
from kcompile.codegen.library.parallel import CHUNK_FN
from kcompile.codegen.loops import F32, I32, I64, PTR, for_range, for_reduce, function_type, i64
from kcompile.ir import abi

CONV_FN = function_type(abi.CONV)
CONV = abi.CONV.symbol
GEOMETRY = (
    *("N", "H", "W", "C", "OH", "OW", "F", "KH", "KW", "SH", "SW", "DH", "DW", "PT", "PL"),
    *("PH", "PW"),  # the pooling window of a POOLED call (1 x 1 otherwise)
)
# Whether a pooled convolution hands its epilogue PH*PW slivers at once, whole windows
# (off: a sliver at a time; only to measure against).
POOL_GROUPS = True
# A bit of ``flags`` beside the GEMM's: rows in pooling-window order, each C tile in a
# buffer of its own (the epilogue pools it: ``codegen.lowering.fused``).
POOLED = 4
# ... and: the sums must be exact (int8 values whose products an f32 sums exactly:
# ``passes.int8_products``): no Winograd, whose transforms round.
EXACT = 1024
_MODES = ("runs", "runs_w", "runlen", "per_block", "cstep", "cblocks", "kblocks", "tblocks")
_JOB = (
    *GEOMETRY,
    *("X", "B", "Cm", "ldc", "acc", "epi", "ctx", "zero", "table", "pixels", "offsets"),
    *("tiles_per_chunk", "M"),
    *(f"{mode}_{name}" for mode in "ib" for name in _MODES),
)
JOB = ir.ArrayType(I64, len(_JOB))
_PIXEL = 4  # i64s per pixel of the pixel table: window top, left, offset, inside
# Depth of a block of taps: the sliver's rows for a block stay in L1 across the panels.
KC = 512
# Taps in one block at most (a long 1-D kernel over few channels): the sliver's pointers.
MAX_TAPS = 64
# Whether slivers inside the image take the cheaper path (off only to measure against).
INTERIOR = True
# Whether a kernel gradient whose output rows are as wide as the image's takes the path
# that packs nothing (``codegen.library.conv_filter_rows``; off only to measure against).
FILTER_ROWS = True
# A padded product at most this deep runs on a padded copy of its image.
PAD_MAX_DEPTH = 64
# A product at most this deep (the stem: 3x3 over 1 or 3 channels) runs its interior
# slivers through the flat micro-kernel (``_flat_kernel``), which reads tap k of every
# row at one offset from the row's corner, from a table of the offsets: no pointer per
# row and run is built, no loop over runs runs (SHALLOW_FLAT off only to measure against).
SHALLOW_FLAT = True
SHALLOW_MAX_DEPTH = PAD_MAX_DEPTH
# Below this many multiply-adds a convolution runs in the calling thread.
PARALLEL_MIN_MACS = 1 << 16
# Rows of C whose column sums go to one partial (COLUMNS_OWNED): a multiple of every
# tile's MR (12, 6), so a tile never straddles two spans; 16 tiles of 12 rows keep the
# partials (rows / 192 x F floats) small and the chunks still many.
SUM_SPAN = 192


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB), typ=I64)


def _set(b: ir.IRBuilder, job, name: str, value: ir.Value) -> None:
    b.store(value, b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB))


def _micro_kernel(module: ir.Module, t: Tile, rows: int) -> ir.Function:
    """``void ukr(ptr ptrs, i64 taps, i64 nch, ptr b, i64 tap_stride, ptr c, i64 ldc,
    i64 nr, i64 beta)``: A(r, (tap, ch)) at ``ptrs[tap*MR + r][ch]``, row (tap, ch) of the
    packed B panel at ``b + tap*tap_stride + ch*NR``."""
    vec = _vec(t)
    fma = _declare(module, f"llvm.fma.v{t.vw}f32", ir.FunctionType(vec, [vec, vec, vec]))
    fn = ir.Function(
        module,
        ir.FunctionType(ir.VoidType(), [PTR, I64, I64, PTR, I64, PTR, I64, I64, I64]),
        f"kc_conv_ukr{rows}",
    )
    fn.linkage = "internal"
    ptrs, taps, nch, bp, tap_stride, c, ldc, nr, beta = fn.args
    for arg in (ptrs, bp, c):
        arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero = ir.Constant(vec, None)
    tile = rows * t.nv
    with for_reduce(b, taps, [zero] * tile, "tap") as (tap, acc):
        row_ptrs = [
            b.load(_gep_ptr(b, ptrs, b.add(b.mul(tap, i64(t.mr)), i64(r))), typ=PTR)
            for r in range(rows)
        ]
        panel = _gep(b, bp, b.mul(tap, tap_stride))
        with for_reduce(b, nch, list(acc), "ch") as (ch, inner):
            base = b.mul(ch, i64(t.nr))
            bvec = [
                b.load(_gep(b, panel, b.add(base, i64(v * t.vw))), typ=vec, align=t.vw * 4)
                for v in range(t.nv)
            ]
            for r in range(rows):
                value = b.load(_gep(b, row_ptrs[r], ch), typ=F32)
                broadcast = _splat(b, value, t.vw)
                for v in range(t.nv):
                    i = r * t.nv + v
                    inner[i] = b.call(fma, [broadcast, bvec[v], inner[i]])
        acc[:] = inner
    _store_tile(b, module, t, rows, acc, c, ldc, nr, beta)
    b.ret_void()
    return fn


def _flat_kernel(module: ir.Module, t: Tile) -> ir.Function:
    """``void ukr(ptr x, ptr corners, ptr offsets, i64 depth, ptr b, ptr c, i64 ldc,
    i64 nr, i64 beta)``: A(r, k) at ``x[corners[r] + offsets[k]]`` (i64s), row k of the
    packed B panel at ``b + k*NR``; all MR rows."""
    vec = _vec(t)
    fma = _declare(module, f"llvm.fma.v{t.vw}f32", ir.FunctionType(vec, [vec, vec, vec]))
    fn = ir.Function(
        module,
        ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I64, PTR, PTR, I64, I64, I64]),
        "kc_conv_flat_ukr",
    )
    fn.linkage = "internal"
    x, corners, offsets, depth, bp, c, ldc, nr, beta = fn.args
    for arg in (x, corners, offsets, bp, c):
        arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    rows = [_gep(b, x, b.load(_gep_i64(b, corners, r), typ=I64)) for r in range(t.mr)]
    zero = ir.Constant(vec, None)
    with for_reduce(b, depth, [zero] * (t.mr * t.nv), "k") as (k, acc):
        offset = b.load(_gep_i64(b, offsets, k), typ=I64)
        row_b = _gep(b, bp, b.mul(k, i64(t.nr)))
        bvec = [b.load(_gep(b, row_b, i64(v * t.vw)), typ=vec, align=t.vw * 4) for v in range(t.nv)]
        for r in range(t.mr):
            broadcast = _splat(b, b.load(_gep(b, rows[r], offset), typ=F32), t.vw)
            for v in range(t.nv):
                acc[r * t.nv + v] = b.call(fma, [broadcast, bvec[v], acc[r * t.nv + v]])
    _store_tile(b, module, t, t.mr, acc, c, ldc, nr, beta)
    b.ret_void()
    return fn


def _gep_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
    return b.gep(base, [index], inbounds=True, source_etype=PTR)


def _chunk(module: ir.Module, t: Tile, kernel: ir.Function, flat: ir.Function) -> ir.Function:
    """``void chunk(ptr job, i64 index)``: row tiles ``[index*T, (index+1)*T)`` of C, all
    columns, the whole depth, then the epilogue on each finished tile.

    The depth is walked in runs of contiguous floats of the image. A sliver whose every
    window lies inside the image ("interior") reads each kernel row as one run of KW*C
    floats (with no dilation across columns) at a fixed offset from each row's corner;
    any other sliver reads one run of C per tap, a run of zeros where the tap falls in
    the padding."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    x = b.inttoptr(g["X"], PTR)
    packed = b.inttoptr(g["B"], PTR)
    cm = b.inttoptr(g["Cm"], PTR)
    zero_run = b.inttoptr(g["zero"], PTR)
    epilogue = b.inttoptr(g["epi"], ir.PointerType(EPILOGUE_FN))
    has_epilogue = b.icmp_unsigned("!=", g["epi"], i64(0))
    ctx = b.inttoptr(g["ctx"], PTR)
    m, n, ldc = g["M"], g["F"], g["ldc"]
    taps = b.mul(g["KH"], g["KW"])
    depth = b.mul(taps, g["C"])
    # Per run: its offset from an interior window's corner; per tap: its rows and columns
    # from the corner (borders).
    table = b.inttoptr(g["table"], PTR)
    offsets = b.inttoptr(g["offsets"], PTR)  # per tap and channel: from a window's corner
    panels = _ceil_div(b, n, i64(t.nr))
    row_tiles = _ceil_div(b, m, i64(t.mr))
    t0 = b.mul(index, g["tiles_per_chunk"])
    t1 = _min(b, row_tiles, b.add(t0, g["tiles_per_chunk"]))
    pooled = b.icmp_unsigned("!=", b.and_(g["acc"], i64(POOLED)), i64(0))
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    # A pooled sliver's C (MR x F) lives in a buffer of this chunk's, as a short one's:
    # PH*PW slivers of it, MR whole windows, which the epilogue then pools a window at a
    # time (chunks start on such a group: ``tiles_per_chunk``).
    group = b.select(pooled, b.mul(g["PH"], g["PW"]), i64(1)) if POOL_GROUPS else i64(1)
    tile_floats = b.mul(i64(t.mr), n)
    buffer_floats = b.add(b.mul(tile_floats, group), i64(t.nr))
    tile_buffer = b.call(calloc, [buffer_floats, i64(4)])
    # Per row of the sliver: its image's first row in X, its window's top-left corner,
    # and (interior slivers) the corner's offset in X.
    slot = lambda name: _alloca(b, I64, t.mr, name)  # noqa: E731
    img_row, top, left, corner = slot("img_row"), slot("top"), slot("left"), slot("corner")
    pixel_table = b.inttoptr(g["pixels"], PTR)
    ptrs = _alloca(b, PTR, t.mr * MAX_TAPS, "ptrs")
    inside_slot = b.alloca(ir.IntType(1), name="interior")
    accumulate = b.and_(g["acc"], i64(ACCUMULATE))
    with for_range(b, b.sub(t1, t0), "it") as it:
        i0 = b.mul(b.add(t0, it), i64(t.mr))
        rows = _min(b, i64(t.mr), b.sub(m, i0))
        # One micro-kernel, of full height: a short sliver's and a pooled one's tiles go
        # to the chunk's buffer.
        short = b.icmp_signed("<", rows, i64(t.mr))
        buffered = b.or_(pooled, short)
        # Pooled: this sliver's place in its group, and whether it closes the group.
        place = b.urem(it, group)
        closes = b.or_(
            b.icmp_unsigned("==", b.add(place, i64(1)), group),
            b.icmp_unsigned("==", b.add(b.add(t0, it), i64(1)), t1),
        )
        sliver_buffer = _gep(b, tile_buffer, b.mul(place, tile_floats))
        # Each row's pixel from the table of one image's pixels (in row order): the
        # sliver's first by division, the next ones by counting (a division per row cost
        # as much as the stem's multiply-adds).
        pixels = b.mul(g["OH"], g["OW"])
        image_floats = b.mul(b.mul(g["H"], g["W"]), g["C"])
        image, p = b.udiv(i0, pixels), b.urem(i0, pixels)

        def each_row() -> None:
            """Every row's image row, window corner and corner offset; whether all lie
            inside the image into ``inside_slot``."""
            start = [image, p, ir.Constant(ir.IntType(1), int(INTERIOR))]
            with for_reduce(b, i64(t.mr), start, "row") as (r, state):
                image_r, p_r, inside = state
                entry = _gep_i64(b, pixel_table, b.mul(p_r, i64(_PIXEL)))
                y0, x0, at, fits = (b.load(_gep_i64(b, entry, j), typ=I64) for j in range(4))
                b.store(b.mul(image_r, g["H"]), _gep_i64(b, img_row, r))
                b.store(y0, _gep_i64(b, top, r))
                b.store(x0, _gep_i64(b, left, r))
                b.store(b.add(b.mul(image_r, image_floats), at), _gep_i64(b, corner, r))
                # Rows past the last one repeat it: real pixels, whose results are not
                # stored.
                real = b.icmp_signed("<", b.add(r, i64(1)), rows)
                p1 = b.add(p_r, i64(1))
                wrap = b.icmp_signed("==", p1, pixels)
                image1 = b.select(wrap, b.add(image_r, i64(1)), image_r)
                p1 = b.select(wrap, i64(0), p1)
                state[0] = b.select(real, image1, image_r)
                state[1] = b.select(real, p1, p_r)
                state[2] = b.and_(inside, b.icmp_unsigned("!=", fits, i64(0)))
            b.store(state[2], inside_slot)

        # A sliver within one image (most) first takes only its corners, which is all an
        # interior sliver needs (the full loop was a fifth of a shallow product's time);
        # its rows past the last are that image's next pixels, whose results are not
        # stored.
        one_image = b.icmp_unsigned("<=", b.add(p, i64(t.mr)), pixels)
        with b.if_else(one_image) as (lean, full):
            with lean:
                image_at = b.mul(image, image_floats)
                inside = ir.Constant(ir.IntType(1), int(INTERIOR))
                for r in range(t.mr):
                    entry = _gep_i64(b, pixel_table, b.mul(b.add(p, i64(r)), i64(_PIXEL)))
                    at = b.load(_gep_i64(b, entry, 2), typ=I64)
                    fits = b.load(_gep_i64(b, entry, 3), typ=I64)
                    b.store(b.add(image_at, at), _gep_i64(b, corner, r))
                    inside = b.and_(inside, b.icmp_unsigned("!=", fits, i64(0)))
                b.store(inside, inside_slot)
                with b.if_then(b.not_(inside)):
                    each_row()
            with full:
                each_row()
        interior = b.load(inside_slot, typ=ir.IntType(1))
        shallow = b.icmp_signed("<=", depth, i64(SHALLOW_MAX_DEPTH if SHALLOW_FLAT else 0))

        def panel_target(jp):
            """Panel ``jp``'s first column, its width, and where its tile goes."""
            j0 = b.mul(jp, i64(t.nr))
            c = _gep(b, cm, b.add(b.mul(i0, ldc), j0))
            c = b.select(buffered, _gep(b, sliver_buffer, j0), c)
            return j0, _min(b, i64(t.nr), b.sub(n, j0)), c

        with b.if_else(b.and_(interior, shallow)) as (flat_path, run_path):
            with flat_path, for_range(b, panels, "fp") as jp:
                j0, nr, c = panel_target(jp)
                panel = _gep(b, packed, b.mul(b.mul(jp, depth), i64(t.nr)))
                args = [x, corner, offsets, depth, panel, c, b.select(buffered, n, ldc), nr]
                b.call(flat, [*args, b.select(buffered, i64(0), accumulate)])
            with run_path:
                mode = {name: b.select(interior, g[f"i_{name}"], g[f"b_{name}"]) for name in _MODES}
                tblocks = mode["tblocks"]
                with for_range(b, tblocks, "tb") as tb, for_range(b, mode["cblocks"], "cb") as cb:
                    kb = b.add(b.mul(tb, mode["cblocks"]), cb)
                    run0 = b.mul(tb, mode["per_block"])
                    nruns = _min(b, mode["per_block"], b.sub(mode["runs"], run0))
                    c0 = b.mul(cb, mode["cstep"])
                    nch = _min(b, mode["cstep"], b.sub(mode["runlen"], c0))
                    with for_range(b, nruns, "tt") as tt:
                        run = b.add(run0, tt)
                        with b.if_else(interior) as (fast, checked):
                            with fast:
                                offset = b.add(b.load(_gep_i64(b, table, run), typ=I64), c0)
                                for r in range(t.mr):
                                    at = b.add(b.load(_gep_i64(b, corner, r), typ=I64), offset)
                                    slot_at = b.add(b.mul(tt, i64(t.mr)), i64(r))
                                    b.store(_gep(b, x, at), _gep_ptr(b, ptrs, slot_at))
                            with checked:
                                dy = b.load(_gep_i64(b, table, b.add(taps, run)), typ=I64)
                                dx = b.load(
                                    _gep_i64(b, table, b.add(b.add(taps, taps), run)), typ=I64
                                )
                                with for_range(b, i64(t.mr), "pr") as r:
                                    y = b.add(b.load(_gep_i64(b, top, r), typ=I64), dy)
                                    xx = b.add(b.load(_gep_i64(b, left, r), typ=I64), dx)
                                    inside = b.and_(
                                        b.icmp_unsigned("<", y, g["H"]),
                                        b.icmp_unsigned("<", xx, g["W"]),
                                    )
                                    at = b.add(b.load(_gep_i64(b, img_row, r), typ=I64), y)
                                    at = b.add(b.mul(b.add(b.mul(at, g["W"]), xx), g["C"]), c0)
                                    # Outside the image the row reads a run of zeros (the padding).
                                    at = b.select(inside, at, i64(0))
                                    ptr = b.select(
                                        inside, b.gep(x, [at], source_etype=F32), zero_run
                                    )
                                    slot_at = b.add(b.mul(tt, i64(t.mr)), r)
                                    b.store(ptr, _gep_ptr(b, ptrs, slot_at))
                    later = b.zext(b.icmp_signed(">", kb, i64(0)), I64)
                    beta = b.or_(accumulate, later)
                    k0 = b.add(b.mul(run0, mode["runlen"]), c0)
                    tap_stride = b.mul(mode["runlen"], i64(t.nr))
                    with for_range(b, panels, "jp") as jp:
                        j0, nr, c = panel_target(jp)
                        panel = _gep(b, packed, b.mul(b.add(b.mul(jp, depth), k0), i64(t.nr)))
                        args = [
                            ptrs,
                            nruns,
                            nch,
                            panel,
                            tap_stride,
                            c,
                            b.select(buffered, n, ldc),
                            nr,
                        ]
                        b.call(kernel, [*args, b.select(buffered, later, beta)])
        # A short last sliver (its rows past the end repeat the last pixel) went to the
        # buffer whole: its real rows are added or copied to C.
        with b.if_then(b.and_(short, b.not_(pooled))):
            keep = b.icmp_unsigned("!=", accumulate, i64(0))
            with for_range(b, rows, "sr") as r, for_range(b, n, "sc") as col:
                at = _gep(b, cm, b.add(b.mul(b.add(i0, r), ldc), col))
                value = b.load(_gep(b, tile_buffer, b.add(b.mul(r, n), col)), typ=F32)
                start = b.select(keep, b.load(at, typ=F32), ir.Constant(F32, 0.0))
                b.store(b.fadd(start, value), at)
        # A pooled group's epilogue runs once its last sliver is done, on all its rows.
        ready = b.and_(has_epilogue, b.or_(b.not_(pooled), closes))
        first_row = b.sub(i0, b.mul(place, i64(t.mr)))
        group_rows = b.add(b.mul(place, i64(t.mr)), rows)
        with b.if_then(ready), for_range(b, panels, "ep") as jp:
            j0 = b.mul(jp, i64(t.nr))
            nr = _min(b, i64(t.nr), b.sub(n, j0))
            c_at = b.ptrtoint(b.select(pooled, tile_buffer, cm), I64)
            args = [ctx, c_at, b.select(pooled, n, ldc), first_row, j0, group_rows, nr]
            b.call(epilogue, args)
    b.call(free, [tile_buffer])
    b.ret_void()
    return fn


def _pixel_table(b: ir.IRBuilder, g: dict, table) -> None:
    """For each pixel of one image, in the order of the rows of C (by pooling window when
    pooled): its window's top and left corner, the corner's offset in the image, and
    whether the window lies inside the image (``_PIXEL`` i64s each)."""
    windows_w = b.udiv(g["OW"], g["PW"])
    pool = b.mul(g["PH"], g["PW"])
    last_top = b.sub(g["H"], b.add(b.mul(b.sub(g["KH"], i64(1)), g["DH"]), i64(1)))
    last_left = b.sub(g["W"], b.add(b.mul(b.sub(g["KW"], i64(1)), g["DW"]), i64(1)))
    with for_range(b, b.mul(g["OH"], g["OW"]), "px") as p:
        window, q = b.udiv(p, pool), b.urem(p, pool)
        oh = b.add(b.mul(b.udiv(window, windows_w), g["PH"]), b.udiv(q, g["PW"]))
        ow = b.add(b.mul(b.urem(window, windows_w), g["PW"]), b.urem(q, g["PW"]))
        y0 = b.sub(b.mul(oh, g["SH"]), g["PT"])
        x0 = b.sub(b.mul(ow, g["SW"]), g["PL"])
        at = b.mul(b.add(b.mul(y0, g["W"]), x0), g["C"])
        inside = b.and_(
            b.and_(b.icmp_signed(">=", y0, i64(0)), b.icmp_signed("<=", y0, last_top)),
            b.and_(b.icmp_signed(">=", x0, i64(0)), b.icmp_signed("<=", x0, last_left)),
        )
        entry = _gep_i64(b, table, b.mul(p, i64(_PIXEL)))
        for j, value in enumerate((y0, x0, at, b.zext(inside, I64))):
            b.store(value, _gep_i64(b, entry, j))


def _alloca(b: ir.IRBuilder, typ: ir.Type, count: int, name: str) -> ir.Value:
    slot = b.alloca(ir.ArrayType(typ, count), name=name)
    slot.align = 64
    slot.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    return slot


def _gep_i64(b: ir.IRBuilder, base: ir.Value, index: int | ir.Value) -> ir.Value:
    index = i64(index) if isinstance(index, int) else index
    return b.gep(base, [index], inbounds=True, source_etype=I64)


def _blocking(b: ir.IRBuilder, runs: ir.Value, runlen: ir.Value) -> dict[str, ir.Value]:
    """Blocks of whole runs at most KC deep (and MAX_TAPS runs); a run deeper than KC is
    cut."""
    cstep = _min(b, runlen, i64(KC))
    cblocks = _ceil_div(b, runlen, _max1(b, cstep))
    per_block = b.select(
        b.icmp_signed(">", cblocks, i64(1)), i64(1), b.udiv(i64(KC), _max1(b, runlen))
    )
    per_block = _min(b, _min(b, _max1(b, per_block), runs), i64(MAX_TAPS))
    tblocks = _ceil_div(b, runs, _max1(b, per_block))
    per_block = _ceil_div(b, runs, _max1(b, tblocks))  # balanced: 9 taps as 3 x 3, not 4 + 4 + 1
    kblocks = b.mul(tblocks, cblocks)
    return {"runs": runs, "runlen": runlen, "per_block": per_block, "cstep": cstep,
            "cblocks": cblocks, "kblocks": kblocks, "tblocks": tblocks}  # fmt: skip


def _pad(module: ir.Module, b: ir.IRBuilder, g: dict, x: ir.Value, alloc) -> ir.Value:
    """A zero-padded copy of the image (its new H, W and zero PT, PL written into ``g``):
    every sliver is then interior. Rows are copied whole."""
    span_h = b.add(b.mul(b.sub(g["KH"], i64(1)), g["DH"]), i64(1))
    span_w = b.add(b.mul(b.sub(g["KW"], i64(1)), g["DW"]), i64(1))
    need_h = b.add(b.mul(b.sub(g["OH"], i64(1)), g["SH"]), span_h)
    need_w = b.add(b.mul(b.sub(g["OW"], i64(1)), g["SW"]), span_w)
    hp = _max(b, b.add(g["H"], g["PT"]), need_h)
    wp = _max(b, b.add(g["W"], g["PL"]), need_w)
    c = g["C"]
    total = b.mul(b.mul(b.mul(g["N"], hp), wp), c)
    padded = alloc(total)
    memset = _declare(module, "llvm.memset.p0.i64", ir.FunctionType(
        ir.VoidType(), [PTR, ir.IntType(8), I64, ir.IntType(1)]))  # fmt: skip
    b.call(memset, [padded, ir.Constant(ir.IntType(8), 0), b.mul(total, i64(4)),
                    ir.Constant(ir.IntType(1), 0)])  # fmt: skip
    memcpy = _declare(module, "llvm.memcpy.p0.p0.i64", ir.FunctionType(
        ir.VoidType(), [PTR, PTR, I64, ir.IntType(1)]))  # fmt: skip
    row_bytes = b.mul(b.mul(g["W"], c), i64(4))
    with for_range(b, b.mul(g["N"], g["H"]), "pr") as row:
        image, y = b.udiv(row, g["H"]), b.urem(row, g["H"])
        dst = b.mul(b.add(b.mul(b.add(b.mul(image, hp), b.add(y, g["PT"])), wp), g["PL"]), c)
        src = _gep(b, x, b.mul(b.mul(row, g["W"]), c))
        b.call(memcpy, [_gep(b, padded, dst), src, row_bytes, ir.Constant(ir.IntType(1), 0)])
    g.update(H=hp, W=wp, PT=i64(0), PL=i64(0))
    return padded


def _reaches_outside(b: ir.IRBuilder, g: dict) -> ir.Value:
    """Whether some window reaches past the image (into its padding)."""
    span_h = b.add(b.mul(b.sub(g["KH"], i64(1)), g["DH"]), i64(1))
    span_w = b.add(b.mul(b.sub(g["KW"], i64(1)), g["DW"]), i64(1))
    bottom = b.sub(b.add(b.mul(b.sub(g["OH"], i64(1)), g["SH"]), span_h), g["PT"])
    right = b.sub(b.add(b.mul(b.sub(g["OW"], i64(1)), g["SW"]), span_w), g["PL"])
    return b.or_(
        b.icmp_signed("!=", b.or_(g["PT"], g["PL"]), i64(0)),
        b.or_(b.icmp_signed(">", bottom, g["H"]), b.icmp_signed(">", right, g["W"])),
    )


def _shallow_padding(module, b: ir.IRBuilder, g: dict, x, depth, alloc):
    """(image, whether it is a padded copy, the copy or null): a product at most
    ``PAD_MAX_DEPTH`` deep whose windows reach into the padding runs on a zero-padded
    copy of its image (``g`` then holds the copy's geometry)."""
    padded_slot = b.alloca(PTR, name="padded")
    b.store(ir.Constant(PTR, None), padded_slot)
    shallow = b.icmp_signed("<=", depth, i64(PAD_MAX_DEPTH))
    pad = b.and_(_reaches_outside(b, g), shallow)
    plain = {name: g[name] for name in ("H", "W", "PT", "PL")}
    entry_block = b.block
    with b.if_then(pad):
        b.store(_pad(module, b, g, x, alloc), padded_slot)
        pad_block = b.block
        padded_g = {name: g[name] for name in plain}
    for name, value in plain.items():
        phi = b.phi(I64, name=f"geometry.{name}")
        phi.add_incoming(value, entry_block)
        phi.add_incoming(padded_g[name], pad_block)
        g[name] = phi
    padded_image = b.load(padded_slot, typ=PTR)
    return b.select(pad, padded_image, x), pad, padded_image


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _conv(module: ir.Module, t: Tile, chunk: ir.Function, pack: ir.Function, parallel_for, wino):
    fn = ir.Function(module, CONV_FN, CONV)
    geometry, x, w, c, flags, epi, ctx = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    job = _alloca(b, I64, len(_JOB), "job")
    g = {}
    for i, name in enumerate(GEOMETRY):
        g[name] = b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
    m = b.mul(b.mul(g["N"], g["OH"]), g["OW"])
    n = g["F"]
    empty = b.or_(b.icmp_signed("<=", m, i64(0)), b.icmp_signed("<=", n, i64(0)))
    with b.if_then(empty):
        b.ret_void()
    taps = b.mul(g["KH"], g["KW"])
    depth = b.mul(taps, g["C"])
    aligned_alloc = _declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))

    def alloc(floats):
        size = b.mul(_ceil_div(b, b.mul(floats, i64(4)), i64(64)), i64(64))
        return b.call(aligned_alloc, [i64(64), size])

    # No C: the product lives in a scratch matrix that only the epilogue reads.
    pooled = b.icmp_unsigned("!=", b.and_(flags, i64(POOLED)), i64(0))
    no_c = b.icmp_unsigned("==", b.ptrtoint(c, I64), i64(0))
    no_c = b.and_(no_c, b.not_(pooled))
    scratch_slot = b.alloca(PTR, name="scratch")
    b.store(ir.Constant(PTR, None), scratch_slot)
    with b.if_then(no_c):
        b.store(alloc(b.mul(m, n)), scratch_slot)
    scratch = b.load(scratch_slot, typ=PTR)
    c = b.select(no_c, scratch, c)
    # A 3x3 stride-1 kernel over enough channels: Winograd's F(2x2, 3x3).
    exact = b.icmp_unsigned("!=", b.and_(flags, i64(EXACT)), i64(0))
    with b.if_then(b.and_(winograd.applies(b, g, flags, POOLED), b.not_(exact))):
        b.call(wino, [geometry, x, w, c, flags, epi, ctx])
        with b.if_then(no_c):
            b.call(free, [scratch])
        b.ret_void()
    # A shallow product with padding copies the image padded (it is small next to the
    # result): its slivers are then all interior, whose pointers cost far less.
    x, pad, padded_image = _shallow_padding(module, b, g, x, depth, alloc)
    for name in GEOMETRY:
        _set(b, job, name, g[name])
    panels = _ceil_div(b, n, i64(t.nr))
    packed = alloc(b.add(b.mul(b.mul(panels, depth), i64(t.nr)), i64(t.vw)))
    b.call(pack, [depth, n, w, n, i64(1), packed])
    border = _blocking(b, taps, g["C"])
    merged = b.icmp_signed("==", g["DW"], i64(1))  # a kernel row is one run of the image
    inner = _blocking(
        b,
        b.select(merged, g["KH"], taps),
        b.select(merged, b.mul(g["KW"], g["C"]), g["C"]),
    )
    inner["runs_w"] = b.select(merged, i64(1), g["KW"])
    border["runs_w"] = g["KW"]
    # The runs' offsets (see the chunk), in three rows of ``taps`` i64s.
    table = alloc(b.mul(taps, i64(6)))  # 3 x taps i64s, in floats
    with for_range(b, taps, "run") as run:
        kh, kw = b.udiv(run, inner["runs_w"]), b.urem(run, inner["runs_w"])
        offset = b.mul(b.add(b.mul(b.mul(kh, g["DH"]), g["W"]), b.mul(kw, g["DW"])), g["C"])
        b.store(offset, _gep_i64(b, table, run))
        dy = b.mul(b.udiv(run, g["KW"]), g["DH"])
        dx = b.mul(b.urem(run, g["KW"]), g["DW"])
        b.store(dy, _gep_i64(b, table, b.add(taps, run)))
        b.store(dx, _gep_i64(b, table, b.add(b.add(taps, taps), run)))
    # A shallow product's offsets, one per tap and channel (k): its run's, plus its
    # place in the run.
    shallow_depth = _min(b, depth, i64(SHALLOW_MAX_DEPTH))
    offsets = alloc(b.mul(shallow_depth, i64(2)))  # i64s, in floats
    with for_range(b, shallow_depth, "k") as k:
        run, place = b.udiv(k, inner["runlen"]), b.urem(k, inner["runlen"])
        at = b.add(b.load(_gep_i64(b, table, run), typ=I64), place)
        b.store(at, _gep_i64(b, offsets, k))
    pixels = b.mul(g["OH"], g["OW"])
    pixel_table = alloc(b.mul(pixels, i64(2 * _PIXEL)))  # i64s, in floats
    _pixel_table(b, g, pixel_table)
    longest = _max(b, border["cstep"], inner["cstep"])
    zero = b.call(calloc, [b.add(longest, i64(t.vw)), i64(4)])
    fields = {
        "X": b.ptrtoint(x, I64),
        "B": b.ptrtoint(packed, I64),
        "Cm": b.ptrtoint(c, I64),
        "ldc": n,
        "acc": flags,
        "epi": b.ptrtoint(epi, I64),
        "ctx": b.ptrtoint(ctx, I64),
        "zero": b.ptrtoint(zero, I64),
        "table": b.ptrtoint(table, I64),
        "pixels": b.ptrtoint(pixel_table, I64),
        "offsets": b.ptrtoint(offsets, I64),
        "M": m,
        **{f"i_{name}": inner[name] for name in _MODES},
        **{f"b_{name}": border[name] for name in _MODES},
    }
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    macs = b.mul(b.mul(m, n), depth)
    owned = b.icmp_unsigned("!=", b.and_(flags, i64(COLUMNS_OWNED)), i64(0))
    alone = b.icmp_signed("<", macs, i64(PARALLEL_MIN_MACS))
    row_tiles = _ceil_div(b, m, i64(t.mr))
    # Several chunks a thread, so that a late thread is not waited for.
    chunks = _min(b, row_tiles, b.select(alone, i64(1), b.mul(threads, i64(8))))
    per_chunk = _ceil_div(b, row_tiles, chunks)
    # Pooled: chunks end on a window's last row (a window's rows are pooled in order).
    # Column sums: on a span's last row (each span's partial belongs to one chunk).
    unit = b.select(owned, i64(SUM_SPAN // t.mr), b.mul(g["PH"], g["PW"]))
    fields["tiles_per_chunk"] = b.mul(_ceil_div(b, per_chunk, unit), unit)
    for name, value in fields.items():
        _set(b, job, name, value)
    chunks = _ceil_div(b, row_tiles, fields["tiles_per_chunk"])
    b.call(parallel_for, [chunk, job, chunks])
    b.call(free, [packed])
    b.call(free, [zero])
    b.call(free, [table])
    b.call(free, [pixel_table])
    b.call(free, [offsets])
    with b.if_then(pad):
        b.call(free, [padded_image])
    with b.if_then(no_c):
        b.call(free, [scratch])
    b.ret_void()


def _max1(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, i64(1)), i64(1), x)


def add_conv(module: ir.Module, t: Tile) -> None:
    """Define ``kc_sconv`` in ``module`` (which must hold the thread pool and the GEMM,
    whose packing of B it shares)."""
    chunk = _chunk(module, t, _micro_kernel(module, t, t.mr), _flat_kernel(module, t))
    wino = winograd.add_winograd(module, t, CONV_FN, GEOMETRY, SUM_SPAN, PARALLEL_MIN_MACS, POOLED)
    pool = module.globals[abi.PARALLEL_FOR.symbol]
    _conv(module, t, chunk, module.globals["kc_pack_b"], pool, wino)
    add_conv_filter(module, t)


def declare_conv(module: ir.Module) -> ir.Function:
    existing = module.globals.get(CONV)
    return existing if existing is not None else ir.Function(module, CONV_FN, CONV)


# --- the kernel's gradient ------------------------------------------------------------
#
#     void kc_sconv_filter(ptr geometry, ptr X, ptr dY, ptr dW, i64 flags)
#
# dW[k, f] (+)= sum_i A[i, k] dY[i, f] over the output pixels i: the product dWᵀ = dYᵀ·A,
# whose depth is the pixels. Its A operand (dYᵀ) is packed from dY's rows; its B operand
# (the patch matrix) is packed panel by panel straight from the image, each panel row a
# pixel and each run of channels of one tap copied with masked vector loads (zeros in
# the padding). Threads take ranges of pixels into partial products of their own, which
# are summed (transposed into dW) at the end.

FILTER_FN = function_type(abi.CONV_FILTER)
FILTER = abi.CONV_FILTER.symbol
_FJOB = (
    *GEOMETRY,
    *("X", "dY", "partials", "segments", "panel_segment", "per_chunk", "M", "K", "inside"),
)
FJOB = ir.ArrayType(I64, len(_FJOB))
# Pixels per block (the depth of one packed block), and panels packed at once.
FILTER_KC = 256
FILTER_PANELS = 16
FILTER_CHUNKS = 8
_SEGMENT = 5  # i64s per run of a panel row: column, tap rows, tap columns, channel, length


def _ffield(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(_FJOB.index(name))], source_etype=FJOB), typ=I64)


def _copy_masks(b, t: Tile, length, vectors: int = 0) -> list:
    """The lanes of each of ``vectors`` (NR's by default) vectors below ``length``."""
    lanes = ir.Constant(ir.VectorType(I64, t.vw), list(range(t.vw)))
    limit = _splat(b, length, t.vw)
    return [
        b.icmp_signed("<", b.add(lanes, _splat(b, i64(v * t.vw), t.vw)), limit)
        for v in range(vectors or t.nv)
    ]


def _masked_copy(b, module, t: Tile, src, dst, length, inside, vectors=0, masks=None) -> None:
    """``length`` (<= ``vectors`` x VW, NR by default) floats from ``src`` to ``dst``
    (zeros when not ``inside``), with masked vector loads and stores (``masks`` from
    ``_copy_masks``, when the caller made them once for many copies)."""
    vec = _vec(t)
    mask_t = ir.VectorType(ir.IntType(1), t.vw)
    load = _declare(
        module, f"llvm.masked.load.v{t.vw}f32.p0", ir.FunctionType(vec, [PTR, I32, mask_t, vec])
    )
    store = _declare(
        module,
        f"llvm.masked.store.v{t.vw}f32.p0",
        ir.FunctionType(ir.VoidType(), [vec, PTR, I32, mask_t]),
    )
    zero = ir.Constant(vec, None)
    align = ir.Constant(I32, 4)
    masks = masks or _copy_masks(b, t, length, vectors)
    for v, mask in enumerate(masks):
        read = b.and_(mask, _splat(b, inside, t.vw))
        value = b.call(load, [_gep(b, src, i64(v * t.vw)), align, read, zero])
        b.call(store, [value, _gep(b, dst, i64(v * t.vw)), align, mask])


def _filter_chunk(module: ir.Module, t: Tile) -> ir.Function:
    """``chunk(job, i)``: pixels ``[i*P, (i+1)*P)`` into partial product ``i`` ([F, K])."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_filter_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _ffield(b, job, name) for name in _FJOB}
    x, dy = b.inttoptr(g["X"], PTR), b.inttoptr(g["dY"], PTR)
    segments = b.inttoptr(g["segments"], PTR)
    panel_segment = b.inttoptr(g["panel_segment"], PTR)
    f, depth, pixels_total = g["F"], g["K"], g["M"]
    kernels = [module.globals[f"kc_ukr{r}"] for r in range(1, t.mr + 1)]
    partial = _gep(b, b.inttoptr(g["partials"], PTR), b.mul(b.mul(index, f), depth))
    every_inside = b.icmp_unsigned("!=", g["inside"], i64(0))
    p_begin = b.mul(index, g["per_chunk"])
    p_end = _min(b, pixels_total, b.add(p_begin, g["per_chunk"]))
    panels = _ceil_div(b, depth, i64(t.nr))
    slivers = _ceil_div(b, f, i64(t.mr))
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    kc = i64(FILTER_KC)
    packed_b = b.call(calloc, [i64(FILTER_KC * FILTER_PANELS * t.nr + t.vw), i64(4)])
    packed_a = b.call(calloc, [b.add(b.mul(b.mul(slivers, i64(t.mr)), kc), i64(t.vw)), i64(4)])
    coords = b.call(calloc, [i64(3 * FILTER_KC), i64(8)])
    top, left, corner = (_gep_i64(b, coords, i * FILTER_KC) for i in range(3))
    pixels = b.mul(g["OH"], g["OW"])
    blocks = _ceil_div(b, b.sub(p_end, p_begin), kc)
    with b.if_then(b.icmp_signed(">", p_end, p_begin)), for_range(b, blocks, "pb") as pb:
        p0 = b.add(p_begin, b.mul(pb, kc))
        count = _min(b, kc, b.sub(p_end, p0))
        # The block's pixels: the first by division, the next by counting.
        start = [b.udiv(p0, pixels), None, None]
        pixel = b.urem(p0, pixels)
        start[1], start[2] = b.udiv(pixel, g["OW"]), b.urem(pixel, g["OW"])
        with for_reduce(b, count, start, "px") as (p, at):
            image, oh, ow = at
            y0 = b.sub(b.mul(oh, g["SH"]), g["PT"])
            x0 = b.sub(b.mul(ow, g["SW"]), g["PL"])
            b.store(y0, _gep_i64(b, top, p))
            b.store(x0, _gep_i64(b, left, p))
            # The window's corner in X (before the image when padded): a tap's run is at
            # a fixed offset from it.
            window = b.add(b.mul(b.add(b.mul(image, g["H"]), y0), g["W"]), x0)
            b.store(b.mul(window, g["C"]), _gep_i64(b, corner, p))
            ow1 = b.add(ow, i64(1))
            wrap = b.icmp_signed("==", ow1, g["OW"])
            oh1 = b.select(wrap, b.add(oh, i64(1)), oh)
            wrap2 = b.icmp_signed("==", oh1, g["OH"])
            at[0] = b.select(wrap2, b.add(image, i64(1)), image)
            at[1] = b.select(wrap2, i64(0), oh1)
            at[2] = b.select(wrap, i64(0), ow1)
        # A: dYᵀ's slivers, k-major (a pixel's MR values together).
        with for_range(b, slivers, "sa") as sa, for_range(b, count, "pa") as p:
            f0 = b.mul(sa, i64(t.mr))
            rows = _min(b, i64(t.mr), b.sub(f, f0))
            src = _gep(b, dy, b.add(b.mul(b.add(p0, p), f), f0))
            dst = _gep(b, packed_a, b.add(b.mul(b.mul(sa, kc), i64(t.mr)), b.mul(p, i64(t.mr))))
            if t.mr <= t.vw:
                true = ir.Constant(ir.IntType(1), 1)
                _masked_copy(b, module, t, src, dst, rows, true, vectors=1)
            else:
                with for_range(b, rows, "ra") as r:
                    b.store(b.load(_gep(b, src, r), typ=F32), _gep(b, dst, r))
        groups = _ceil_div(b, panels, i64(FILTER_PANELS))
        with for_range(b, groups, "pg") as pg:
            j0 = b.mul(pg, i64(FILTER_PANELS))
            j1 = _min(b, panels, b.add(j0, i64(FILTER_PANELS)))
            s0 = b.load(_gep_i64(b, panel_segment, j0), typ=I64)
            s1 = b.load(_gep_i64(b, panel_segment, j1), typ=I64)
            # B: the patch matrix's rows for these pixels and panels, from the image.
            with for_range(b, b.sub(s1, s0), "sg") as sg:
                seg = _gep_i64(b, segments, b.mul(b.add(s0, sg), i64(_SEGMENT)))
                col, dy_, dx_, c0, length = (
                    b.load(_gep_i64(b, seg, i), typ=I64) for i in range(_SEGMENT)
                )
                panel = b.sub(b.udiv(col, i64(t.nr)), j0)
                base = b.add(b.mul(b.mul(panel, kc), i64(t.nr)), b.urem(col, i64(t.nr)))
                # The run's offset from a window's corner, and the copy's lanes, once.
                offset = b.add(b.mul(b.add(b.mul(dy_, g["W"]), dx_), g["C"]), c0)
                masks = _copy_masks(b, t, length)
                with for_range(b, count, "pp") as p:
                    y = b.add(b.load(_gep_i64(b, top, p), typ=I64), dy_)
                    xx = b.add(b.load(_gep_i64(b, left, p), typ=I64), dx_)
                    inside = b.and_(
                        b.icmp_unsigned("<", y, g["H"]), b.icmp_unsigned("<", xx, g["W"])
                    )
                    inside = b.or_(inside, every_inside)
                    at = b.add(b.load(_gep_i64(b, corner, p), typ=I64), offset)
                    src = _gep(b, x, b.select(inside, at, i64(0)))
                    dst = _gep(b, packed_b, b.add(base, b.mul(p, i64(t.nr))))
                    _masked_copy(b, module, t, src, dst, length, inside, masks=masks)
            with for_range(b, slivers, "sl") as sl, for_range(b, b.sub(j1, j0), "jp") as jp:
                f0 = b.mul(sl, i64(t.mr))
                rows = _min(b, i64(t.mr), b.sub(f, f0))
                col0 = b.mul(b.add(j0, jp), i64(t.nr))
                nr = _min(b, i64(t.nr), b.sub(depth, col0))
                a = _gep(b, packed_a, b.mul(b.mul(sl, kc), i64(t.mr)))
                panel_at = _gep(b, packed_b, b.mul(b.mul(jp, kc), i64(t.nr)))
                c = _gep(b, partial, b.add(b.mul(f0, depth), col0))
                args = [count, a, i64(t.mr), panel_at, i64(t.nr), c, depth, nr, i64(1)]
                _dispatch(b, rows, kernels, args, inline_short=False)
    for buffer in (packed_a, packed_b, coords):
        b.call(free, [buffer])
    b.ret_void()
    return fn


_SUM_JOB = ("partials", "dW", "F", "K", "chunks", "flags", "parts")


def _filter_sum(module: ir.Module) -> ir.Function:
    """``chunk(job, i)``: columns ``f`` of part ``i`` of dW: dW[k, f] (+)= the sum of the
    partial products at [f, k] (in a fixed order: the same bits on any thread count)."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_filter_sum")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    v = {
        name: b.load(b.gep(job, [i64(i)], source_etype=I64), typ=I64)
        for i, name in enumerate(_SUM_JOB)
    }
    partials, dw = b.inttoptr(v["partials"], PTR), b.inttoptr(v["dW"], PTR)
    f, depth, chunks = v["F"], v["K"], v["chunks"]
    per = _ceil_div(b, f, _max1(b, v["parts"]))
    f0 = _min(b, f, b.mul(index, per))
    f1 = _min(b, f, b.add(f0, per))
    accumulate = b.icmp_unsigned("!=", b.and_(v["flags"], i64(ACCUMULATE)), i64(0))
    zero = ir.Constant(F32, 0.0)
    with for_range(b, b.sub(f1, f0), "f") as jj, for_range(b, depth, "k") as k:
        j = b.add(f0, jj)
        out = _gep(b, dw, b.add(b.mul(k, f), j))
        start = b.select(accumulate, b.load(out, typ=F32), zero)
        with for_reduce(b, chunks, [start], "pc") as (i, total):
            at = b.add(b.mul(b.add(b.mul(i, f), j), depth), k)
            total[0] = b.fadd(total[0], b.load(_gep(b, partials, at), typ=F32))
        b.store(total[0], out)
    b.ret_void()
    return fn


def _filter(module: ir.Module, t: Tile, chunk: ir.Function, parallel_for) -> None:
    summer = _filter_sum(module)
    wino_filter = winograd.add_winograd_filter(module, t, FILTER_FN, GEOMETRY)
    rows_path = filter_rows.add_filter_rows(module, t, parallel_for, GEOMETRY)
    fn = ir.Function(module, FILTER_FN, FILTER)
    geometry, x, dy, dw, flags = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    job = _alloca(b, I64, len(_FJOB), "job")
    g = {}
    for i, name in enumerate(GEOMETRY):
        g[name] = b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
    # A 3x3 stride-1 kernel over enough channels: Winograd's F(2x2, 3x3), adjoint.
    with b.if_then(winograd.filter_applies(b, g)):
        b.call(wino_filter, [geometry, x, dy, dw, flags])
        b.ret_void()
    # Output rows as wide as the image's: the product with nothing packed.
    with b.if_then(b.and_(filter_rows.applies(b, g), ir.Constant(ir.IntType(1), FILTER_ROWS))):
        b.call(rows_path, [geometry, x, dy, dw, flags])
        b.ret_void()
    m = b.mul(b.mul(g["N"], g["OH"]), g["OW"])
    f, c = g["F"], g["C"]
    taps = b.mul(g["KH"], g["KW"])
    depth = b.mul(taps, c)
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    aligned_alloc = _declare(module, "aligned_alloc", ir.FunctionType(PTR, [I64, I64]))

    def alloc(floats):
        size = b.mul(_ceil_div(b, b.mul(floats, i64(4)), i64(64)), i64(64))
        return b.call(aligned_alloc, [i64(64), size])

    x, pad, padded_image = _shallow_padding(module, b, g, x, depth, alloc)
    # Runs of the image's floats, cut at panel boundaries (at most one per column): one
    # tap's channels, or, when no window reaches past the image and columns are not
    # dilated, a whole kernel row's.
    inside = b.not_(_reaches_outside(b, g))
    merged = b.and_(inside, b.icmp_signed("==", g["DW"], i64(1)))
    runs = b.select(merged, g["KH"], taps)
    run_length = b.select(merged, b.mul(g["KW"], c), c)
    runs_w = b.select(merged, i64(1), g["KW"])
    panels = _ceil_div(b, depth, i64(t.nr))
    segments = b.call(calloc, [b.add(b.mul(depth, i64(_SEGMENT)), i64(1)), i64(8)])
    panel_segment = b.call(calloc, [b.add(panels, i64(1)), i64(8)])
    count_slot = b.alloca(I64, name="segments")
    b.store(i64(0), count_slot)
    with for_range(b, runs, "tap") as tap:
        dy_ = b.mul(b.udiv(tap, runs_w), g["DH"])
        dx_ = b.mul(b.urem(tap, runs_w), g["DW"])
        with for_reduce(b, run_length, [i64(0)], "run") as (_, state):
            # while c0 < L: a piece from c0 to the run's or the panel's end
            c0 = state[0]
            active = b.icmp_signed("<", c0, run_length)
            col = b.add(b.mul(tap, run_length), c0)
            to_panel = b.sub(i64(t.nr), b.urem(col, i64(t.nr)))
            length = _min(b, b.sub(run_length, c0), to_panel)
            with b.if_then(active):
                n_seg = b.load(count_slot, typ=I64)
                seg = _gep_i64(b, segments, b.mul(n_seg, i64(_SEGMENT)))
                for i, value in enumerate((col, dy_, dx_, c0, length)):
                    b.store(value, _gep_i64(b, seg, i))
                with b.if_then(b.icmp_signed("==", b.urem(col, i64(t.nr)), i64(0))):
                    b.store(n_seg, _gep_i64(b, panel_segment, b.udiv(col, i64(t.nr))))
                b.store(b.add(n_seg, i64(1)), count_slot)
            state[0] = b.select(active, b.add(c0, length), c0)
    b.store(b.load(count_slot, typ=I64), _gep_i64(b, panel_segment, panels))
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    macs = b.mul(b.mul(m, f), depth)
    alone = b.icmp_signed("<", macs, i64(PARALLEL_MIN_MACS))
    # FILTER_CHUNKS ranges of pixels whatever the threads (a thread that finishes early
    # takes another's; the sum's order, so its bits, never depends on the threads), each
    # of a few blocks: every range costs a partial product to sum.
    most = _max1(b, b.udiv(m, i64(4 * FILTER_KC)))
    chunks = _min(b, i64(FILTER_CHUNKS), most)
    per_chunk = _ceil_div(b, m, _max1(b, chunks))
    chunks = _ceil_div(b, m, _max1(b, per_chunk))
    partials = b.call(calloc, [b.add(b.mul(b.mul(chunks, f), depth), i64(1)), i64(4)])
    fields = {
        **g,
        "X": b.ptrtoint(x, I64),
        "dY": b.ptrtoint(dy, I64),
        "partials": b.ptrtoint(partials, I64),
        "segments": b.ptrtoint(segments, I64),
        "panel_segment": b.ptrtoint(panel_segment, I64),
        "per_chunk": per_chunk,
        "M": m,
        "K": depth,
        "inside": b.zext(inside, I64),
    }
    for name, value in fields.items():
        b.store(value, b.gep(job, [i64(0), i64(_FJOB.index(name))], source_etype=FJOB))
    with b.if_then(b.icmp_signed(">", chunks, i64(0))):
        b.call(parallel_for, [chunk, job, chunks])
    # dW[k, f] (+)= the partial products' sum at [f, k], by columns among the threads.
    sum_job = _alloca(b, I64, len(_SUM_JOB), "sum_job")
    columns = b.select(alone, i64(1), _min(b, threads, f))
    values = (partials, dw, f, depth, chunks, flags, columns)
    for i, value in enumerate(values):
        value = b.ptrtoint(value, I64) if isinstance(value.type, ir.PointerType) else value
        b.store(value, b.gep(sum_job, [i64(i)], source_etype=I64))
    b.call(parallel_for, [summer, sum_job, columns])
    for buffer in (partials, segments, panel_segment):
        b.call(free, [buffer])
    with b.if_then(pad):
        b.call(free, [padded_image])
    b.ret_void()


def add_conv_filter(module: ir.Module, t: Tile) -> None:
    """Define ``kc_sconv_filter`` in ``module`` (which must hold the GEMM's kernels)."""
    chunk = _filter_chunk(module, t)
    _filter(module, t, chunk, module.globals[abi.PARALLEL_FOR.symbol])


def declare_conv_filter(module: ir.Module) -> ir.Function:
    existing = module.globals.get(FILTER)
    return existing if existing is not None else ir.Function(module, FILTER_FN, FILTER)
