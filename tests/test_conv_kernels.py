"""The runtime's implicit-GEMM convolution (``codegen/library/conv.py``), called directly and
through compiled ``conv2d`` nodes with fused epilogues, against the numpy reference at
ragged sizes (odd batch, odd channels, channel counts not multiples of 16, strides,
paddings, dilation, 1x1, 3x3 and 1-D kernels, deeper than one block), on 1 and 2
threads. The tile (and so the ISA path: AVX-512 12x32, AVX2 6x16) is the host's."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module
from kcompile.codegen.library.conv import GEOMETRY, KC, MAX_TAPS
from kcompile.codegen.library.gemm import Tile
from kcompile.codegen.library.runtime_library import PIECES, Runtime, runtime, runtime_ir, tile
from kcompile.ir import BATCH, DType, Graph, TensorType, abi, interpret
from kcompile.ir import build as B
from kcompile.ir.ops.patches import _ref_conv, _ref_filter, output_size
from kcompile.tools.fuzz.oracle import run_compiled
from tests.threads import on_threads

# (N, H, W, C, KH, KW, F, strides, dilation, padding (top, bottom, left, right))
CASES = [
    (3, 7, 9, 5, 3, 3, 7, (1, 1), (1, 1), (1, 1, 1, 1)),  # "same", odd everything
    (2, 8, 8, 3, 3, 3, 32, (2, 2), (1, 1), (0, 1, 0, 1)),  # the stem's depth 27, stride 2
    (5, 6, 5, 17, 1, 1, 33, (1, 1), (1, 1), (0, 0, 0, 0)),  # 1x1, a ragged panel
    (1, 1, 11, 4, 1, 3, 9, (1, 2), (1, 2), (0, 0, 2, 1)),  # 1-D, strided and dilated
    (2, 9, 9, 40, 3, 3, 40, (1, 1), (2, 2), (2, 2, 2, 2)),  # dilated "same"
    (1, 5, 6, KC + 37, 3, 3, 19, (1, 1), (1, 1), (1, 1, 1, 1)),  # channels cut in blocks
    (2, 1, 90, 1, 1, MAX_TAPS + 9, 5, (1, 1), (1, 1), (0, 0, 4, 4)),  # taps cut in blocks
    (7, 4, 4, 9, 3, 3, 70, (1, 1), (1, 1), (0, 0, 0, 0)),  # valid, 3 panels
    (1, 2, 2, 3, 3, 3, 4, (1, 1), (1, 1), (1, 1, 1, 1)),  # every window mostly padding
]


def run_conv(x, w, strides, dilation, padding, flags=0, out=None, signature=abi.CONV):
    """``kc_sconv`` (or a function of its ABI, ``signature``) through ctypes: the result
    [N, OH, OW, F] (added to ``out`` with the ACCUMULATE flag)."""
    rt = runtime()
    conv = abi.bind(signature, rt.addresses[signature.symbol])
    n, h, width, c = x.shape
    kh, kw, _, f = w.shape
    pt, pb, pl, pr = padding
    oh = output_size(h, kh, strides[0], dilation[0], pt, pb)
    ow = output_size(width, kw, strides[1], dilation[1], pl, pr)
    if out is None:
        out = np.full((n, oh, ow, f), np.nan, np.float32)
    sizes = dict(N=n, H=h, W=width, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, PH=1, PW=1)
    sizes.update(SH=strides[0], SW=strides[1], DH=dilation[0], DW=dilation[1], PT=pt, PL=pl)
    geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
    conv(geometry.ctypes.data, x.ctypes.data, w.ctypes.data, out.ctypes.data, flags, None, None)
    return out


def _reference(x, w, strides, dilation, padding):
    attrs = dict(strides=strides, dilation=dilation, padding=padding)
    return _ref_conv(None, [x.astype(np.float64), w.astype(np.float64)], attrs)[0]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_implicit_gemm_matches_the_reference(case, threads, rng):
    n, h, width, c, kh, kw, f, strides, dilation, padding = case
    x = rng.standard_normal((n, h, width, c)).astype(np.float32)
    w = rng.standard_normal((kh, kw, c, f)).astype(np.float32)
    want = _reference(x, w, strides, dilation, padding)
    got = run_conv(x, w, strides, dilation, padding)
    depth = kh * kw * c
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(depth))
    # ACCUMULATE adds to what C holds.
    start = rng.standard_normal(want.shape).astype(np.float32)
    got = run_conv(x, w, strides, dilation, padding, flags=1, out=start.copy())
    np.testing.assert_allclose(got, want + start, rtol=1e-4, atol=1e-4 * np.sqrt(depth))


def run_filter(
    x, dy, kernel, strides, dilation, padding, flags=0, out=None, signature=abi.CONV_FILTER
):
    """``kc_sconv_filter`` (or a function of its ABI, ``signature``) through ctypes: the
    kernel gradient [KH, KW, C, F]."""
    rt = runtime()
    conv_filter = abi.bind(signature, rt.addresses[signature.symbol])
    n, h, width, c = x.shape
    _, oh, ow, f = dy.shape
    kh, kw = kernel
    if out is None:
        out = np.full((kh, kw, c, f), np.nan, np.float32)
    sizes = dict(N=n, H=h, W=width, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, PH=1, PW=1)
    sizes.update(SH=strides[0], SW=strides[1], DH=dilation[0], DW=dilation[1])
    sizes.update(PT=padding[0], PL=padding[2])
    geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
    conv_filter(geometry.ctypes.data, x.ctypes.data, dy.ctypes.data, out.ctypes.data, flags)
    return out


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_kernel_gradient_matches_the_reference(case, threads, rng):
    """patchesᵀ·dY packed from the image, against the reference (and with ACCUMULATE)."""
    n, h, width, c, kh, kw, f, strides, dilation, padding = case
    x = rng.standard_normal((n, h, width, c)).astype(np.float32)
    oh = output_size(h, kh, strides[0], dilation[0], padding[0], padding[1])
    ow = output_size(width, kw, strides[1], dilation[1], padding[2], padding[3])
    dy = rng.standard_normal((n, oh, ow, f)).astype(np.float32)
    attrs = dict(kernel=(kh, kw), strides=strides, dilation=dilation, padding=padding)
    want = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
    tolerance = 1e-4 * np.sqrt(n * oh * ow)
    got = run_filter(x, dy, (kh, kw), strides, dilation, padding)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tolerance)
    start = rng.standard_normal(want.shape).astype(np.float32)
    got = run_filter(x, dy, (kh, kw), strides, dilation, padding, flags=1, out=start.copy())
    np.testing.assert_allclose(got, want + start, rtol=1e-4, atol=tolerance)


def test_a_large_image_splits_among_threads(threads, rng):
    """Enough rows for several chunks per thread (and the parallel path), forward and
    the kernel's gradient (several partial products)."""
    x = rng.standard_normal((9, 33, 31, 21)).astype(np.float32)
    w = rng.standard_normal((3, 3, 21, 45)).astype(np.float32)
    got = run_conv(x, w, (1, 1), (1, 1), (1, 1, 1, 1))
    want = _reference(x, w, (1, 1), (1, 1), (1, 1, 1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-3)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    attrs = dict(kernel=(3, 3), strides=(1, 1), dilation=(1, 1), padding=(1, 1, 1, 1))
    want = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
    got = run_filter(x, dy, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


def test_the_host_tile_is_the_path_that_ran():
    """Which ISA path these tests exercised: the host's tile."""
    t = tile()
    assert (t.vw, t.mr) in ((16, 12), (8, 6), (4, 6))


def _epilogue_graph(strides, padding, residual: bool) -> Graph:
    """conv2d, then a normalization's (x - mean) * scale + shift, a residual add and
    ReLU: the epilogue of the small ResNet's convolutions."""
    g = Graph("conv_epilogue")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 9, 7, 5)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 5, 19)), "param")
    mean = g.add_input("mean", TensorType(DType.f32, (19,)), "param")
    scale = g.add_input("scale", TensorType(DType.f32, (19,)), "param")
    y = B.conv2d(x, w, strides, (1, 1), padding)
    y = (y - mean) * scale
    if residual:
        r = g.add_input("r", TensorType(DType.f32, (BATCH, *y.shape[1:])), "data")
        y = y + r
    zero = B.const(g, 0.0, DType.f32, ())
    g.set_outputs([("y", B.select(B.gt(y, zero), y, zero))])
    return g


@pytest.mark.parametrize("residual", [False, True], ids=["bn_relu", "bn_add_relu"])
@pytest.mark.parametrize(
    "strides,padding", [((1, 1), (1, 1, 1, 1)), ((2, 2), (0, 1, 0, 1)), ((1, 2), (0, 0, 0, 0))]
)
def test_the_epilogue_fuses_into_the_convolution(strides, padding, residual, threads, rng):
    g = _epilogue_graph(strides, padding, residual)
    from kcompile.passes import PassManager, default_passes

    fused = PassManager(default_passes()).run(g)
    products = [n for n in fused.nodes if n.op == "fused" and n.attrs["kind"] == "matmul"]
    assert [n.attrs["body"].nodes[0].op for n in products] == ["conv2d"]
    assert not any(n.op in ("extract_patches", "conv2d") for n in fused.nodes)
    matches_the_reference(g, rng, (1, 7))


GRADIENT_CASES = [
    # (strides, padding, dilation, image, whether dX goes through the patches' adjoint)
    ((1, 1), (1, 1, 1, 1), (1, 1), (5, 6), False),  # stride 1: dX is a convolution
    ((2, 2), (0, 1, 0, 1), (1, 1), (6, 6), True),  # strided: dY·Wᵀ folded
    ((2, 2), (1, 1, 1, 1), (1, 1), (5, 4), True),
    ((1, 1), (0, 0, 0, 0), (1, 2), (5, 6), False),  # dilated "valid"
    ((1, 2), (1, 1, 0, 0), (1, 1), (5, 6), True),
    ((2, 1), (0, 0, 0, 0), (2, 1), (6, 6), True),  # strided and dilated
]


@pytest.mark.parametrize("strides,padding,dilation,image,folds", GRADIENT_CASES, ids=str)
def test_gradients_by_central_differences(strides, padding, dilation, image, folds, rng):
    """dX and dW of conv2d, and the gradients of conv2d_filter (dW) itself."""
    from kcompile.ir.differences import numeric_gradient
    from kcompile.passes import append_gradients

    g = Graph("conv_grad")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, *image, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 2, 3, 4)), "param")
    y = B.conv2d(x, w, strides, dilation, padding)
    loss = B.reduce_sum(B.tanh(y) * B.tanh(y), (0, 1, 2, 3))
    dx, dw = append_gradients(g, loss, [x, w])
    second = B.reduce_sum(B.tanh(dw), (0, 1, 2, 3))
    g.set_outputs([("loss", loss), ("dx", dx), ("dw", dw), ("second", second)])
    ops = {n.op for n in g.nodes}
    assert "conv2d_filter" in ops
    assert ("fold_patches" in ops) == folds
    feeds = {"x": rng.normal(size=(2, *image, 3)), "w": rng.normal(size=(3, 2, 3, 4))}
    out = interpret(g, feeds, np.float64)
    for name, grad in (("x", "dx"), ("w", "dw")):
        want = numeric_gradient(g, feeds, name)
        np.testing.assert_allclose(out[grad], want, rtol=1e-5, atol=1e-7, err_msg=grad)
    # conv2d_filter's own gradient rule, through x (both of its operands depend on it).
    d2x, d2w = append_gradients(g, second, [x, w])
    g.set_outputs([("second", second), ("d2x", d2x), ("d2w", d2w)])
    out = interpret(g, feeds, np.float64)
    for name, grad in (("x", "d2x"), ("w", "d2w")):
        want = numeric_gradient(g, feeds, name, output="second")
        np.testing.assert_allclose(out[grad], want, rtol=1e-5, atol=1e-7, err_msg=grad)


def _max_pooled(y, pool, size):
    """A max pooling over ``pool`` windows of the top-left part of ``y`` that they tile
    (as the narrowing pass leaves it)."""
    (ph, pw), (h, w_) = pool, size
    hp, wp = h // ph, w_ // pw
    y = B.slice_(y, (0, 0, 0, 0), (BATCH, hp * ph, wp * pw, 21))
    return B.reduce_max(B.reshape(y, (BATCH, hp, ph, wp, pw, 21)), (2, 4))


def _pooled_graph(pool, scale_sign: float, size=(13, 11)) -> Graph:
    """conv2d, a per-channel scale (of either sign: the epilogue runs before the
    maximum), ReLU, then a max pooling over ``pool`` windows of the result's top-left
    part that they tile (as the narrowing pass leaves it)."""
    g = Graph("conv_pool")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, *size, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 3, 21)), "param")
    scale = g.add_input("scale", TensorType(DType.f32, (21,)), "param")
    y = B.conv2d(x, w, (1, 1), (1, 1), (1, 1, 1, 1)) * scale
    y = y * B.const(g, scale_sign, DType.f32, ())
    zero = B.const(g, 0.0, DType.f32, ())
    y = B.select(B.gt(y, zero), y, zero) + B.const(g, 0.5, DType.f32, ())
    g.set_outputs([("y", _max_pooled(y, pool, size))])
    return g


@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (1, 2)], ids=str)
@pytest.mark.parametrize("scale_sign", [1.0, -1.0])
def test_a_max_pooling_fuses_into_the_convolution(pool, scale_sign, threads, rng):
    """The pooling joins the convolution's kernel (3x3 windows straddle the 12-row
    tiles; 6-row AVX2 tiles straddle 2x2 windows) and the full-size result is gone."""
    from kcompile.passes import PassManager, default_passes

    g = _pooled_graph(pool, scale_sign)
    fused = PassManager(default_passes()).run(g)
    kernels = [n for n in fused.nodes if n.op == "fused" and n.attrs["kind"] == "matmul"]
    assert [tuple(n.attrs.get("pool", ())) for n in kernels] == [pool]
    assert not any(n.op in ("reduce_max", "conv2d") for n in fused.nodes)
    matches_the_reference(g, rng)


def matches_the_reference(g: Graph, rng, batches=(1, 5, 40)) -> None:
    """The compiled graph's ``y`` at each of ``batches`` against the float64 reference,
    on random inputs."""
    for batch in batches:
        feeds = {v.name: rng.standard_normal(v.type.concrete_shape(batch)).astype(np.float32)
                 for v in g.inputs}  # fmt: skip
        got = run_compiled(g, feeds)
        want = interpret(g, feeds, np.float64)
        np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-4)


def _biased_pooled_graph(pool, size=(13, 11)) -> Graph:
    """conv2d, a per-channel bias, ReLU (as the layers write it) and 0.5 added: a body
    that never decreases as the product grows, then a max pooling."""
    g = Graph("conv_bias_pool")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, *size, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 3, 21)), "param")
    bias = g.add_input("bias", TensorType(DType.f32, (21,)), "param")
    y = B.conv2d(x, w, (1, 1), (1, 1), (1, 1, 1, 1)) + bias
    zero = B.const(g, 0.0, DType.f32, ())
    y = B.select(B.le(y, zero), zero, y) + B.const(g, 0.5, DType.f32, ())
    g.set_outputs([("y", _max_pooled(y, pool, size))])
    return g


def _pooled_kernel(g: Graph):
    from kcompile.passes import PassManager, default_passes

    fused = PassManager(default_passes()).run(g)
    (kernel,) = [n for n in fused.nodes if n.op == "fused" and n.attrs.get("pool")]
    return kernel


@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (1, 2)], ids=str)
def test_a_rising_epilogue_runs_once_per_pooling_window(pool, threads, rng):
    """Bias and ReLU commute with the maximum: the kernel pools the raw products and
    runs the body on each window's last row (3x3 windows straddle the tiles), with the
    numbers of the body run on every row and pooled after."""
    from kcompile.ir.ops.fused import pools_before_body, product_of

    g = _biased_pooled_graph(pool)
    body = _pooled_kernel(g).attrs["body"]
    assert pools_before_body(body, product_of(body))
    matches_the_reference(g, rng)


@pytest.mark.parametrize("scale_sign", [1.0, -1.0])
def test_a_scale_of_unknown_sign_keeps_the_body_on_every_row(scale_sign):
    from kcompile.ir.ops.fused import pools_before_body, product_of

    body = _pooled_kernel(_pooled_graph((2, 2), scale_sign)).attrs["body"]
    assert not pools_before_body(body, product_of(body))


def test_a_pooling_whose_input_is_needed_elsewhere_stays_apart(rng):
    """The convolution's full result is also a result of the graph: no fused pooling."""
    from kcompile.passes import PassManager, default_passes

    g = _pooled_graph((2, 2), 1.0, size=(12, 10))
    pooled = g.outputs[0][1]
    full = pooled.node.inputs[0].node.inputs[0]
    g.set_outputs([("y", pooled), ("full", full)])
    fused = PassManager(default_passes()).run(g)
    assert not any(n.attrs.get("pool") for n in fused.nodes if n.op == "fused")
    feeds = {v.name: rng.standard_normal(v.type.concrete_shape(3)).astype(np.float32)
             for v in g.inputs}  # fmt: skip
    got, want = run_compiled(g, feeds), interpret(g, feeds, np.float64)
    for name in ("y", "full"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [Tile(vw=8, mr=6), Tile(vw=4, mr=6)], ids=str)
def test_the_portable_tiles_compute_the_same(shape, rng):
    """The AVX2 tile (8-float vectors, 6 rows) and an SSE one (whose rows outnumber a
    vector's lanes: the kernel gradient packs dY one float at a time), generated by the
    same code; they run on this machine too, on two threads."""
    f32_conv = [p for p in PIECES if p.name == "conv"]  # the f32 convolutions alone
    text = runtime_ir(shape, pieces=f32_conv)
    code = LoadedCode(compile_module(text, CompileTimes()).object_code)
    rt = Runtime(code, CompileTimes(), False)
    rt.set_threads(2)
    conv = abi.bind(abi.CONV, rt.addresses[abi.CONV.symbol])
    conv_filter = abi.bind(abi.CONV_FILTER, rt.addresses[abi.CONV_FILTER.symbol])
    for n, h, width, c, kh, kw, f, strides, dilation, padding in CASES[:5] + CASES[-2:]:
        x = rng.standard_normal((n, h, width, c)).astype(np.float32)
        w = rng.standard_normal((kh, kw, c, f)).astype(np.float32)
        want = _reference(x, w, strides, dilation, padding)
        oh, ow = want.shape[1:3]
        sizes = dict(N=n, H=h, W=width, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, PH=1, PW=1)
        sizes.update(SH=strides[0], SW=strides[1], DH=dilation[0], DW=dilation[1])
        sizes.update(PT=padding[0], PL=padding[2])
        geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
        got = np.full(want.shape, np.nan, np.float32)
        conv(geometry.ctypes.data, x.ctypes.data, w.ctypes.data, got.ctypes.data, 0, None, None)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        dy = rng.standard_normal(want.shape).astype(np.float32)
        attrs = dict(kernel=(kh, kw), strides=strides, dilation=dilation, padding=padding)
        want_w = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
        got_w = np.full(want_w.shape, np.nan, np.float32)
        conv_filter(geometry.ctypes.data, x.ctypes.data, dy.ctypes.data, got_w.ctypes.data, 0)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-4, atol=1e-3)
    # The kernel gradient over whole rows, and a product whose chunks start on spans of
    # SUM_SPAN rows (COLUMNS_OWNED, as for an epilogue that sums columns).
    for n, h, width, c, kh, kw, f, padding in ROWS_CASES[:2]:
        x = rng.standard_normal((n, h, width, c)).astype(np.float32)
        w = rng.standard_normal((kh, kw, c, f)).astype(np.float32)
        want = _reference(x, w, (1, 1), (1, 1), padding)
        oh, ow = want.shape[1:3]
        sizes = dict(N=n, H=h, W=width, C=c, OH=oh, OW=ow, F=f, KH=kh, KW=kw, PH=1, PW=1)
        sizes.update(SH=1, SW=1, DH=1, DW=1, PT=padding[0], PL=padding[2])
        geometry = np.array([sizes[name] for name in GEOMETRY], np.int64)
        got = np.full(want.shape, np.nan, np.float32)
        conv(geometry.ctypes.data, x.ctypes.data, w.ctypes.data, got.ctypes.data, 2, None, None)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
        dy = rng.standard_normal(want.shape).astype(np.float32)
        attrs = dict(kernel=(kh, kw), strides=(1, 1), dilation=(1, 1), padding=padding)
        want_w = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
        got_w = np.full(want_w.shape, np.nan, np.float32)
        conv_filter(geometry.ctypes.data, x.ctypes.data, dy.ctypes.data, got_w.ctypes.data, 0)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-4, atol=1e-2)


def test_the_same_bits_on_any_number_of_threads(rng):
    """Each output (and each kernel-gradient element) is summed in one order whatever the
    number of threads: the partial products of the kernel's gradient are cut by pixels,
    not by threads."""
    x = rng.standard_normal((9, 33, 31, 21)).astype(np.float32)
    w = rng.standard_normal((3, 3, 21, 45)).astype(np.float32)
    dy = rng.standard_normal((9, 33, 31, 45)).astype(np.float32)
    window = ((1, 1), (1, 1), (1, 1, 1, 1))
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            results.append((run_conv(x, w, *window), run_filter(x, dy, (3, 3), *window)))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_a_shallow_window_takes_its_kernel_gradient_through_the_patches(rng):
    """A first layer's 3x3x1 window: dW = patchesᵀ·dY (a product of few rows), checked
    by central differences, compiled against the reference."""
    from kcompile.ir.differences import numeric_gradient
    from kcompile.passes import append_gradients

    g = Graph("shallow")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 6, 5, 1)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 1, 4)), "param")
    y = B.conv2d(x, w, (1, 1), (1, 1), (1, 1, 1, 1))
    loss = B.reduce_sum(B.tanh(y) * B.tanh(y), (0, 1, 2, 3))
    (dw,) = append_gradients(g, loss, [w])
    g.set_outputs([("loss", loss), ("dw", dw)])
    ops = {n.op for n in g.nodes}
    assert "extract_patches" in ops and "conv2d_filter" not in ops
    feeds = {"x": rng.normal(size=(3, 6, 5, 1)), "w": rng.normal(size=(3, 3, 1, 4))}
    out = interpret(g, feeds, np.float64)
    np.testing.assert_allclose(out["dw"], numeric_gradient(g, feeds, "w"), rtol=1e-5, atol=1e-7)
    feeds32 = {k: v.astype(np.float32) for k, v in feeds.items()}
    got = run_compiled(g, feeds32)
    np.testing.assert_allclose(got["dw"], out["dw"], rtol=1e-4, atol=1e-4)


def _statistics_graph(image, channels, filters, strides, padding) -> Graph:
    """conv2d and a BatchNormalization's training forward on its result: the batch mean
    (a sum over every axis but the channels), the variance about it, the normalization
    and ReLU; the centred value is read by two loops."""
    g = Graph("conv_statistics")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, *image, channels)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, channels, filters)), "param")
    y = B.conv2d(x, w, strides, (1, 1), padding)
    mean = B.mean(y, (0, 1, 2))
    centred = y - mean
    variance = B.mean(centred * centred, (0, 1, 2))
    normal = centred / B.sqrt(variance + 1e-3)
    zero = B.const(g, 0.0, DType.f32, ())
    g.set_outputs([("mean", mean), ("variance", variance), ("y", B.maximum(normal, zero))])
    return g


STATISTICS_CASES = [
    # (batch, image, channels, filters, strides, padding): rows past several spans of
    # SUM_SPAN, odd channels, 1 and 3 panels, strided and padded
    (37, (9, 7), 5, 19, (1, 1), (1, 1, 1, 1)),
    (41, (9, 7), 5, 70, (2, 2), (0, 1, 0, 1)),
    (13, (11, 10), 3, 32, (1, 2), (0, 0, 0, 0)),
    (1, (4, 5), 2, 7, (1, 1), (1, 1, 1, 1)),  # fewer rows than one span
]


@pytest.mark.parametrize("case", STATISTICS_CASES, ids=str)
def test_batch_statistics_sum_in_the_convolution_on_every_thread(case, rng):
    """The channel sums join the convolution's kernel (spans of rows into partials on
    every thread, added in span order): the reference's values, and the same bits on 1
    and 2 threads; the centred value is computed by each loop that reads it, not
    written."""
    from kcompile.codegen.library.conv import SUM_SPAN
    from kcompile.passes import PassManager, default_passes

    batch, image, channels, filters, strides, padding = case
    g = _statistics_graph(image, channels, filters, strides, padding)
    fused = PassManager(default_passes()).run(g)
    products = [n for n in fused.nodes if n.op == "fused" and n.attrs["kind"] == "matmul"]
    assert len(products) == 1 and not any(n.op == "conv2d" for n in fused.nodes)
    body = products[0].attrs["body"]
    assert [n.op for n in body.nodes] == ["conv2d", "reduce_sum"]
    full = [v for n in fused.nodes if n.op == "fused" for v in n.outputs if v.rank == 4]
    assert len(full) == 2, full  # the convolution's result and the normalized one
    rows = batch * np.prod(g.outputs[2][1].shape[1:3])
    assert batch == 1 or rows > 2 * SUM_SPAN
    statistics_match(g, batch, rng)


def statistics_match(g: Graph, batch: int, rng) -> None:
    """``_statistics_graph``'s results at ``batch`` against the float64 reference, and
    the same bits on 1 and 2 threads."""
    image, channels = g.inputs[0].shape[1:3], g.inputs[0].shape[3]
    feeds = {
        "x": rng.standard_normal((batch, *image, channels)).astype(np.float32),
        "w": rng.standard_normal(g.inputs[1].shape).astype(np.float32),
    }
    want = interpret(g, feeds, np.float64)
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            results.append(run_compiled(g, feeds))
    for name in want:
        np.testing.assert_allclose(results[0][name], want[name], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(results[0][name], results[1][name])


def _conv_bn_model(keras):
    from kcompile import layers

    x = keras.Input(shape=(9, 7, 3))
    y = layers.Conv2D(7, 3, padding="same", use_bias=False)(x)
    y = layers.Activation("relu")(layers.BatchNormalization()(y))
    y = layers.Conv2D(5, 3, padding="same", use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    y = layers.GlobalAveragePooling2D()(layers.Activation("relu")(y))
    return keras.Model(x, layers.Dense(3, activation="softmax")(y))


def test_the_normalization_gradient_sums_in_the_convolution_before_it(rng):
    """Both of BatchNormalization's gradient sums over the batch (of dY, and of dY times
    the centred value, computed again from the convolution's result) run in the
    epilogue of the convolution that makes dY; a train step's results are the
    reference's (tests/test_conv_layers.py checks a like model's gradients by central
    differences) and the same bits on 1 and 2 threads."""
    import kcompile as keras
    from kcompile.ir import parse_graph
    from kcompile.tools import inspect

    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(5)
        model = _conv_bn_model(keras)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend=backend)
        return model

    model = build("llvm")
    fused = parse_graph(inspect.pipeline_stages(model, "train")[-1][1])
    sums = [
        sum(1 for n in node.attrs["body"].nodes if n.op == "reduce_sum")
        for node in fused.nodes
        if node.op == "fused" and node.attrs["kind"] == "matmul"
    ]
    assert 2 in sums, sums
    x = rng.normal(size=(23, 9, 7, 3)).astype(np.float32)
    y = rng.integers(0, 3, 23)
    reference = build("reference")
    want = reference.train_on_batch(x, y, return_dict=True)["loss"]
    start = model.get_weights()
    weights = []
    for threads in (1, 2):
        model.set_weights(start)
        with on_threads(threads):
            assert model.train_on_batch(x, y, return_dict=True)["loss"] == pytest.approx(want)
        weights.append([w.numpy() for w in model.weights])
    for got, ref, other in zip(weights[0], reference.weights, weights[1]):
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(got, other)


# Kernel gradients of images of at least MIN_PIXELS pixels whose output rows are as wide
# as the image's: the path that packs nothing (``codegen/library/conv_filter_rows.py``), with
# taps past the left and right sides (edge columns wrapped, then subtracted), past the
# top and bottom, 1-wide and 5-wide windows, one-sided padding, channels past a sliver
# and filters past a panel. (N, H, W, C, KH, KW, F, padding)
ROWS_CASES = [
    (3, 17, 16, 5, 3, 3, 7, (1, 1, 1, 1)),
    (2, 16, 19, 13, 5, 5, 33, (2, 2, 2, 2)),
    (1, 20, 13, 40, 3, 1, 19, (1, 1, 0, 0)),
    (2, 23, 12, 3, 1, 3, 9, (0, 0, 1, 1)),
    (1, 16, 17, 4, 3, 3, 5, (0, 2, 2, 0)),
]


@pytest.mark.parametrize("case", ROWS_CASES, ids=str)
def test_a_kernel_gradient_over_whole_rows_packs_nothing(case, rng):
    from kcompile.codegen.library.conv_filter_rows import MIN_PIXELS

    n, h, width, c, kh, kw, f, padding = case
    assert h * width >= MIN_PIXELS
    x = rng.standard_normal((n, h, width, c)).astype(np.float32)
    oh = output_size(h, kh, 1, 1, padding[0], padding[1])
    ow = output_size(width, kw, 1, 1, padding[2], padding[3])
    assert ow == width  # the path's condition
    dy = rng.standard_normal((n, oh, ow, f)).astype(np.float32)
    attrs = dict(kernel=(kh, kw), strides=(1, 1), dilation=(1, 1), padding=padding)
    want = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
    tolerance = 1e-4 * np.sqrt(n * oh * ow)
    got = []
    for threads in (1, 2):
        with on_threads(threads):
            got.append(run_filter(x, dy, (kh, kw), (1, 1), (1, 1), padding))
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=tolerance)
    np.testing.assert_array_equal(got[0], got[1])
    start = rng.standard_normal(want.shape).astype(np.float32)
    more = run_filter(x, dy, (kh, kw), (1, 1), (1, 1), padding, flags=1, out=start.copy())
    np.testing.assert_allclose(more, want + start, rtol=1e-4, atol=tolerance)
