"""``kc_igemm`` (``codegen.library.int8_gemm``) called directly: the f32 of each exact
int32 sum for every path it has (one row over spans of four panels, a few rows reading
B in place, packed panels), ragged rows and columns, odd and zero depths, transposed
operands (other strides), accumulation into C, on one and two threads; the operands at
int8's extremes, where the sums pass 2**24 and f32 sums would round."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.building.target import (
    LEVELS,
    CompileTimes,
    HostInfo,
    LoadedCode,
    assembly,
    compile_module,
    host,
)
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.int8_amx import EMULATED as AMX_EMULATED
from kcompile.codegen.library.int8_gemm import DIRECT_ROW_TILES, engines
from kcompile.codegen.library.int8_quads import EMULATED
from kcompile.codegen.library.runtime_library import (
    PIECES,
    Runtime,
    keep_alive,
    runtime,
    runtime_ir,
)
from tests.threads import on_threads

TILE, _DOT, _TILES = engines(host().has)
SHAPES = [
    (1, 512, 64),  # one row: a span of four whole panels, B in place
    (1, 300, 70),  # ... then panels one at a time, the last ragged (packed)
    (1, 1025, 33),  # an odd depth: packed
    (TILE.mr + 1, 64, 48),  # two row tiles, B in place
    (TILE.mr * DIRECT_ROW_TILES + 5, 130, 40),  # packed, a ragged last row tile
    (97, 2049, 17),  # deep: sums past 2**24
    (3, 0, 5),  # no depth: zeros
    (2000, 600, 70),  # three slabs of A (SLAB_BYTES: 870 rows of 600), the last short
]


def _exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float32)


# The test ids say which path ran: VNNI's vpdpbusd where the host has it (products of
# more than DIRECT_ROW_TILES row tiles), else pmaddwd, at the host's widest vectors.
VNNI = _DOT is not None
AMX_HOST = _TILES == "amx"  # its tiles, when Linux grants them (else VNNI)
PATH = "tdpbusd" if AMX_HOST else f"{'vpdpbusd' if VNNI else 'pmaddwd'}{TILE.vw * 32}"
EXPECTED = {"amx", "vnni"} if AMX_HOST else {"vnni"} if VNNI else {"madd"}


@pytest.mark.parametrize("path", [PATH])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, depth, n", SHAPES)
def test_igemm_gives_exact_sums_on_every_path(rng, m, depth, n, threads, path):
    rt = runtime()
    assert rt.igemm_path() in EXPECTED
    a = rng.integers(-128, 128, size=(m, depth)).astype(np.int8)
    b = rng.integers(-128, 128, size=(depth, n)).astype(np.int8)
    a[:1], b[:, :1] = -128, -128  # the largest sums: 128 * 128 * depth
    with on_threads(threads):
        out = np.full((m, n), np.nan, np.float32)
        rt.igemm_call(a, b, out)()
        np.testing.assert_array_equal(out, _exact(a, b))
        # Other strides: transposed views of A and of B (packed element by element).
        at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
        out2 = np.full((m, n), np.nan, np.float32)
        rt.igemm_call(at.T, bt.T, out2)()
        np.testing.assert_array_equal(out2, _exact(a, b))
        # Accumulating: C += the product.
        base = rng.normal(size=(m, n)).astype(np.float32)
        out3 = base.copy()
        rt.igemm_call(a, b, out3, accumulate=True)()
        np.testing.assert_array_equal(out3, base + _exact(a, b))


def test_igemm_refuses_wrong_dtypes_and_shapes(rng):
    rt = runtime()
    a = np.zeros((2, 3), np.int8)
    with pytest.raises(ValueError, match="b must be int8"):
        rt.igemm_call(a, np.zeros((3, 4), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        rt.igemm_call(a, np.zeros((4, 4), np.int8), np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("path", ["pmaddwd128"])
def test_the_portable_width_gives_the_same_sums(rng, path):
    """The SSE2 width (4 lanes, what a CPU without AVX2 gets), built here whatever the
    host has (it runs on any x86-64): the same exact sums on its paths."""
    int8 = [p for p in PIECES if p.name == "int8"]
    features = {"sse2", "avx"}.__contains__  # no AVX2: the 128-bit pmaddwd
    text = runtime_ir(Tile(vw=8, mr=6), features, int8)
    assert "llvm.x86.sse2.pmadd.wd" in text and "avx2.pmadd" not in text
    code = LoadedCode(compile_module(text, CompileTimes()).object_code)
    keep_alive(code)  # its thread pool's workers outlive the test
    rt = Runtime(code, CompileTimes(), False)
    rt.set_threads(2)
    for m, depth, n in SHAPES:
        a = rng.integers(-128, 128, size=(m, depth)).astype(np.int8)
        b = rng.integers(-128, 128, size=(depth, n)).astype(np.int8)
        out = np.full((m, n), np.nan, np.float32)
        rt.igemm_call(a, b, out)()
        np.testing.assert_array_equal(out, _exact(a, b), err_msg=f"{m}x{depth}x{n}")


def _emulated_runtime(flag: str) -> Runtime:
    """The int8 piece built with an engine emulated in plain IR (``int8_quads.EMULATED``:
    VNNI's quads; ``int8_amx.EMULATED``: AMX-INT8's tiles): runs on any x86-64 with the
    host's vectors."""
    int8 = [p for p in PIECES if p.name == "int8"]
    # VNNI's emulation on a CPU with AMX: its tiles masked, or they would take the product.
    masked = ("amx-tile", "amx-int8") if flag == EMULATED else ()
    features = lambda f: f == flag or (host().has(f) and f not in masked)  # noqa: E731
    text = runtime_ir(Tile.for_host(host().has), features, int8)
    assert "tdpbusd" not in text  # (a VNNI CPU's AMX emulation keeps its native quads)
    assert flag != EMULATED or "vpdpbusd" not in text
    code = LoadedCode(compile_module(text, CompileTimes()).object_code)
    keep_alive(code)  # its thread pool's workers outlive the test
    return Runtime(code, CompileTimes(), False)


@pytest.mark.parametrize(
    "path, flag",
    [(f"vpdpbusd{TILE.vw * 32}-emulated", EMULATED), ("amx-int8-emulated", AMX_EMULATED)],
)
def test_the_engines_layouts_give_the_same_sums(rng, path, flag):
    """VNNI's path (A's bytes offset by 128, B in quads, each column's correction taken off)
    and AMX-INT8's (the same operands in 32 x 32 blocks of 16 x 64 tiles, the depth padded
    to whole tiles), each with its instructions emulated, so they run here whatever the
    CPU: every shape of the first test, other strides, accumulation, int8's extremes (A at
    -128 and 127, where the offset bytes are 0 and 255), one and two threads."""
    rt = _emulated_runtime(flag)
    assert rt.igemm_path() == ("vnni_emulated" if flag == EMULATED else "amx_emulated")
    extra = [(TILE.mr * DIRECT_ROW_TILES + 1, 7, 3), (40, 5, 33), (70, 130, 65)]
    for threads in (1, 2):
        rt.set_threads(threads)
        for m, depth, n in [*SHAPES, *extra]:
            a = rng.integers(-128, 128, size=(m, depth)).astype(np.int8)
            b = rng.integers(-128, 128, size=(depth, n)).astype(np.int8)
            a[:1], a[1:2], b[:, :1] = -128, 127, -128
            out = np.full((m, n), np.nan, np.float32)
            rt.igemm_call(a, b, out)()
            np.testing.assert_array_equal(out, _exact(a, b), err_msg=f"{m}x{depth}x{n}")
            out2 = np.full((m, n), np.nan, np.float32)
            at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)  # alive for the call
            rt.igemm_call(at.T, bt.T, out2)()
            np.testing.assert_array_equal(out2, _exact(a, b), err_msg=f"{m}x{depth}x{n} (T)")
            base = rng.normal(size=(m, n)).astype(np.float32)
            out3 = base.copy()
            rt.igemm_call(a, b, out3, accumulate=True)()
            np.testing.assert_array_equal(out3, base + _exact(a, b))


_VNNI_TARGETS = {
    # (LLVM cpu, its features): AVX512_VNNI at 512 bits (a Zen 4/5, a Xeon), AVX_VNNI at 256
    "avx512_vnni": ("znver4", LEVELS["x86-64-v4"] + ",+avx512vnni"),
    "avx_vnni": ("alderlake", LEVELS["x86-64-v3"] + ",+avxvnni"),
}
_AMX_TARGET = (
    "sapphirerapids",
    LEVELS["x86-64-v4"] + ",+avx512vnni,+amx-tile,+amx-int8,+amx-bf16",
)


@pytest.mark.parametrize("target", sorted(_VNNI_TARGETS))
def test_vnni_targets_get_vpdpbusd_in_their_micro_kernels(target):
    """Compiled for a CPU with VNNI (built here, not run: this CPU may lack it), the int8
    piece takes the quads' path and its micro-kernels' inner loops are ``vpdpbusd`` on
    the target's width, the instruction the emulated path above stands in for."""
    cpu, features = _VNNI_TARGETS[target]
    info = HostInfo(host().triple, cpu, features)
    int8 = [p for p in PIECES if p.name == "int8"]
    text = runtime_ir(Tile.for_host(info.has), info.has, int8)
    assert "llvm.x86.avx512.vpdpbusd" in text
    asm = assembly(text, info)
    width = "zmm" if target == "avx512_vnni" else "ymm"
    dots = [line for line in asm.splitlines() if "vpdpbusd" in line]
    assert dots and all(width in line for line in dots), dots[:3]


def test_an_amx_int8_target_gets_tdpbusd_blocks():
    """Compiled for a Xeon with AMX-INT8 (built, not run here), ``kc_igemm`` has the tiles'
    path: ``tdpbusd`` on tiles LLVM configures (``ldtilecfg``), the permission asked of
    Linux first, and VNNI's quads beside it for a process refused the tiles."""
    info = HostInfo(host().triple, *_AMX_TARGET)
    int8 = [p for p in PIECES if p.name == "int8"]
    text = runtime_ir(Tile.for_host(info.has), info.has, int8)
    assert "llvm.x86.tdpbusd.internal" in text and "kc_amx_permitted" in text
    asm = assembly(text, info)
    mnemonics = {line.split()[0] for line in asm.splitlines() if line.startswith("\t")}
    assert {"tdpbusd", "ldtilecfg", "tileloadd", "tilestored", "vpdpbusd"} <= mnemonics
