"""Integer products four k at a time: VNNI's ``vpdpbusd`` (AVX512_VNNI at 512 bits,
AVX_VNNI or AVX512_VNNI with VL at 256), used by ``kc_igemm`` (``codegen.library.int8_gemm``)
for every product but the few-row ones that read B in place.

``vpdpbusd`` multiplies, in each 32-bit lane, four unsigned bytes by four signed bytes
and adds the four products to the lane: twice ``pmaddwd``'s products an instruction, with
the add that follows ``pmaddwd`` folded in, and on bytes, so neither operand is widened.
Keras's activations are signed (each row's abs-max scaled into [-127, 127]), so A enters
as ``a + 128`` (its sign bit flipped: a byte in [0, 255]) and each column's sum over k
of B, times 128, is taken off the lane at the end::

    sum_k (a + 128) * w  -  128 * sum_k w  =  sum_k a * w

The instruction's sums wrap modulo 2**32 and so does the subtraction, so the difference
is the exact sum whenever that fits in int32: for every depth below 2**17, as with
``pmaddwd`` (|a|, |w| <= 128).

Layouts (K rounded up to ``k4``, a multiple of 4):

- A: each row's ``k4`` bytes ``a ^ 0x80``, its padding 0x80 (a zero);
- B: panels of ``NR`` columns, quad after quad: ``panel[q * 4 * NR + 4 * j + i]`` is B's
  row ``4q + i``, column ``j`` (zero past K or N) — the "VNNI" layout, which AMX's tiles
  read too; after the ``k4 / 4`` quads, the panel's ``NR`` corrections (int32,
  ``128 * sum_k B[k, j]``).

``EMULATED`` builds the same kernel with the dot product written as plain IR (widen, multiply,
add the four products), which any x86-64 runs: the packing, the offset and the
corrections are checked on every machine, and a CPU with VNNI differs only in the one
instruction (``tests/test_int8_gemm.py`` runs both where it can).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.library.gemm import _splat
from kcompile.codegen.loops import (
    F32,
    I8,
    I32,
    I64,
    PTR,
    for_range,
    for_reduce,
    i64,
    unroll_freely,
)

# Not an LLVM feature: asked of the features callable, it selects the emulated dot
# product (tests build the library with it to check this path without VNNI).
EMULATED = "kcompile-emulated-vnni"
QUAD = 4  # k per 32-bit lane


def dot_kind(features: Callable[[str], bool], vw: int) -> str | None:
    """The quad dot product ``features`` allow at ``vw`` int32 lanes: ``"vpdpbusd"``, the
    emulated one, or None (``kc_igemm`` then multiplies in pairs with ``pmaddwd``)."""
    if features(EMULATED):
        return "emulated"
    if vw == 16 and features("avx512vnni") and features("avx512bw"):
        return "vpdpbusd"
    if vw == 8 and (features("avxvnni") or (features("avx512vnni") and features("avx512vl"))):
        return "vpdpbusd"
    return None


def _at(b: ir.IRBuilder, ptr, offset, etype=I8) -> ir.Value:
    return b.gep(ptr, [offset], inbounds=True, source_etype=etype)


def pack_row(b: ir.IRBuilder, row, cs, depth, k4, out, width: int) -> None:
    """A's row at ``row`` (bytes ``cs`` apart, ``depth`` of them) into ``out``: ``k4``
    bytes, each value's sign bit flipped, 0x80 past the depth. Contiguous rows a vector
    of ``width`` bytes at a time."""
    flip = ir.Constant(ir.VectorType(I8, width), [0x80] * width)
    vectors = b.select(b.icmp_signed("==", cs, i64(1)), b.udiv(depth, i64(width)), i64(0))
    with for_range(b, vectors, "kv") as kv:
        at = b.mul(kv, i64(width))
        value = b.load(_at(b, row, at), typ=ir.VectorType(I8, width), align=1)
        b.store(b.xor(value, flip), _at(b, out, at), align=1)
    done = b.mul(vectors, i64(width))
    with for_range(b, b.sub(k4, done), "k") as kk:
        k = b.add(done, kk)
        inside = b.icmp_signed("<", k, depth)
        at = _at(b, row, b.select(inside, b.mul(k, cs), i64(0)))
        value = b.select(inside, b.load(at, typ=I8), ir.Constant(I8, 0))
        b.store(b.xor(value, ir.Constant(I8, 0x80)), _at(b, out, k))


def panel_bytes(b: ir.IRBuilder, k4, nr: int | ir.Value) -> ir.Value:
    """Bytes of one packed panel: its quads, then its ``NR`` int32 corrections."""
    return b.mul(b.add(k4, i64(QUAD)), nr if isinstance(nr, ir.Value) else i64(nr))


def sums_slot(b: ir.IRBuilder, nr: int) -> ir.Value:
    """Room for a panel's column sums, for ``pack_panel`` (made once, in the function's
    entry: an alloca in a loop would grow the stack every iteration)."""
    slot = b.alloca(ir.VectorType(I32, nr), name="sums")
    slot.type = PTR  # llvmlite types an alloca as a typed pointer; the module uses opaque ones
    return slot


def pack_panel(b: ir.IRBuilder, nr: int, src, rs, cs, depth, k4, cols, whole, panel, sums) -> None:
    """Columns ``[0, cols)`` of B at ``src`` (rows ``rs``, columns ``cs`` bytes apart,
    ``depth`` rows) into ``panel`` in quads, then the corrections. ``whole``: NR columns
    of contiguous rows, packed four rows a vector at a time. ``sums``: ``sums_slot``'s."""
    row_t = ir.VectorType(I8, nr)
    sums_t = ir.VectorType(I32, nr)
    b.store(ir.Constant(sums_t, [0] * nr), sums)
    # lane 4j + i of a quad vector: row i's column j (rows 0-1 and 2-3 first joined).
    join = ir.Constant(ir.VectorType(I32, 2 * nr), list(range(2 * nr)))
    lanes = [(i // 2) * 2 * nr + (i % 2) * nr + j for j in range(nr) for i in range(QUAD)]
    interleave = ir.Constant(ir.VectorType(I32, QUAD * nr), lanes)
    vector_quads = b.select(whole, b.udiv(depth, i64(QUAD)), i64(0))
    with for_range(b, vector_quads, "kq") as kq:
        top = _at(b, src, b.mul(b.mul(kq, i64(QUAD)), rs))
        rows = [b.load(_at(b, top, b.mul(i64(i), rs)), typ=row_t, align=1) for i in range(QUAD)]
        low, high = (
            b.shuffle_vector(rows[0], rows[1], join),
            b.shuffle_vector(rows[2], rows[3], join),
        )
        b.store(b.shuffle_vector(low, high, interleave), _at(b, panel, b.mul(kq, i64(QUAD * nr))))
        total = b.load(sums, typ=sums_t)
        for r in rows:
            total = b.add(total, b.sext(r, sums_t))
        b.store(total, sums)
    # The rest (a ragged panel, other strides, K's last rows and the padding), element by
    # element, its column sums with it.
    with for_range(b, b.sub(b.udiv(k4, i64(QUAD)), vector_quads), "kr") as kr:
        q = b.add(vector_quads, kr)
        with for_range(b, i64(QUAD * nr), "e") as e:
            j, i = b.udiv(e, i64(QUAD)), b.urem(e, i64(QUAD))
            k = b.add(b.mul(q, i64(QUAD)), i)
            inside = b.and_(b.icmp_signed("<", k, depth), b.icmp_signed("<", j, cols))
            at = _at(b, src, b.select(inside, b.add(b.mul(k, rs), b.mul(j, cs)), i64(0)))
            value = b.select(inside, b.load(at, typ=I8), ir.Constant(I8, 0))
            b.store(value, _at(b, panel, b.add(b.mul(q, i64(QUAD * nr)), e)))
            column = _at(b, sums, j, I32)
            b.store(b.add(b.load(column, typ=I32), b.sext(value, I32)), column)
    corrections = b.shl(b.load(sums, typ=sums_t), ir.Constant(sums_t, [7] * nr))  # x 128
    b.store(corrections, _at(b, panel, b.mul(k4, i64(nr))), align=4)


def _dot(module: ir.Module, kind: str, vw: int):
    """``dot(b, acc, a, w)``: ``acc`` plus, per lane, the four products of ``a``'s unsigned
    bytes and ``w``'s signed bytes (vectors of ``vw`` int32 lanes)."""
    lanes_t = ir.VectorType(I32, vw)
    if kind == "vpdpbusd":
        name = f"llvm.x86.avx512.vpdpbusd.{32 * vw}"
        fn = module.globals.get(name) or ir.Function(
            module, ir.FunctionType(lanes_t, [lanes_t] * 3), name
        )
        return lambda b, acc, a, w: b.call(fn, [acc, a, w])

    bytes_t, wide_t = ir.VectorType(I8, QUAD * vw), ir.VectorType(I32, QUAD * vw)

    def emulated(b: ir.IRBuilder, acc, a, w):
        products = b.mul(
            b.zext(b.bitcast(a, bytes_t), wide_t), b.sext(b.bitcast(w, bytes_t), wide_t)
        )
        for i in range(QUAD):
            pick = ir.Constant(ir.VectorType(I32, vw), [QUAD * j + i for j in range(vw)])
            acc = b.add(acc, b.shuffle_vector(products, products, pick))
        return acc

    return emulated


def micro_kernel(module: ir.Module, vw: int, nv: int, height: int, kind: str) -> ir.Function:
    """``void ukr(i64 quads, ptr a, i64 lda, ptr panel, i64 unused, ptr tile)``: ``height``
    rows of A (``k4`` bytes, ``lda`` apart) times a packed panel (``nv`` vectors of ``vw``
    columns), over ``quads`` quads of k, into ``tile`` (``height x NR`` f32, NR apart): the
    f32 of each exact sum, the corrections taken off."""
    ftype = ir.FunctionType(ir.VoidType(), [I64, PTR, I64, PTR, I64, PTR])
    fn = ir.Function(module, ftype, f"kc_igemm_ukr_quads{height}")
    fn.linkage = "internal"
    # Rolled: 12 x 2 zmm accumulators, unrolled twice, spilled (Zen 4 code, 62 stack
    # accesses a loop); one quad's body is already 24 dot products.
    unroll_freely(fn, False)
    quads, a, lda, panel, _, tile = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    lanes_t = ir.VectorType(I32, vw)
    nr = nv * vw
    dot = _dot(module, kind, vw)
    rows = [_at(b, a, b.mul(i64(r), lda)) for r in range(height)]
    zero = ir.Constant(lanes_t, [0] * vw)
    with for_reduce(b, quads, [zero] * (height * nv), "kq") as (kq, accs):
        line = b.mul(kq, i64(QUAD * nr))
        ws = [
            b.load(_at(b, panel, b.add(line, i64(QUAD * v * vw))), typ=lanes_t, align=4)
            for v in range(nv)
        ]
        for r in range(height):
            word = b.load(_at(b, rows[r], b.mul(kq, i64(QUAD))), typ=I32, align=1)
            broadcast = _splat(b, word, vw)
            for v in range(nv):
                accs[r * nv + v] = dot(b, accs[r * nv + v], broadcast, ws[v])
    after = _at(b, panel, b.mul(quads, i64(QUAD * nr)))
    corrections = [
        b.load(_at(b, after, i64(QUAD * v * vw)), typ=lanes_t, align=4) for v in range(nv)
    ]
    for r in range(height):
        for v in range(nv):
            exact = b.sub(accs[r * nv + v], corrections[v])
            out = _at(b, tile, i64(r * nr + v * vw), F32)
            b.store(b.sitofp(exact, ir.VectorType(F32, vw)), out, align=4 * vw)
    b.ret_void()
    return fn
