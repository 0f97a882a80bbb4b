"""3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3): 16 products of
depth C per 2x2 block of outputs instead of 36 (2.25x fewer multiply-adds), as oneDNN's
and NNPACK's Winograd convolutions do; and their kernel gradients, by the adjoint.

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A    (d: a 4x4 input tile, g: the 3x3 kernel)

``kc_sconv`` (``codegen.library.conv``) takes this path for a 3x3 kernel of stride and dilation
1 (any padding) with at least ``MIN_CHANNELS`` channels in and out, and
``kc_sconv_filter`` its gradient. The kernel's 16 transforms U[ξ] (C x F) are packed
once per call into the GEMM's ``C x NR`` panels. Threads split the output rows in pairs
(a pair of rows is a row of 2x2 tiles); a chunk runs its pairs in blocks whose
transforms stay in L2: the block's input tiles go to V[ξ] (tiles x C, one row per tile,
each ξ an odd number of cache lines from the next), then the 16 products M[ξ] =
V[ξ]·U[ξ] run through the GEMM's row-pointer micro-kernel (``kc_ukr_rows{MR}``), then
the output transform writes the block's rows of C and the epilogue runs on them, row
tile by row tile in row order (so column sums add in the order of the direct path's).
With ``COLUMNS_OWNED`` a chunk starts on a ``SUM_SPAN`` boundary (an even number of
output rows); an odd one takes the direct path. A 2x2 max pooling over an even result
(``POOLED``): each tile of outputs is one window, written to a buffer in window order
for the pooling epilogue (other poolings take the direct path).
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.library.gemm import (
    ACCUMULATE,
    COLUMNS_OWNED,
    EPILOGUE_FN,
    Tile,
    _ceil_div,
    _declare,
    _dispatch,
    _gep,
    _masked_load,
    _min,
    _splat,
    _vec,
)
from kcompile.codegen.library.parallel import CHUNK_FN
from kcompile.codegen.loops import F32, I32, I64, PTR, for_range, for_reduce, i64
from kcompile.ir import abi

SYMBOL = "kc_sconv_winograd"
# Whether kc_sconv takes this path where it applies (off only to measure against).
ENABLED = True
# Channels in and out below which the direct path runs (the products would be too
# shallow or too narrow for the transforms to pay).
MIN_CHANNELS = 16
# A block's V and M ([16, tiles, C] and [16, tiles, F] floats) kept to about this many
# floats, so that they stay in L2 with the kernel's transforms.
BLOCK_FLOATS = 192 * 1024
_JOB = (
    *("N", "H", "W", "C", "OH", "OW", "F", "PT", "PL"),
    *("X", "U", "Cm", "flags", "epi", "ctx", "TW", "PAIRS", "P", "per_chunk"),
    *("block_pairs", "tmax", "panels", "span_rows"),
    *("dY", "parts"),  # the kernel gradient's: dY, and the chunks' partial products
    "pooled",  # rows in 2x2 pooling-window order, each tile's four outputs one window
)
JOB = ir.ArrayType(I64, len(_JOB))


def applies(b: ir.IRBuilder, g: dict, flags: ir.Value, pooled_bit: int) -> ir.Value:
    """Whether a convolution of geometry ``g`` (the i64s of ``codegen.library.conv.GEOMETRY``)
    and ``flags`` takes this path."""
    one = i64(1)

    def eq(name, value):
        return b.icmp_signed("==", g[name], value)

    pooled = b.icmp_unsigned("!=", b.and_(flags, i64(pooled_bit)), i64(0))
    owned = b.icmp_unsigned("!=", b.and_(flags, i64(COLUMNS_OWNED)), i64(0))
    # Column sums need chunks on span boundaries: pairs of rows must tile the images.
    odd = b.icmp_unsigned("!=", b.and_(g["OH"], one), i64(0))
    span_ok = b.not_(b.and_(owned, odd))
    # Pooled: 2x2 windows over an even result, each window one tile of outputs.
    even = b.icmp_unsigned("==", b.and_(b.or_(g["OH"], g["OW"]), one), i64(0))
    windows = b.and_(b.and_(eq("PH", i64(2)), eq("PW", i64(2))), even)
    pooling_ok = b.or_(b.not_(pooled), windows)
    return b.and_(filter_applies(b, g), b.and_(pooling_ok, span_ok))


def _field(b: ir.IRBuilder, job, name: str) -> ir.Value:
    return b.load(b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB), typ=I64)


def _masked_store(module: ir.Module, t: Tile) -> ir.Function:
    vec = _vec(t)
    mask_t = ir.VectorType(ir.IntType(1), t.vw)
    return _declare(
        module,
        f"llvm.masked.store.v{t.vw}f32.p0",
        ir.FunctionType(ir.VoidType(), [vec, PTR, I32, mask_t]),
    )


def _lanes_below(b: ir.IRBuilder, t: Tile, count: ir.Value) -> ir.Value:
    lanes = ir.Constant(ir.VectorType(I64, t.vw), list(range(t.vw)))
    return b.icmp_signed("<", lanes, _splat(b, count, t.vw))


def _output_tile(b: ir.IRBuilder, g: dict, n, ty, tx):
    """Output tile (ty, tx) of image n: which of its 2x2 outputs lie inside the result
    (``inside[a][c]``, row a, column c; past the edge on odd sizes), and the flat index
    of the first pixel of each of its two output rows."""
    oh0, ow0 = b.mul(ty, i64(2)), b.mul(tx, i64(2))
    inside = [
        [
            b.and_(
                b.icmp_signed("<", b.add(oh0, i64(a)), g["OH"]),
                b.icmp_signed("<", b.add(ow0, i64(c)), g["OW"]),
            )
            for c in range(2)
        ]
        for a in range(2)
    ]
    rows = [
        b.add(b.mul(b.add(b.mul(n, g["OH"]), b.add(oh0, i64(a))), g["OW"]), ow0) for a in range(2)
    ]
    return inside, rows


def _input_transform(b: ir.IRBuilder, d: list[list[ir.Value]]) -> list[ir.Value]:
    """Bᵀ d B for a 4x4 tile of vectors: 16 values, ξ = 4 i + j."""

    def rows(x):
        return [b.fsub(x[0], x[2]), b.fadd(x[1], x[2]), b.fsub(x[2], x[1]), b.fsub(x[1], x[3])]

    cols = [rows([d[i][j] for i in range(4)]) for j in range(4)]  # cols[j][i]
    out = []
    for i in range(4):
        out += rows([cols[j][i] for j in range(4)])
    return out


def _output_transform(b: ir.IRBuilder, m: list[ir.Value]) -> list[ir.Value]:
    """Aᵀ m A for 16 values (ξ = 4 i + j): the 2x2 outputs y00, y01, y10, y11."""

    def rows(x):
        return [b.fadd(b.fadd(x[0], x[1]), x[2]), b.fsub(b.fsub(x[1], x[2]), x[3])]

    cols = [rows([m[4 * i + j] for i in range(4)]) for j in range(4)]  # cols[j][a]
    out = []
    for a in range(2):
        out += rows([cols[j][a] for j in range(4)])
    return out


def _gradient_transform(b: ir.IRBuilder, y: list[list[ir.Value]]) -> list[ir.Value]:
    """A dy Aᵀ for a 2x2 tile of dY: 16 values, ξ = 4 i + j (A = (Aᵀ)ᵀ, 4 x 2)."""

    def rows(x):
        return [x[0], b.fadd(x[0], x[1]), b.fsub(x[0], x[1]), b.fneg(x[1])]

    cols = [rows([y[a][c] for a in range(2)]) for c in range(2)]  # cols[c][i]
    out = []
    for i in range(4):
        out += rows([cols[c][i] for c in range(2)])
    return out


def _filter_output_transform(b: ir.IRBuilder, m: list[ir.Value], half: ir.Value) -> list:
    """Gᵀ m G for 16 values (ξ = 4 i + j): the 3x3 kernel gradient, kh-major."""

    def rows(x):
        s = b.fmul(b.fadd(x[1], x[2]), half)
        return [b.fadd(x[0], s), b.fmul(b.fsub(x[1], x[2]), half), b.fadd(s, x[3])]

    cols = [rows([m[4 * i + j] for i in range(4)]) for j in range(4)]  # cols[j][kh]
    out = []
    for kh in range(3):
        out += rows([cols[j][kh] for j in range(4)])
    return out


def _kernel_transform(b: ir.IRBuilder, g: list[list[ir.Value]], half: ir.Value) -> list:
    """G g Gᵀ for a 3x3 kernel of vectors: 16 values, ξ = 4 i + j."""

    def rows(x):
        s = b.fadd(x[0], x[2])
        return [x[0], b.fmul(b.fadd(s, x[1]), half), b.fmul(b.fsub(s, x[1]), half), x[2]]

    cols = [rows([g[i][j] for i in range(3)]) for j in range(3)]  # cols[j][i]
    out = []
    for i in range(4):
        out += rows([cols[j][i] for j in range(3)])
    return out


def _pack_kernel(b: ir.IRBuilder, module: ir.Module, t: Tile, w, u, c, f, panels) -> None:
    """U[ξ] = G g Gᵀ for every channel pair, as ``panels`` panels of ``C x NR`` per ξ
    (``u`` zeroed: the last panel's columns past F stay zero)."""
    load, store = _masked_load(module, t), _masked_store(module, t)
    vec = _vec(t)
    align = ir.Constant(I32, 4)
    half = ir.Constant(vec, [0.5] * t.vw)
    vectors = _ceil_div(b, f, i64(t.vw))
    with for_range(b, c, "wc") as ch, for_range(b, vectors, "wf") as fv:
        f0 = b.mul(fv, i64(t.vw))
        mask = _lanes_below(b, t, b.sub(f, f0))
        taps = [
            [
                b.call(
                    load,
                    [
                        _gep(b, w, b.add(b.mul(b.add(b.mul(i64(3 * kh + kw), c), ch), f), f0)),
                        align,
                        mask,
                        ir.Constant(vec, None),
                    ],
                )
                for kw in range(3)
            ]
            for kh in range(3)
        ]
        values = _kernel_transform(b, taps, half)
        panel, lane = b.udiv(f0, i64(t.nr)), b.urem(f0, i64(t.nr))
        for xi, value in enumerate(values):
            at = b.add(b.mul(b.add(b.mul(i64(xi), panels), panel), c), ch)
            at = b.add(b.mul(at, i64(t.nr)), lane)
            b.call(store, [value, _gep(b, u, at), align, mask])


def _inputs_to_v(b: ir.IRBuilder, module: ir.Module, t: Tile, g: dict, x, v_buf, v_stride, b0, b1):
    """The input tiles of pairs ``[b0, b1)`` into V[ξ][tile][C] (Bᵀ d B; zeros for
    pixels in the padding). ``g``: the job's fields."""
    c, tw, pairs = g["C"], g["TW"], g["PAIRS"]
    vec = _vec(t)
    load, store = _masked_load(module, t), _masked_store(module, t)
    align = ir.Constant(I32, 4)
    zero = ir.Constant(vec, None)
    channel_vectors = _ceil_div(b, c, i64(t.vw))
    whole_c = b.icmp_signed("==", b.urem(c, i64(t.vw)), i64(0))

    def pair_of(pair):
        return b.udiv(pair, pairs), b.urem(pair, pairs)

    with (
        for_range(b, b.sub(b1, b0), "wq") as q,
        for_range(b, tw, "wx") as tx,
    ):
        n, ty = pair_of(b.add(b0, q))
        tile = b.add(b.mul(q, tw), tx)
        y0 = b.sub(b.mul(ty, i64(2)), g["PT"])
        x0 = b.sub(b.mul(tx, i64(2)), g["PL"])
        ys = [b.add(y0, i64(i)) for i in range(4)]
        xs = [b.add(x0, i64(j)) for j in range(4)]
        # Unsigned compares: a negative row or column is past the end too.
        row_in = [b.icmp_unsigned("<", y, g["H"]) for y in ys]
        col_in = [b.icmp_unsigned("<", xx, g["W"]) for xx in xs]
        image_row = b.mul(n, g["H"])
        corners = b.and_(b.and_(row_in[0], row_in[3]), b.and_(col_in[0], col_in[3]))

        def tile_in(fast: bool) -> None:
            """A tile's channels; ``fast``: all 16 pixels inside, whole vectors."""
            with for_range(b, channel_vectors, "wc") as cv:
                c0 = b.mul(cv, i64(t.vw))
                lanes = _lanes_below(b, t, b.sub(c, c0))
                d = []
                for i in range(4):
                    row = []
                    for j in range(4):
                        inside = b.and_(row_in[i], col_in[j])
                        pixel = b.add(b.mul(b.add(image_row, ys[i]), g["W"]), xs[j])
                        at = b.add(b.mul(pixel, c), c0)
                        if fast:
                            row.append(b.load(_gep(b, x, at), typ=vec, align=4))
                            continue
                        at = b.select(inside, at, i64(0))
                        mask = b.and_(lanes, _splat(b, inside, t.vw))
                        row.append(b.call(load, [_gep(b, x, at), align, mask, zero]))
                    d.append(row)
                for xi, value in enumerate(_input_transform(b, d)):
                    at = b.add(b.mul(i64(xi), v_stride), b.add(b.mul(tile, c), c0))
                    if fast:
                        b.store(value, _gep(b, v_buf, at), align=4)
                    else:
                        b.call(store, [value, _gep(b, v_buf, at), align, lanes])

        with b.if_else(b.and_(corners, whole_c)) as (fast, checked):
            with fast:
                tile_in(True)
            with checked:
                tile_in(False)


def _chunk(module: ir.Module, t: Tile) -> ir.Function:
    """``chunk(job, i)``: pairs of output rows ``[i*P, (i+1)*P)`` (pairs counted over all
    images), block by block."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_winograd_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    x, u, cm = (b.inttoptr(g[name], PTR) for name in ("X", "U", "Cm"))
    epilogue = b.inttoptr(g["epi"], ir.PointerType(EPILOGUE_FN))
    has_epilogue = b.icmp_unsigned("!=", g["epi"], i64(0))
    ctx = g["ctx"]
    c, f, tw, pairs, tmax, panels = (g[k] for k in ("C", "F", "TW", "PAIRS", "tmax", "panels"))
    fpad = b.mul(panels, i64(t.nr))
    accumulate = b.icmp_unsigned("!=", b.and_(g["flags"], i64(ACCUMULATE)), i64(0))
    kernel = module.globals[f"kc_ukr_rows{t.mr}"]
    vec = _vec(t)
    load, store = _masked_load(module, t), _masked_store(module, t)
    align = ir.Constant(I32, 4)
    zero = ir.Constant(vec, None)
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    # V's rows past a block's last tile are read by the last sliver: zero at first,
    # later a previous block's (finite) values, whose products are never stored.
    v_stride, v_buf = _sixteen_blocks(b, calloc, t, b.mul(tmax, c))
    m_stride, m_buf = _sixteen_blocks(b, calloc, t, b.mul(tmax, fpad))
    # Pooled: the block's outputs in window order, for the epilogue to pool.
    pooled = b.icmp_unsigned("!=", g["pooled"], i64(0))
    pool_floats = b.select(pooled, b.mul(b.mul(tmax, i64(4)), f), i64(0))
    pool_buf = b.call(calloc, [b.add(pool_floats, i64(t.vw)), i64(4)])
    g0 = b.mul(index, g["per_chunk"])
    g1 = _min(b, g["P"], b.add(g0, g["per_chunk"]))
    bp = g["block_pairs"]
    blocks = _ceil_div(b, b.sub(g1, g0), bp)
    out_vectors = _ceil_div(b, f, i64(t.vw))
    plain_f = b.and_(b.icmp_signed("==", b.urem(f, i64(t.vw)), i64(0)), b.not_(accumulate))

    def pair_of(pair):
        return b.udiv(pair, pairs), b.urem(pair, pairs)

    with b.if_then(b.icmp_signed(">", g1, g0)), for_range(b, blocks, "wb") as blk:
        b0 = b.add(g0, b.mul(blk, bp))
        b1 = _min(b, g1, b.add(b0, bp))
        tiles = b.mul(b.sub(b1, b0), tw)
        # Input tiles into V[ξ][tile][C].
        _inputs_to_v(b, module, t, g, x, v_buf, v_stride, b0, b1)
        # The 16 products M[ξ] = V[ξ]·U[ξ], full tiles (rows past the block's end and
        # columns past F are computed and never read).
        slivers = _ceil_div(b, tiles, i64(t.mr))
        with (
            for_range(b, i64(16), "wxi") as xi,
            for_range(b, panels, "wp") as jp,
            for_range(b, slivers, "ws") as s,
        ):
            row0 = b.mul(s, i64(t.mr))
            a = _gep(b, v_buf, b.add(b.mul(xi, v_stride), b.mul(row0, c)))
            panel = _gep(b, u, b.mul(b.mul(b.add(b.mul(xi, panels), jp), c), i64(t.nr)))
            out = b.add(b.mul(xi, m_stride), b.add(b.mul(row0, fpad), b.mul(jp, i64(t.nr))))
            out = _gep(b, m_buf, out)
            b.call(kernel, [c, a, c, panel, i64(t.nr), out, fpad, i64(t.nr), i64(0)])
        # Output tiles into C.
        with (
            for_range(b, b.sub(b1, b0), "wo") as q,
            for_range(b, tw, "wy") as tx,
        ):
            n, ty = pair_of(b.add(b0, q))
            tile = b.add(b.mul(q, tw), tx)
            inside, rows = _output_tile(b, g, n, ty, tx)
            keep = [k for row in inside for k in row]
            every = b.and_(b.and_(keep[0], keep[1]), b.and_(keep[2], keep[3]))

            def tile_out(fast: bool) -> None:
                """A tile's columns; ``fast``: all four outputs kept, whole vectors, C
                overwritten."""
                with for_range(b, out_vectors, "wf") as fv:
                    f0 = b.mul(fv, i64(t.vw))
                    lanes = _lanes_below(b, t, b.sub(f, f0))
                    m = []
                    for xi in range(16):
                        at = b.add(b.mul(i64(xi), m_stride), b.add(b.mul(tile, fpad), f0))
                        m.append(b.load(_gep(b, m_buf, at), typ=vec, align=4))
                    for k, value in enumerate(_output_transform(b, m)):
                        a_, c_ = divmod(k, 2)
                        at = b.gep(cm, [b.add(b.mul(b.add(rows[a_], i64(c_)), f), f0)],
                                   source_etype=F32)  # fmt: skip
                        window = b.add(b.mul(b.add(b.mul(tile, i64(4)), i64(k)), f), f0)
                        at = b.select(pooled, _gep(b, pool_buf, window), at)
                        if fast:
                            b.store(value, at, align=4)
                            continue
                        mask = b.and_(lanes, _splat(b, keep[k], t.vw))
                        adding = b.and_(mask, _splat(b, accumulate, t.vw))
                        old = b.call(load, [at, align, adding, zero])
                        b.call(store, [b.fadd(value, old), at, align, mask])

            with b.if_else(b.and_(every, plain_f)) as (fast, checked):
                with fast:
                    tile_out(True)
                with checked:
                    tile_out(False)
        # The epilogue on the block's rows, MR at a time, in row order.
        n0, ty0 = pair_of(b0)
        n1, ty1 = pair_of(b.sub(b1, i64(1)))
        r0 = b.mul(b.add(b.mul(n0, g["OH"]), b.mul(ty0, i64(2))), g["OW"])
        last = _min(b, g["OH"], b.add(b.mul(ty1, i64(2)), i64(2)))
        r1 = b.mul(b.add(b.mul(n1, g["OH"]), last), g["OW"])
        # Pooled, rows count windows' outputs: pair p's are [4 TW p, 4 TW (p + 1)).
        r0 = b.select(pooled, b.mul(b.mul(b0, tw), i64(4)), r0)
        r1 = b.select(pooled, b.mul(b.mul(b1, tw), i64(4)), r1)
        row_tiles = _ceil_div(b, b.sub(r1, r0), i64(t.mr))
        with (
            b.if_then(has_epilogue),
            for_range(b, row_tiles, "we") as rt,
            for_range(b, panels, "wj") as jp,
        ):
            i0 = b.add(r0, b.mul(rt, i64(t.mr)))
            count = _min(b, i64(t.mr), b.sub(r1, i0))
            j0 = b.mul(jp, i64(t.nr))
            nr = _min(b, i64(t.nr), b.sub(f, j0))
            tile_rows = _gep(b, pool_buf, b.mul(b.mul(rt, i64(t.mr)), f))
            c_at = b.ptrtoint(b.select(pooled, tile_rows, cm), I64)
            b.call(epilogue, [b.inttoptr(ctx, PTR), c_at, f, i0, j0, count, nr])
    b.call(free, [v_buf])
    b.call(free, [m_buf])
    b.call(free, [pool_buf])
    b.ret_void()
    return fn


def add_winograd(
    module: ir.Module,
    t: Tile,
    fn_type: ir.FunctionType,
    geometry_names: tuple[str, ...],
    span_rows: int,
    min_macs: int,
    pooled_bit: int,
) -> ir.Function:
    """Define ``kc_sconv_winograd(ptr geometry, ptr X, ptr W, ptr C, i64 flags, ptr epi,
    ptr ctx)`` (of type ``fn_type``; C not null; visible, so tests can call it) in ``module``, which must hold
    the thread pool and the GEMM's micro-kernels. ``geometry_names``: the i64s at
    ``geometry`` (``codegen.library.conv.GEOMETRY``); ``span_rows``:
    ``codegen.library.conv.SUM_SPAN``;
    ``min_macs``: below this many multiply-adds one thread runs it all; ``pooled_bit``:
    ``codegen.library.conv.POOLED``."""
    chunk = _chunk(module, t)
    fn = ir.Function(module, fn_type, SYMBOL)
    geometry, x, w, cm, flags, epi, ctx = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {
        name: b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
        for i, name in enumerate(geometry_names)
    }
    job = b.alloca(JOB, name="job")
    job.align = 16
    job.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    c, f = g["C"], g["F"]
    panels = _ceil_div(b, f, i64(t.nr))
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    u = b.call(
        calloc, [b.add(b.mul(b.mul(i64(16), panels), b.mul(c, i64(t.nr))), i64(t.vw)), i64(4)]
    )
    _pack_kernel(b, module, t, w, u, c, f, panels)
    tw = _ceil_div(b, g["OW"], i64(2))
    pairs = _ceil_div(b, g["OH"], i64(2))
    total = b.mul(g["N"], pairs)
    # Tiles per block: V and M within BLOCK_FLOATS, at least one sliver.
    per_tile = b.mul(i64(16), b.add(c, b.mul(panels, i64(t.nr))))
    want = b.udiv(i64(BLOCK_FLOATS), per_tile)
    block_pairs = b.udiv(want, tw)
    block_pairs = b.select(b.icmp_signed("<", block_pairs, i64(1)), i64(1), block_pairs)
    tmax = b.mul(_ceil_div(b, b.mul(block_pairs, tw), i64(t.mr)), i64(t.mr))
    threads = b.zext(b.call(module.globals[abi.GET_THREADS.symbol], []), I64)
    macs = b.mul(b.mul(b.mul(b.mul(g["N"], g["OH"]), g["OW"]), f), b.mul(c, i64(9)))
    alone = b.icmp_signed("<", macs, i64(min_macs))
    # Several chunks a thread (a late thread is not waited for), each of whole blocks.
    chunks = b.select(alone, i64(1), b.mul(threads, i64(4)))
    per_chunk = _ceil_div(b, total, chunks)
    per_chunk = b.mul(_ceil_div(b, per_chunk, block_pairs), block_pairs)
    per_chunk = _min(b, per_chunk, _ceil_div(b, total, b.select(alone, i64(1), threads)))
    per_chunk = b.select(b.icmp_signed("<", per_chunk, i64(1)), i64(1), per_chunk)
    # Column sums: a chunk starts on a span's first row (pairs of OW rows: OH is even).
    owned = b.icmp_unsigned("!=", b.and_(flags, i64(COLUMNS_OWNED)), i64(0))
    pair_rows = b.mul(g["OW"], i64(2))
    unit = b.udiv(i64(span_rows), _gcd(b, i64(span_rows), pair_rows))
    rounded = b.mul(_ceil_div(b, per_chunk, unit), unit)
    per_chunk = b.select(owned, rounded, per_chunk)
    chunks = _ceil_div(b, total, per_chunk)
    fields = {
        **{name: g[name] for name in ("N", "H", "W", "C", "OH", "OW", "F", "PT", "PL")},
        "X": b.ptrtoint(x, I64),
        "U": b.ptrtoint(u, I64),
        "Cm": b.ptrtoint(cm, I64),
        "flags": flags,
        "epi": b.ptrtoint(epi, I64),
        "ctx": b.ptrtoint(ctx, I64),
        "TW": tw,
        "PAIRS": pairs,
        "P": total,
        "per_chunk": per_chunk,
        "block_pairs": block_pairs,
        "tmax": tmax,
        "panels": panels,
        "span_rows": i64(span_rows),
        "pooled": b.zext(b.icmp_unsigned("!=", b.and_(flags, i64(pooled_bit)), i64(0)), I64),
    }
    for name, value in fields.items():
        b.store(value, b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB))
    b.call(module.globals[abi.PARALLEL_FOR.symbol], [chunk, job, chunks])
    b.call(free, [u])
    b.ret_void()
    return fn


def _sixteen_blocks(b: ir.IRBuilder, calloc, t: Tile, floats: ir.Value):
    """(stride, zeroed buffer) of the 16 transformed blocks (one a ξ) of ``floats`` each,
    and a vector past the last: the blocks an odd number of cache lines apart, since a
    power of two apart the 16 stores (and loads) of one tile fell in one set of L1
    (measured: the input transform took as long as the products at 32 channels)."""
    stride = _odd_lines(b, floats)
    return stride, b.call(calloc, [b.add(b.mul(i64(16), stride), i64(t.vw)), i64(4)])


def _odd_lines(b: ir.IRBuilder, floats: ir.Value) -> ir.Value:
    """``floats`` rounded up to an odd number of 64-byte lines (in floats)."""
    lines = b.or_(_ceil_div(b, floats, i64(16)), i64(1))
    return b.mul(lines, i64(16))


def _gcd(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """gcd(x, y) of positive i64s, by Euclid's loop."""
    fn = b.function
    head = fn.append_basic_block("gcd.head")
    body = fn.append_basic_block("gcd.body")
    done = fn.append_basic_block("gcd.done")
    entry = b.block
    b.branch(head)
    b.position_at_end(head)
    p = b.phi(I64)
    q = b.phi(I64)
    p.add_incoming(x, entry)
    q.add_incoming(y, entry)
    b.cbranch(b.icmp_signed("==", q, i64(0)), done, body)
    b.position_at_end(body)
    p.add_incoming(q, body)
    q.add_incoming(b.urem(p, q), body)
    b.branch(head)
    b.position_at_end(done)
    return p


# --- the kernel's gradient -------------------------------------------------------------
#
# dW = Gᵀ [ (Bᵀ d B) ⊙ (A dY Aᵀ) ] G summed over the tiles: the forward algorithm's
# adjoint in the kernel. Per ξ the sum over tiles is a product of depth tiles, V[ξ]ᵀ·Ŷ[ξ]
# (C x F), through the GEMM's micro-kernel (A read transposed in place). Chunks of pairs
# (their number set by the size, not the threads) sum into partial products of their
# own, added in chunk order at the end: the same bits on any number of threads.

FILTER_SYMBOL = "kc_sconv_filter_winograd"
# Chunks of the kernel gradient at most (each costs a 16 x C x F partial to zero and
# add); beyond two, only as many as sum PARTIAL_TILES transformed rows (16 a tile) or
# more per float of their partial.
FILTER_CHUNKS = 8
PARTIAL_TILES = 1


def filter_applies(b: ir.IRBuilder, g: dict) -> ir.Value:
    """Whether the kernel gradient of a convolution of geometry ``g`` takes this path:
    a 3x3 kernel at stride and dilation 1 over at least ``MIN_CHANNELS`` channels in and
    out (the forward's path asks that too, ``applies``)."""
    one = i64(1)

    def eq(name, value):
        return b.icmp_signed("==", g[name], value)

    shape = b.and_(b.and_(eq("KH", i64(3)), eq("KW", i64(3))), b.and_(eq("SH", one), eq("SW", one)))
    shape = b.and_(shape, b.and_(eq("DH", one), eq("DW", one)))
    wide = b.and_(
        b.icmp_signed(">=", g["C"], i64(MIN_CHANNELS)),
        b.icmp_signed(">=", g["F"], i64(MIN_CHANNELS)),
    )
    return b.and_(b.and_(shape, wide), ir.Constant(ir.IntType(1), int(ENABLED)))


def _filter_chunk(module: ir.Module, t: Tile) -> ir.Function:
    """``chunk(job, i)``: the tiles of pairs ``[i*P, (i+1)*P)`` into partial ``i``
    ([16][C][F rounded up to panels])."""
    fn = ir.Function(module, CHUNK_FN, "kc_conv_winograd_filter_chunk")
    fn.linkage = "internal"
    job, index = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {name: _field(b, job, name) for name in _JOB}
    x, dy, parts = (b.inttoptr(g[name], PTR) for name in ("X", "dY", "parts"))
    c, f, tw, pairs, tmax, panels = (g[k] for k in ("C", "F", "TW", "PAIRS", "tmax", "panels"))
    fpad = b.mul(panels, i64(t.nr))
    part = _gep(b, parts, b.mul(index, b.mul(b.mul(i64(16), c), fpad)))
    kernels = [module.globals[f"kc_ukr{r}"] for r in range(1, t.mr + 1)]
    vec = _vec(t)
    load = _masked_load(module, t)
    align = ir.Constant(I32, 4)
    zero = ir.Constant(vec, None)
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    v_stride, v_buf = _sixteen_blocks(b, calloc, t, b.mul(tmax, c))
    y_stride, y_buf = _sixteen_blocks(b, calloc, t, b.mul(tmax, fpad))
    g0 = b.mul(index, g["per_chunk"])
    g1 = _min(b, g["P"], b.add(g0, g["per_chunk"]))
    bp = g["block_pairs"]
    blocks = _ceil_div(b, b.sub(g1, g0), bp)
    out_vectors = _ceil_div(b, f, i64(t.vw))
    slivers = _ceil_div(b, c, i64(t.mr))
    with b.if_then(b.icmp_signed(">", g1, g0)), for_range(b, blocks, "fb") as blk:
        b0 = b.add(g0, b.mul(blk, bp))
        b1 = _min(b, g1, b.add(b0, bp))
        tiles = b.mul(b.sub(b1, b0), tw)
        _inputs_to_v(b, module, t, g, x, v_buf, v_stride, b0, b1)
        # dY's 2x2 tiles into Ŷ[ξ][tile][F] (zeros past the output's edge and past F).
        with for_range(b, b.sub(b1, b0), "fq") as q, for_range(b, tw, "fx") as tx:
            pair = b.add(b0, q)
            n, ty = b.udiv(pair, pairs), b.urem(pair, pairs)
            tile = b.add(b.mul(q, tw), tx)
            keep, rows = _output_tile(b, g, n, ty, tx)
            with for_range(b, out_vectors, "ff") as fv:
                f0 = b.mul(fv, i64(t.vw))
                lanes = _lanes_below(b, t, b.sub(f, f0))
                y = []
                for a_ in range(2):
                    row = []
                    for c_ in range(2):
                        at = b.add(b.mul(b.add(rows[a_], i64(c_)), f), f0)
                        at = b.select(keep[a_][c_], at, i64(0))
                        mask = b.and_(lanes, _splat(b, keep[a_][c_], t.vw))
                        row.append(b.call(load, [_gep(b, dy, at), align, mask, zero]))
                    y.append(row)
                for xi, value in enumerate(_gradient_transform(b, y)):
                    at = b.add(b.mul(i64(xi), y_stride), b.add(b.mul(tile, fpad), f0))
                    b.store(value, _gep(b, y_buf, at), align=4)
        # partial[ξ] += V[ξ]ᵀ·Ŷ[ξ], MR channels by NR columns a tile.
        with (
            for_range(b, i64(16), "fxi") as xi,
            for_range(b, slivers, "fs") as sl,
            for_range(b, panels, "fp") as jp,
        ):
            c0 = b.mul(sl, i64(t.mr))
            count = _min(b, i64(t.mr), b.sub(c, c0))
            a = _gep(b, v_buf, b.add(b.mul(xi, v_stride), c0))
            bm = _gep(b, y_buf, b.add(b.mul(xi, y_stride), b.mul(jp, i64(t.nr))))
            at = b.add(b.mul(b.add(b.mul(xi, c), c0), fpad), b.mul(jp, i64(t.nr)))
            args = [tiles, a, c, bm, fpad, _gep(b, part, at), fpad, i64(t.nr), i64(1)]
            _dispatch(b, count, kernels, args, inline_short=False)
    b.call(free, [v_buf])
    b.call(free, [y_buf])
    b.ret_void()
    return fn


def add_winograd_filter(
    module: ir.Module, t: Tile, fn_type: ir.FunctionType, geometry_names: tuple[str, ...]
) -> ir.Function:
    """Define ``kc_sconv_filter_winograd(ptr geometry, ptr X, ptr dY, ptr dW, i64 flags)``
    (of type ``fn_type``; visible, so tests can call it) in ``module``, which must hold
    the thread pool and the GEMM's micro-kernels."""
    chunk = _filter_chunk(module, t)
    fn = ir.Function(module, fn_type, FILTER_SYMBOL)
    geometry, x, dy, dw, flags = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    g = {
        name: b.load(b.gep(geometry, [i64(i)], source_etype=I64), typ=I64)
        for i, name in enumerate(geometry_names)
    }
    job = b.alloca(JOB, name="job")
    job.align = 16
    job.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    c, f = g["C"], g["F"]
    panels = _ceil_div(b, f, i64(t.nr))
    fpad = b.mul(panels, i64(t.nr))
    tw = _ceil_div(b, g["OW"], i64(2))
    pairs = _ceil_div(b, g["OH"], i64(2))
    total = b.mul(g["N"], pairs)
    per_tile = b.mul(i64(16), b.add(c, fpad))
    block_pairs = b.udiv(b.udiv(i64(BLOCK_FLOATS), per_tile), tw)
    block_pairs = b.select(b.icmp_signed("<", block_pairs, i64(1)), i64(1), block_pairs)
    tmax = b.mul(block_pairs, tw)
    # Fewer chunks where a partial is large next to the tiles it sums (deep and wide
    # kernels over small images: zeroing and adding eight 1 MB partials of a 128 x 128
    # kernel took a quarter of its gradient's time), never by the thread count.
    part_floats = b.mul(b.mul(i64(16), c), fpad)
    worth = b.udiv(b.mul(b.mul(total, tw), i64(16 * PARTIAL_TILES)), part_floats)
    chunks = _min(b, i64(FILTER_CHUNKS), _ceil_div(b, total, block_pairs))
    chunks = _min(b, chunks, b.select(b.icmp_signed("<", worth, i64(2)), i64(2), worth))
    per_chunk = _ceil_div(b, total, chunks)
    chunks = _ceil_div(b, total, per_chunk)
    calloc = _declare(module, "calloc", ir.FunctionType(PTR, [I64, I64]))
    free = _declare(module, "free", ir.FunctionType(ir.VoidType(), [PTR]))
    parts = b.call(calloc, [b.add(b.mul(chunks, part_floats), i64(t.vw)), i64(4)])
    fields = {
        **{name: g[name] for name in ("N", "H", "W", "C", "OH", "OW", "F", "PT", "PL")},
        "X": b.ptrtoint(x, I64),
        "dY": b.ptrtoint(dy, I64),
        "parts": b.ptrtoint(parts, I64),
        "TW": tw,
        "PAIRS": pairs,
        "P": total,
        "per_chunk": per_chunk,
        "block_pairs": block_pairs,
        "tmax": tmax,
        "panels": panels,
    }
    for name, value in fields.items():
        b.store(value, b.gep(job, [i64(0), i64(_JOB.index(name))], source_etype=JOB))
    b.call(module.globals[abi.PARALLEL_FOR.symbol], [chunk, job, chunks])
    # dW (+)= Gᵀ (the partials' sum, in chunk order) G.
    vec = _vec(t)
    load, store = _masked_load(module, t), _masked_store(module, t)
    align = ir.Constant(I32, 4)
    half = ir.Constant(vec, [0.5] * t.vw)
    accumulate = b.icmp_unsigned("!=", b.and_(flags, i64(ACCUMULATE)), i64(0))
    with for_range(b, c, "oc") as ch, for_range(b, _ceil_div(b, f, i64(t.vw)), "of") as fv:
        f0 = b.mul(fv, i64(t.vw))
        lanes = _lanes_below(b, t, b.sub(f, f0))
        m = []
        for xi in range(16):
            at = b.add(b.mul(b.add(b.mul(i64(xi), c), ch), fpad), f0)
            total_xi = b.load(_gep(b, parts, at), typ=vec, align=4)
            with for_reduce(b, b.sub(chunks, i64(1)), [total_xi], "ok") as (k, acc):
                later = b.add(b.mul(b.add(k, i64(1)), part_floats), at)
                acc[0] = b.fadd(acc[0], b.load(_gep(b, parts, later), typ=vec, align=4))
            m.append(acc[0])
        for tap, value in enumerate(_filter_output_transform(b, m, half)):
            at = _gep(b, dw, b.add(b.mul(b.add(b.mul(i64(tap), c), ch), f), f0))
            adding = b.and_(lanes, _splat(b, accumulate, t.vw))
            old = b.call(load, [at, align, adding, ir.Constant(vec, None)])
            b.call(store, [b.fadd(value, old), at, align, lanes])
    b.call(free, [parts])
    b.ret_void()
    return fn
