"""Integer products on AMX-INT8's tiles, for ``kc_igemm`` (``codegen.library.int8_gemm``):
``tdpbusd``, unsigned bytes of A times signed bytes of B, four products a 32-bit lane of
a 16 x 16 accumulator tile per 16 x 64 A tile and 16 x 64 B tile (1,024 multiply-adds
an instruction, 2,048 ops a cycle a core).

The operands are ``codegen.library.int8_quads``'s: A's rows as bytes offset by 128, B's
panels of 32 columns in quads, each panel's corrections after its quads; the depth is
padded to whole tiles (``TILE_K``: 64 k). A micro-tile is a 2 x 2 block of accumulator
tiles, 32 rows by one panel's 32 columns: its A tiles are the slab's packed rows
(``lda`` apart; the buffer has room past the last row, whose tiles' extra rows only
make rows of C that are not written), its B tiles the panel's two 16-column halves
(quad lines 128 bytes apart). The block is stored to an int32 buffer, and each row
becomes f32 with the corrections taken off, as the VNNI path does it.

Linux grants the tile state on request (``bf16_gemm._permission``: once per process); a
process refused it takes the VNNI path. ``EMULATED`` builds the same kernel on tiles held
in memory and products written as loops (loads, stores and ``tdpbusd`` as the ISA defines
them), which any x86-64 runs: the blocking, the addresses and the strides are checked
everywhere, the CPU with AMX differs only in the four instructions.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from kcompile.codegen.library.bf16_gemm import AMX, _declare
from kcompile.codegen.library.int8_quads import QUAD, _at
from kcompile.codegen.loops import F32, I8, I16, I32, I64, PTR, for_range, for_reduce, i64

# Not an LLVM feature: asked of the features callable, it selects the emulated tiles.
EMULATED = "kcompile-emulated-amx-int8"
TILE_ROWS = 16  # rows of every tile
TILE_BYTES = 64  # bytes a tile row: 64 k of A, 16 quads' columns of B, 16 int32 of C
TILE_K = TILE_BYTES  # k per A tile
BLOCK = 2 * TILE_ROWS  # rows (and columns) of C per micro-tile
PANEL = 2 * TILE_ROWS  # columns of a panel: the AVX-512 tile's NR
LINE = QUAD * PANEL  # bytes of one quad line of a panel


def kind(features: Callable[[str], bool]) -> str | None:
    """``"amx"`` on a CPU with AMX-INT8 (and AVX-512 for the rest of the path), the
    emulated tiles, or None."""
    if features(EMULATED):
        return "emulated"
    if features("amx-tile") and features("amx-int8") and features("avx512bw"):
        return "amx"
    return None


class _Tiles:
    """AMX's tile instructions (LLVM's ``.internal`` forms: LLVM writes the tile
    configuration itself). A tile is an ``x86_amx`` value."""

    def __init__(self, b: ir.IRBuilder) -> None:
        module = b.module
        self.b = b
        self.shape = [ir.Constant(I16, TILE_ROWS), ir.Constant(I16, TILE_BYTES)]
        self._zero = _declare(
            module, "llvm.x86.tilezero.internal", ir.FunctionType(AMX, [I16, I16])
        )
        self._load = _declare(
            module, "llvm.x86.tileloadd64.internal", ir.FunctionType(AMX, [I16, I16, PTR, I64])
        )
        self._dp = _declare(
            module,
            "llvm.x86.tdpbusd.internal",
            ir.FunctionType(AMX, [I16, I16, I16, AMX, AMX, AMX]),
        )
        self._store = _declare(
            module,
            "llvm.x86.tilestored64.internal",
            ir.FunctionType(ir.VoidType(), [I16, I16, PTR, I64, AMX]),
        )

    def begin_step(self) -> None:
        """A step of the depth begins (its A and B tiles are new values)."""

    def zero(self) -> ir.Value:
        return self.b.call(self._zero, self.shape)

    def load(self, ptr, stride) -> ir.Value:
        return self.b.call(self._load, [*self.shape, ptr, stride])

    def dp(self, c, a, w) -> ir.Value:
        k = ir.Constant(I16, TILE_BYTES)
        return self.b.call(self._dp, [*self.shape, k, c, a, w])

    def store(self, ptr, stride, c) -> None:
        self.b.call(self._store, [*self.shape, ptr, stride, c])


class _EmulatedTiles:
    """The same instructions on tiles held in memory (1 KB each, made at the function's
    entry): a tile is the address of its bytes, ``dp`` updates C in place."""

    def __init__(self, b: ir.IRBuilder, count: int) -> None:
        self.b = b
        self.slots = []
        for _ in range(count):
            slot = b.alloca(ir.ArrayType(I8, TILE_ROWS * TILE_BYTES), name="tile")
            slot.align = 64
            slot.type = PTR  # llvmlite types an alloca as a typed pointer; opaque ones here
            self.slots.append(slot)
        self.used = 0
        self.accumulators = 0

    def begin_step(self) -> None:
        """A step of the depth begins: its A and B tiles take the slots after the
        accumulators' again."""
        self.used = self.accumulators

    def _slot(self) -> ir.Value:
        slot = self.slots[self.used]
        self.used += 1
        return slot

    def _copy(self, dst, dst_stride, src, src_stride) -> None:
        b = self.b
        line_t = ir.VectorType(I8, TILE_BYTES)
        with for_range(b, i64(TILE_ROWS), "tr") as r:
            line = b.load(_at(b, src, b.mul(r, src_stride)), typ=line_t, align=1)
            b.store(line, _at(b, dst, b.mul(r, dst_stride)), align=1)

    def zero(self) -> ir.Value:
        slot = self._slot()
        self.accumulators = self.used
        zeros = ir.Constant(ir.VectorType(I8, TILE_BYTES), [0] * TILE_BYTES)
        with for_range(self.b, i64(TILE_ROWS), "tz") as r:
            self.b.store(zeros, _at(self.b, slot, self.b.mul(r, i64(TILE_BYTES))), align=1)
        return slot

    def load(self, ptr, stride) -> ir.Value:
        slot = self._slot()
        self._copy(slot, i64(TILE_BYTES), ptr, stride)
        return slot

    def dp(self, c, a, w) -> ir.Value:
        """C[m][n] += sum over k of the four products of A's unsigned bytes 4k..4k+3 of
        row m and B's signed bytes 4n..4n+3 of row k (int32 sums, wrapping)."""
        b = self.b
        with (
            for_range(b, i64(TILE_ROWS), "dm") as m,
            for_range(b, i64(TILE_ROWS), "dn") as n,
        ):
            at = _at(b, c, b.add(b.mul(m, i64(TILE_BYTES)), b.mul(n, i64(QUAD))))
            with for_reduce(b, i64(TILE_BYTES), [b.load(at, typ=I32)], "dk") as (k, acc):
                # byte k of A's row m, with byte (k % 4) of column n in B's row k // 4
                x = b.zext(b.load(_at(b, a, b.add(b.mul(m, i64(TILE_BYTES)), k)), typ=I8), I32)
                quad, i = b.udiv(k, i64(QUAD)), b.urem(k, i64(QUAD))
                offset = b.add(b.mul(quad, i64(TILE_BYTES)), b.add(b.mul(n, i64(QUAD)), i))
                y = b.sext(b.load(_at(b, w, offset), typ=I8), I32)
                acc[0] = b.add(acc[0], b.mul(x, y))
            b.store(acc[0], at)
        return c

    def store(self, ptr, stride, c) -> None:
        self._copy(ptr, stride, c, i64(TILE_BYTES))


def micro_kernel(module: ir.Module, kind_: str) -> ir.Function:
    """``void ukr(i64 quads, ptr a, i64 lda, ptr panel, i64 unused, ptr tile)``: the 32 x
    32 block of C from 32 packed rows of A (``lda`` bytes apart, ``quads * 4`` k, a whole
    number of tiles) and a packed panel, into ``tile`` (32 x 32 f32, the corrections taken
    off): ``int8_quads.micro_kernel``'s signature, on a block of tiles."""
    ftype = ir.FunctionType(ir.VoidType(), [I64, PTR, I64, PTR, I64, PTR])
    fn = ir.Function(module, ftype, f"kc_igemm_ukr_amx{'_emulated' if kind_ == 'emulated' else ''}")
    fn.linkage = "internal"
    quads, a, lda, panel, _, tile = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    sums = b.alloca(ir.ArrayType(I32, BLOCK * BLOCK), name="sums")
    sums.align = 64
    sums.type = PTR
    tiles = _Tiles(b) if kind_ == "amx" else _EmulatedTiles(b, 8)
    accs = [tiles.zero() for _ in range(4)]
    steps = b.udiv(quads, i64(TILE_K // QUAD))
    with for_reduce(b, steps, accs, "kt") as (kt, acc):
        a_at = b.mul(kt, i64(TILE_K))
        w_at = b.mul(kt, i64(TILE_ROWS * LINE))
        tiles.begin_step()
        a_tiles = [
            tiles.load(_at(b, a, b.add(b.mul(i64(r * TILE_ROWS), lda), a_at)), lda)
            for r in range(2)
        ]
        w_tiles = [
            tiles.load(_at(b, panel, b.add(w_at, i64(h * TILE_BYTES))), i64(LINE)) for h in range(2)
        ]
        for i in range(2):
            for j in range(2):
                acc[2 * i + j] = tiles.dp(acc[2 * i + j], a_tiles[i], w_tiles[j])
    row_bytes = i64(BLOCK * 4)
    for i in range(2):
        for j in range(2):
            corner = _at(b, sums, i64(i * TILE_ROWS * BLOCK + j * TILE_ROWS), I32)
            tiles.store(corner, row_bytes, acc[2 * i + j])
    lanes_t = ir.VectorType(I32, TILE_ROWS)
    after = _at(b, panel, b.mul(quads, i64(LINE)))
    corrections = [
        b.load(_at(b, after, i64(h * TILE_BYTES)), typ=lanes_t, align=4) for h in range(2)
    ]
    with for_range(b, i64(BLOCK), "r") as r:
        for h in range(2):
            at = b.add(b.mul(r, i64(BLOCK)), i64(h * TILE_ROWS))
            exact = b.sub(b.load(_at(b, sums, at, I32), typ=lanes_t, align=4), corrections[h])
            b.store(b.sitofp(exact, ir.VectorType(F32, TILE_ROWS)), _at(b, tile, at, F32), align=4)
    b.ret_void()
    return fn
