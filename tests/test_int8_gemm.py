"""``kc_igemm`` (``codegen.library.int8_gemm``) called directly: the f32 of each exact
int32 sum for every path it has (one row over spans of four panels, a few rows reading
B in place, packed panels), ragged rows and columns, odd and zero depths, transposed
operands (other strides), accumulation into C, on one and two threads; the operands at
int8's extremes, where the sums pass 2**24 and f32 sums would round."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module, host
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.int8_gemm import DIRECT_ROW_TILES, IntTile
from kcompile.codegen.library.runtime_library import (
    PIECES,
    Runtime,
    keep_alive,
    runtime,
    runtime_ir,
)
from tests.threads import on_threads

TILE = IntTile.for_features(host().has)
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


# The test ids say which path ran: pmaddwd at the host's widest vectors.
PATH = f"pmaddwd{TILE.vw * 32}"


@pytest.mark.parametrize("path", [PATH])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m, depth, n", SHAPES)
def test_igemm_gives_exact_sums_on_every_path(rng, m, depth, n, threads, path):
    rt = runtime()
    assert rt.igemm_path() == "madd"
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
