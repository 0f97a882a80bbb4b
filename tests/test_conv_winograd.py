"""Winograd's F(2x2, 3x3) convolution and its kernel gradient
(``codegen/library/conv_winograd.py``):
called directly and through ``kc_sconv`` and ``kc_sconv_filter`` (which take them for 3x3
stride-1 kernels over >= 16 channels in and out), against the numpy reference at ragged sizes (odd batch, odd channels, odd and
single-column outputs, "same", "valid" and uneven padding, several blocks a chunk), on 1
and 2 threads; with fused epilogues (normalization, residual, ReLU) and column sums on
spans of rows. The host's tile runs here (AVX-512 12x32 on this project's machines, see
``test_the_host_tile_is_the_path_that_ran``); the AVX2 tile (6x16) is built and run too."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module
from kcompile.codegen.library import conv_winograd
from kcompile.codegen.library.conv import GEOMETRY
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.runtime_library import PIECES, Runtime, runtime, runtime_ir, tile
from kcompile.ir import BATCH, DType, Graph, TensorType, abi
from kcompile.ir import build as B
from kcompile.ir.ops.patches import _ref_conv, _ref_filter, output_size
from tests.test_conv_kernels import _statistics_graph, matches_the_reference, statistics_match
from tests.threads import on_threads

# (N, H, W, C, F, padding (top, bottom, left, right))
CASES = [
    (3, 7, 9, 17, 19, (1, 1, 1, 1)),  # "same", odd everything (odd OH and OW)
    (2, 8, 8, 32, 32, (1, 1, 1, 1)),  # whole vectors and panels
    (1, 5, 6, 16, 40, (0, 0, 0, 0)),  # "valid", two panels, the last ragged
    (2, 9, 7, 20, 33, (2, 0, 1, 2)),  # uneven padding
    (5, 3, 1, 18, 16, (1, 1, 1, 1)),  # one column: half of each tile is cut off
    (1, 4, 4, 300, 70, (1, 1, 1, 1)),  # deep, channels not a multiple of a vector
    (1, 3, 3, 16, 16, (1, 1, 1, 1)),  # too small to share among threads
    (20, 8, 8, 128, 128, (1, 1, 1, 1)),  # several blocks a chunk
]


def _geometry(x, w, padding) -> np.ndarray:
    n, h, width, c = x.shape
    f = w.shape[-1]
    pt, pb, pl, pr = padding
    oh, ow = output_size(h, 3, 1, 1, pt, pb), output_size(width, 3, 1, 1, pl, pr)
    sizes = dict(N=n, H=h, W=width, C=c, OH=oh, OW=ow, F=f, KH=3, KW=3, PH=1, PW=1)
    sizes.update(SH=1, SW=1, DH=1, DW=1, PT=pt, PL=pl)
    return np.array([sizes[name] for name in GEOMETRY], np.int64)


def _run(rt: Runtime, symbol: str, x, w, padding, flags=0, out=None) -> np.ndarray:
    """``symbol`` (``kc_sconv`` or ``kc_sconv_winograd``) through ctypes."""
    fn = abi.bind(abi.CONV, rt.address(symbol))
    geometry = _geometry(x, w, padding)
    n, oh, ow, f = (int(geometry[GEOMETRY.index(k)]) for k in ("N", "OH", "OW", "F"))
    if out is None:
        out = np.full((n, oh, ow, f), np.nan, np.float32)
    fn(geometry.ctypes.data, x.ctypes.data, w.ctypes.data, out.ctypes.data, flags, None, None)
    return out


def _run_filter(rt: Runtime, symbol: str, x, dy, padding, flags=0, out=None) -> np.ndarray:
    """``symbol`` (``kc_sconv_filter`` or ``kc_sconv_filter_winograd``) through ctypes."""
    fn = abi.bind(abi.CONV_FILTER, rt.address(symbol))
    geometry = _geometry(x, np.empty((3, 3, x.shape[-1], dy.shape[-1])), padding)
    if out is None:
        out = np.full((3, 3, x.shape[-1], dy.shape[-1]), np.nan, np.float32)
    fn(geometry.ctypes.data, x.ctypes.data, dy.ctypes.data, out.ctypes.data, flags)
    return out


def _reference(x, w, padding):
    attrs = dict(strides=(1, 1), dilation=(1, 1), padding=padding)
    return _ref_conv(None, [x.astype(np.float64), w.astype(np.float64)], attrs)[0]


def _operands(rng, case):
    n, h, width, c, f, padding = case
    x = rng.standard_normal((n, h, width, c)).astype(np.float32)
    w = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    return x, w, padding


@pytest.mark.parametrize("case", CASES, ids=str)
def test_winograd_matches_the_reference(case, threads, rng):
    """The reference's values (and with ACCUMULATE), and ``kc_sconv`` took this path: its
    bits are the Winograd kernel's."""
    rt = runtime()
    x, w, padding = _operands(rng, case)
    want = _reference(x, w, padding)
    tolerance = dict(rtol=1e-4, atol=1e-5 * np.sqrt(9 * x.shape[-1]) * np.abs(want).max())
    got = _run(rt, conv_winograd.SYMBOL, x, w, padding)
    np.testing.assert_allclose(got, want, **tolerance)
    np.testing.assert_array_equal(_run(rt, abi.CONV.symbol, x, w, padding), got)
    start = rng.standard_normal(want.shape).astype(np.float32)
    got = _run(rt, conv_winograd.SYMBOL, x, w, padding, flags=1, out=start.copy())
    np.testing.assert_allclose(got, want + start, **tolerance)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_kernel_gradient_matches_the_reference(case, threads, rng):
    """dW = Gᵀ [(Bᵀ d B) ⊙ (A dY Aᵀ)] G summed over the tiles: the reference's values (and
    with ACCUMULATE), and ``kc_sconv_filter`` took this path."""
    rt = runtime()
    x, w, padding = _operands(rng, case)
    dy = rng.standard_normal(_reference(x, w, padding).shape).astype(np.float32)
    attrs = dict(kernel=(3, 3), strides=(1, 1), dilation=(1, 1), padding=padding)
    want = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
    tolerance = dict(rtol=1e-4, atol=1e-5 * np.sqrt(dy[..., 0].size) * np.abs(want).max())
    got = _run_filter(rt, conv_winograd.FILTER_SYMBOL, x, dy, padding)
    np.testing.assert_allclose(got, want, **tolerance)
    np.testing.assert_array_equal(_run_filter(rt, abi.CONV_FILTER.symbol, x, dy, padding), got)
    start = rng.standard_normal(want.shape).astype(np.float32)
    got = _run_filter(rt, conv_winograd.FILTER_SYMBOL, x, dy, padding, 1, start.copy())
    np.testing.assert_allclose(got, want + start, **tolerance)


def test_the_same_bits_on_any_number_of_threads(rng):
    """The product and the kernel gradient (whose partials are cut by tiles, not by
    threads)."""
    x, w, padding = _operands(rng, (9, 12, 11, 24, 40, (1, 1, 1, 1)))
    dy = rng.standard_normal((9, 12, 11, 40)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with on_threads(threads) as rt:
            results.append(
                (
                    _run(rt, conv_winograd.SYMBOL, x, w, padding),
                    _run_filter(rt, conv_winograd.FILTER_SYMBOL, x, dy, padding),
                )
            )
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_narrow_strided_and_pooled_convolutions_take_the_direct_path(rng):
    """Below 16 channels (in or out) the direct kernel runs: its bits differ from what
    the Winograd kernel computes for the same operands."""
    rt = runtime()
    x, w, padding = _operands(rng, (2, 9, 9, 8, 24, (1, 1, 1, 1)))
    direct = _run(rt, abi.CONV.symbol, x, w, padding)
    winograd = _run(rt, conv_winograd.SYMBOL, x, w, padding)
    np.testing.assert_allclose(direct, winograd, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(direct, winograd)


def _epilogue_graph(padding, residual: bool) -> Graph:
    """conv2d of 17 -> 19 channels, then a normalization's (x - mean) * scale, a residual
    add and ReLU: the epilogue of the small ResNet's convolutions."""
    g = Graph("winograd_epilogue")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 9, 7, 17)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 17, 19)), "param")
    mean = g.add_input("mean", TensorType(DType.f32, (19,)), "param")
    scale = g.add_input("scale", TensorType(DType.f32, (19,)), "param")
    y = (B.conv2d(x, w, (1, 1), (1, 1), padding) - mean) * scale
    if residual:
        y = y + g.add_input("r", TensorType(DType.f32, (BATCH, *y.shape[1:])), "data")
    zero = B.const(g, 0.0, DType.f32, ())
    g.set_outputs([("y", B.select(B.gt(y, zero), y, zero))])
    return g


@pytest.mark.parametrize("residual", [False, True], ids=["bn_relu", "bn_add_relu"])
@pytest.mark.parametrize("padding", [(1, 1, 1, 1), (0, 0, 0, 0)], ids=["same", "valid"])
def test_the_epilogue_runs_on_the_winograd_rows(padding, residual, threads, rng):
    """Normalization, a residual add and ReLU fused after a 3x3 convolution of 17 -> 19
    channels, compiled, against the reference at batch 1 and 7."""
    g = _epilogue_graph(padding, residual)
    matches_the_reference(g, rng, (1, 7))


def _pooled_graph(size, pool) -> Graph:
    """conv2d of 17 -> 19 channels ("same"), a scale of either sign, ReLU, then a max
    pooling over ``pool`` windows of the result's top-left part that they tile."""
    g = Graph("winograd_pool")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, *size, 17)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 17, 19)), "param")
    scale = g.add_input("scale", TensorType(DType.f32, (19,)), "param")
    y = B.conv2d(x, w, (1, 1), (1, 1), (1, 1, 1, 1)) * scale
    zero = B.const(g, 0.0, DType.f32, ())
    y = B.select(B.gt(y, zero), y, zero)
    (ph, pw), (h, w_) = pool, size
    hp, wp = h // ph, w_ // pw
    y = B.slice_(y, (0, 0, 0, 0), (BATCH, hp * ph, wp * pw, 19))
    g.set_outputs([("y", B.reduce_max(B.reshape(y, (BATCH, hp, ph, wp, pw, 19)), (2, 4)))])
    return g


@pytest.mark.parametrize("size", [(13, 11), (8, 6), (2, 2)], ids=str)
def test_a_max_pooling_over_the_winograd_tiles(size, threads, rng):
    """2x2 windows over an even result: each tile of outputs is one window, handed to
    the pooling epilogue in window order; the reference's values at batch 1, 5 and 40."""
    from kcompile.passes import PassManager, default_passes

    g = _pooled_graph(size, (2, 2))
    fused = PassManager(default_passes()).run(g)
    kernels = [n for n in fused.nodes if n.op == "fused" and n.attrs["kind"] == "matmul"]
    assert [tuple(n.attrs.get("pool", ())) for n in kernels] == [(2, 2)]
    matches_the_reference(g, rng)


STATISTICS_CASES = [
    # (batch, image, channels, filters): chunks on spans of SUM_SPAN rows from pairs of
    # output rows 14 (odd width), 16 and 10 rows long; several spans; two panels
    (37, (10, 7), 17, 19),
    (29, (8, 8), 16, 33),
    (3, (6, 5), 20, 16),
]


@pytest.mark.parametrize("case", STATISTICS_CASES, ids=str)
def test_batch_statistics_sum_on_span_boundaries(case, rng):
    """A convolution with its channel sums (BatchNormalization in training): the
    reference's values and the same bits on 1 and 2 threads."""
    batch, image, channels, filters = case
    g = _statistics_graph(image, channels, filters, (1, 1), (1, 1, 1, 1))
    statistics_match(g, batch, rng)


def test_the_host_tile_is_the_path_that_ran():
    t = tile()
    assert (t.vw, t.mr) in ((16, 12), (8, 6), (4, 6)), t


@pytest.mark.slow
def test_the_avx2_tile_computes_the_same(rng):
    """The AVX2 tile (8-float vectors, 6 rows: one panel of 16 columns), generated by the
    same code, run here on two threads."""
    shape = Tile(vw=8, mr=6)
    f32_conv = [p for p in PIECES if p.name == "conv"]  # the f32 convolutions alone
    text = runtime_ir(shape, pieces=f32_conv)
    code = LoadedCode(compile_module(text, CompileTimes()).object_code)
    rt = Runtime(code, CompileTimes(), False)
    rt.set_threads(2)
    for case in CASES[:6]:
        x, w, padding = _operands(rng, case)
        want = _reference(x, w, padding)
        got = _run(rt, conv_winograd.SYMBOL, x, w, padding)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(_run(rt, abi.CONV.symbol, x, w, padding), got)
        dy = rng.standard_normal(want.shape).astype(np.float32)
        attrs = dict(kernel=(3, 3), strides=(1, 1), dilation=(1, 1), padding=padding)
        want = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
        got = _run_filter(rt, conv_winograd.FILTER_SYMBOL, x, dy, padding)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
