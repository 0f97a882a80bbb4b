"""Small matrix products of static shape, emitted for the shapes at hand: attention's
per-head products (128 x 128 x 32, 128 x 32 x 128, ...), of which ``batch_matmul`` runs
hundreds per call.

    void kc_small_MxNxK(ptr A, i64 rsA, i64 csA, ptr B, i64 rsB, i64 csB, ptr C, i64 ldc,
                        float alpha)

computes ``C[i, j] = alpha * sum_k A[i*rsA + k*csA] * B[k*rsB + j*csB]`` on the calling thread
(``batch_matmul`` is split across threads by batch rows already). Against one call of
the runtime's GEMM per matrix, it sets up no job, packs A not at all (a row's element is
broadcast straight from A) and B once: into a ``K x NP`` block on the stack (NP: N
rounded up to whole vectors, zero padded), by vectors when B's rows are contiguous and
through ``VW x VW`` register transposes when its columns are (a transposed B, as keys
are in ``q·kᵀ``). The register tile holds ``MR`` rows of up to ``NB`` vectors, MR and NB
chosen per shape so that the accumulators fill the vector registers (24 of AVX-512's 32,
12 of AVX2's 16); ragged rows get a shorter tile and ragged columns masked stores,
both resolved at compile time. A deep product (K >= 64) prefetches A a step of the depth
at a time: at attention's batch sizes A (the probabilities, their gradient: 8 MB)
streams from memory, and without it those products ran at two thirds of their speed.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.building.target import host
from kcompile.codegen.library.gemm import Tile, _transpose
from kcompile.codegen.loops import F32, I32, I64, PTR, for_range, for_reduce, i64

# Products up to this many multiply-adds, with B up to SMALL_MAX_B elements, take the
# small kernel; larger ones are worth the GEMM's blocking and threads.
SMALL_MAX_MACS = 1 << 21
SMALL_MAX_B = 1 << 14
# How far ahead along k a transposed A is prefetched; products of a shorter depth (whose
# larger stream is C: attention's scores, 128 x 128 x 32) prefetch nothing (slower with).
PREFETCH_K = 32
PREFETCH_MIN_K = 64


def host_tile() -> Tile:
    return Tile.for_host(host().has)


def fits_small(m, n, k) -> bool:
    """Whether an ``m x n x k`` product (sizes that may be symbolic) takes the small kernel."""
    if not all(isinstance(x, int) and x > 0 for x in (m, n, k)):
        return False
    vw = host_tile().vw
    padded = -(-n // vw) * vw
    return m * n * k <= SMALL_MAX_MACS and k * padded <= SMALL_MAX_B


def _declare(module: ir.Module, name: str, ftype: ir.FunctionType) -> ir.Function:
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, ftype, name)


def _splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    vec = b.insert_element(ir.Constant(ir.VectorType(value.type, width), None), value, i64(0))
    return b.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(I32, width), [0] * width))


def _gep(b: ir.IRBuilder, ptr: ir.Value, offset: ir.Value) -> ir.Value:
    return b.gep(ptr, [offset], inbounds=True, source_etype=F32)


def tile_shape(n_vectors: int, vw: int) -> tuple[int, int]:
    """(MR, NB): rows and vectors of the register tile for rows of ``n_vectors`` vectors."""
    # Accumulators, NB vectors of B and a broadcast within the register file (32 vectors
    # on AVX-512, 16 on AVX2): 24 + 4 + 1 and 12 + 2 + 1.
    budget = 24 if vw >= 16 else 12
    nb = min(n_vectors, 4 if vw >= 16 else 2)
    return max(1, min(budget // nb, 16)), nb


def b_layout(rs_b, cs_b) -> str | None:
    """How B's strides lay it out, when they are known: "rows" (contiguous rows),
    "columns" (contiguous columns: a transposed B) or "strided"; None when not known."""
    if not all(isinstance(x, int) for x in (rs_b, cs_b)):
        return None
    return "rows" if cs_b == 1 else "columns" if rs_b == 1 else "strided"


def small_product(
    module: ir.Module, m: int, n: int, k: int, vw: int | None = None, layout: str | None = None
):
    """The kernel for ``m x n x k`` (defined once per module, shape and B's ``layout``:
    only that way of packing B is emitted; None: each, chosen by B's strides at run time)."""
    vw = vw or host_tile().vw
    name = f"kc_small_{m}x{n}x{k}_v{vw}" + (f"_{layout}" if layout else "")
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    vec = ir.VectorType(F32, vw)
    mask_t = ir.VectorType(ir.IntType(1), vw)
    fma = _declare(module, f"llvm.fma.v{vw}f32", ir.FunctionType(vec, [vec, vec, vec]))
    masked_load = _declare(
        module, f"llvm.masked.load.v{vw}f32.p0", ir.FunctionType(vec, [PTR, I32, mask_t, vec])
    )
    masked_store = _declare(
        module,
        f"llvm.masked.store.v{vw}f32.p0",
        ir.FunctionType(ir.VoidType(), [vec, PTR, I32, mask_t]),
    )
    fn = ir.Function(
        module, ir.FunctionType(ir.VoidType(), [PTR, I64, I64, PTR, I64, I64, PTR, I64, F32]), name
    )
    fn.linkage = "internal"
    # Compiled once for every product of its shape (attention's forward and backward
    # share shapes); a call per matrix costs nothing next to its thousands of FMAs.
    fn.attributes.add("noinline")
    a, rs_a, cs_a, bsrc, rs_b, cs_b, c, ldc, alpha = fn.args
    for arg in (a, bsrc, c):
        arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    nv = -(-n // vw)
    np_ = nv * vw
    tail = n - (nv - 1) * vw  # lanes of the last vector
    tail_mask = ir.Constant(mask_t, [1 if lane < tail else 0 for lane in range(vw)])
    full_mask = ir.Constant(mask_t, [1] * vw)
    align = ir.Constant(I32, 4)
    zero = ir.Constant(vec, None)

    def mask_of(v: int) -> ir.Constant:
        return tail_mask if v == nv - 1 else full_mask

    packed = b.alloca(ir.ArrayType(F32, k * np_), name="packed")
    packed.align = 64
    packed.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    _pack(b, vw, vec, k, n, nv, bsrc, rs_b, cs_b, packed, masked_load, mask_of, align, layout)

    mr, nb = tile_shape(nv, vw)

    prefetch = _declare(
        module, "llvm.prefetch.p0", ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])
    )
    pf_args = [ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)]  # read, keep
    rows_contiguous = b.icmp_signed("==", cs_a, i64(1))
    pf_step = b.select(rows_contiguous, i64(16), cs_a)

    def tile(i0: ir.Value, rows: int, v0: int, vectors: int) -> None:
        rows_at = [b.mul(b.add(i0, i64(r)), rs_a) for r in range(rows)]
        # A streams from memory (attention's probabilities and their gradient, 8 MB):
        # it is prefetched a step of k at a time. With A's rows contiguous, a line of the
        # next tile's rows; otherwise (a transposed A) the line or two of this tile's
        # columns PREFETCH_K steps of k ahead.
        ahead = b.select(
            rows_contiguous,
            b.mul(b.add(i0, i64(rows)), rs_a),
            b.add(rows_at[0], b.mul(cs_a, i64(PREFETCH_K))),
        )
        last_column = b.select(rows_contiguous, i64(0), b.mul(rs_a, i64(rows - 1)))
        with for_reduce(b, i64(k), [zero] * (rows * vectors), "k") as (kk, acc):
            if k >= PREFETCH_MIN_K:
                at = b.add(ahead, b.mul(kk, pf_step))
                b.call(prefetch, [b.gep(a, [at], source_etype=F32), *pf_args])
                # (the tile's last column, on the next line or the same one)
                at = b.gep(a, [b.add(at, last_column)], source_etype=F32)
                b.call(prefetch, [at, *pf_args])
            line = b.mul(kk, i64(np_))
            bvec = [
                b.load(_gep(b, packed, b.add(line, i64((v0 + v) * vw))), typ=vec, align=4)
                for v in range(vectors)
            ]
            at = b.mul(kk, cs_a)
            for r in range(rows):
                x = _splat(b, b.load(_gep(b, a, b.add(rows_at[r], at)), typ=F32), vw)
                for v in range(vectors):
                    acc[r * vectors + v] = b.call(fma, [x, bvec[v], acc[r * vectors + v]])
        scale = _splat(b, alpha, vw)
        for r in range(rows):
            row = b.mul(b.add(i0, i64(r)), ldc)
            for v in range(vectors):
                ptr = _gep(b, c, b.add(row, i64((v0 + v) * vw)))
                value = b.fmul(acc[r * vectors + v], scale)
                if v0 + v == nv - 1 and tail < vw:
                    b.call(masked_store, [value, ptr, align, tail_mask])
                else:
                    b.store(value, ptr, align=4)

    blocks = [(v0, min(nb, nv - v0)) for v0 in range(0, nv, nb)]
    whole = m // mr
    for v0, vectors in blocks:
        if whole:
            with for_range(b, i64(whole), "it") as it:
                tile(b.mul(it, i64(mr)), mr, v0, vectors)
        if m % mr:
            tile(i64(whole * mr), m % mr, v0, vectors)
    b.ret_void()
    return fn


def _pack(b, vw, vec, k, n, nv, src, rs, cs, dst, masked_load, mask_of, align, layout) -> None:
    """B (``k x n`` at strides rs, cs) into ``dst`` as ``k`` rows of ``nv`` vectors, zero
    padded: by vectors when its rows are contiguous (cs == 1), through register
    transposes of ``vw x vw`` blocks when its columns are (rs == 1), else element by
    element; ``layout`` says which (None: decided at run time)."""
    np_ = nv * vw
    zero = ir.Constant(vec, None)

    def by_rows() -> None:
        with for_range(b, i64(k), "pk") as kk:
            base = b.mul(kk, rs)
            for v in range(nv):
                ptr = _gep(b, src, b.add(base, i64(v * vw)))
                value = b.call(masked_load, [ptr, align, mask_of(v), zero])
                b.store(value, _gep(b, dst, b.add(b.mul(kk, i64(np_)), i64(v * vw))), align=4)

    def by_columns() -> None:
        _pack_transposed(b, vw, vec, k, n, nv, src, cs, dst, masked_load, align)

    def generic() -> None:
        with for_range(b, i64(k), "gk") as kk:
            for v in range(nv):
                b.store(zero, _gep(b, dst, b.add(b.mul(kk, i64(np_)), i64(v * vw))))
        with for_range(b, i64(k), "gk") as kk, for_range(b, i64(n), "gj") as j:
            value = b.load(_gep(b, src, b.add(b.mul(kk, rs), b.mul(j, cs))), typ=F32)
            b.store(value, _gep(b, dst, b.add(b.mul(kk, i64(np_)), j)))

    if layout is not None:
        {"rows": by_rows, "columns": by_columns, "strided": generic}[layout]()
        return
    with b.if_else(b.icmp_signed("==", cs, i64(1))) as (rows_case, other):
        with rows_case:
            by_rows()
        with other, b.if_else(b.icmp_signed("==", rs, i64(1))) as (columns_case, generic_case):
            with columns_case:
                by_columns()
            with generic_case:
                generic()


def _pack_transposed(b, vw, vec, k, n, nv, src, cs, dst, masked_load, align) -> None:
    """B with contiguous columns (B[kk, j] at src[j*cs + kk]): ``vw`` columns by ``vw``
    depths at a time are loaded as vectors along k and transposed in registers; the depth
    past the last whole block goes element by element. Columns past ``n`` are zeros. The
    whole vectors of columns share one loop (one copy of the transpose in the code), a
    partial last one has its own."""
    whole = n // vw
    if whole:
        with for_range(b, i64(whole), "tv") as v:
            _pack_columns(b, vw, vec, k, nv, src, cs, dst, b.mul(v, i64(vw)), vw)
    if n % vw:
        _pack_columns(b, vw, vec, k, nv, src, cs, dst, i64(whole * vw), n % vw)


def _pack_columns(b, vw, vec, k, nv, src, cs, dst, j0, columns: int) -> None:
    """Columns ``j0 .. j0 + columns`` (at most one vector) of a transposed B, packed."""
    np_ = nv * vw
    zero = ir.Constant(vec, None)
    k_blocks = k // vw
    if k_blocks:
        with for_range(b, i64(k_blocks), "tk") as kb:
            k0 = b.mul(kb, i64(vw))
            lines = [
                b.load(_gep(b, src, b.add(b.mul(b.add(j0, i64(j)), cs), k0)), typ=vec, align=4)
                if j < columns
                else zero
                for j in range(vw)
            ]
            for kk, value in enumerate(_transpose(b, lines, vw)):
                at = b.add(b.mul(b.add(k0, i64(kk)), i64(np_)), j0)
                b.store(value, _gep(b, dst, at), align=4)
    if k % vw:
        with for_range(b, i64(k % vw), "tt") as kt:
            kk = b.add(kt, i64(k_blocks * vw))
            line = b.add(b.mul(kk, i64(np_)), j0)
            b.store(zero, _gep(b, dst, line), align=4)
            with for_range(b, i64(columns), "tj") as j:
                at = b.add(b.mul(b.add(j, j0), cs), kk)
                b.store(b.load(_gep(b, src, at), typ=F32), _gep(b, dst, b.add(line, j)))
