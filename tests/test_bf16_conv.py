"""The bf16 convolution (``codegen.library.bf16_conv``, ``kc_sconv_bf16``): each path this CPU has
(AMX-BF16; AVX512_BF16, taken with ``NO_AMX`` on a host that has both; the f32 one,
forced with ``PORTABLE``; the test ids say which, an engine is skipped with the reason
where absent) against numpy on bf16-rounded operands, at ragged sizes
(odd batch, channels not multiples of 16 or 32, strides, "same" and "valid" padding,
dilation, 1x1, 3x3, 5x5 and 1-D kernels), accumulating, on 1 and 2 threads; and compiled
``conv2d`` nodes of bf16 operands (forward, input gradient, fused epilogues, pooled)
under ``mixed_bfloat16`` against the reference interpreter."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from kcompile.codegen.building.target import host
from kcompile.codegen.library.bf16_conv import (
    BCONV,
    BCONV_ISA,
    NO_AMX,
    PORTABLE,
    W_BF16,
    X_BF16,
)
from kcompile.codegen.library.bf16_conv_filter import BFILTER, DY_BF16
from kcompile.codegen.library.bf16_gemm import has_amx, has_dp
from kcompile.codegen.library.gemm import ACCUMULATE
from kcompile.codegen.library.runtime_library import runtime
from kcompile.ir import abi
from kcompile.ir.ops.patches import _ref_conv, _ref_filter, output_size
from tests.test_conv_kernels import run_conv, run_filter
from tests.threads import on_threads

# (N, H, W, C, KH, KW, F, strides, dilation, padding (top, bottom, left, right))
CASES = [
    (3, 7, 9, 5, 3, 3, 7, (1, 1), (1, 1), (1, 1, 1, 1)),  # "same", odd everything
    (2, 8, 8, 3, 3, 3, 32, (2, 2), (1, 1), (0, 1, 0, 1)),  # depth 27 (< one tile), stride 2
    (5, 6, 5, 17, 1, 1, 33, (1, 1), (1, 1), (0, 0, 0, 0)),  # 1x1, a ragged column block
    (1, 1, 11, 4, 1, 3, 9, (1, 2), (1, 2), (0, 0, 2, 1)),  # 1-D, strided and dilated
    (3, 9, 9, 40, 3, 3, 40, (1, 1), (2, 2), (2, 2, 2, 2)),  # dilated "same"
    (3, 10, 11, 33, 5, 5, 65, (2, 2), (1, 1), (2, 2, 2, 2)),  # 5x5 stride 2 "same"
    (7, 12, 12, 32, 3, 3, 64, (1, 1), (1, 1), (0, 0, 0, 0)),  # the CNN's: whole blocks
    (5, 11, 11, 64, 3, 3, 32, (1, 1), (1, 1), (2, 2, 2, 2)),  # its input gradient
    (1, 2, 2, 3, 3, 3, 4, (1, 1), (1, 1), (1, 1, 1, 1)),  # every window mostly padding
    # 1x1 over 64 channels: a bf16 X's rows are the patches (read in place, X_IN_PLACE),
    # 3 whole blocks and a ragged one; then strided, whose patches are not X's rows
    (3, 5, 7, 64, 1, 1, 40, (1, 1), (1, 1), (0, 0, 0, 0)),
    (2, 6, 6, 32, 1, 1, 16, (2, 2), (1, 1), (0, 0, 0, 0)),
]
PATHS = {"amx": 1, "dp": 2, "f32": 3}
FLAGS = {"amx": 0, "dp": NO_AMX, "f32": PORTABLE}  # the bits that take each path


def _skip_unless(path: str) -> None:
    if path == "amx":
        if not has_amx(host().has):
            pytest.skip("this CPU has no AMX-BF16")
        if _isa() != PATHS["amx"]:
            pytest.skip("Linux refused this process the AMX tile state")
    if path == "dp" and not has_dp(host().has):
        pytest.skip("this CPU has no AVX512_BF16")


def _isa() -> int:
    return abi.bind(BCONV_ISA, runtime().addresses[BCONV_ISA.symbol])()


def _bf16(x: np.ndarray) -> np.ndarray:
    return x.astype(ml_dtypes.bfloat16).astype(np.float32)


def _conv(x, w, strides, dilation, padding, flags=0, out=None):
    return run_conv(x, w, strides, dilation, padding, flags, out, signature=BCONV)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bf16_conv_matches_the_reference(case, path, threads, rng):
    _skip_unless(path)
    n, h, width, c, kh, kw, f, strides, dilation, padding = case
    # Operands that are not bf16 values: the engines round them (the f32 path does not,
    # and is only ever given bf16 values: so those here).
    x = rng.standard_normal((n, h, width, c)).astype(np.float32)
    w = rng.standard_normal((kh, kw, c, f)).astype(np.float32)
    if path == "f32":
        x, w = _bf16(x), _bf16(w)
    attrs = dict(strides=strides, dilation=dilation, padding=padding)
    want = _ref_conv(None, [_bf16(x).astype(np.float64), _bf16(w).astype(np.float64)], attrs)[0]
    flag = FLAGS[path]
    got = _conv(x, w, strides, dilation, padding, flags=flag)
    # f32 sums in another order only: far tighter than the product of unrounded operands.
    depth = kh * kw * c
    tol = dict(rtol=1e-5, atol=1e-5 * np.sqrt(depth))
    np.testing.assert_allclose(got, want, **tol, err_msg=f"{path}")
    if path != "f32":
        unrounded = _ref_conv(None, [x.astype(np.float64), w.astype(np.float64)], attrs)[0]
        assert not np.allclose(got, unrounded, **tol)
    start = rng.standard_normal(want.shape).astype(np.float32)
    got = _conv(x, w, strides, dilation, padding, flags=flag | ACCUMULATE, out=start.copy())
    np.testing.assert_allclose(got, want + start, **tol, err_msg=f"{path} accumulate")


def _filter(x, dy, kernel, strides, dilation, padding, flags=0, out=None):
    return run_filter(x, dy, kernel, strides, dilation, padding, flags, out, signature=BFILTER)


# Kernel gradients: CASES, and one whose pixels (depth) run past a chunk's steps.
FILTER_CASES = [*CASES, (9, 15, 13, 19, 3, 3, 35, (1, 1), (1, 1), (1, 1, 1, 1))]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", FILTER_CASES, ids=str)
def test_bf16_kernel_gradient_matches_the_reference(case, path, threads, rng):
    _skip_unless(path)
    n, h, width, c, kh, kw, f, strides, dilation, padding = case
    pt, pb, pl, pr = padding
    oh = output_size(h, kh, strides[0], dilation[0], pt, pb)
    ow = output_size(width, kw, strides[1], dilation[1], pl, pr)
    x = rng.standard_normal((n, h, width, c)).astype(np.float32)
    dy = rng.standard_normal((n, oh, ow, f)).astype(np.float32)
    if path == "f32":
        x, dy = _bf16(x), _bf16(dy)
    attrs = dict(kernel=(kh, kw), strides=strides, dilation=dilation, padding=padding)
    want = _ref_filter(None, [_bf16(x).astype(np.float64), _bf16(dy).astype(np.float64)], attrs)
    want = want[0]
    flag = FLAGS[path]
    got = _filter(x, dy, (kh, kw), strides, dilation, padding, flags=flag)
    tol = dict(rtol=1e-5, atol=1e-5 * np.sqrt(n * oh * ow))
    np.testing.assert_allclose(got, want, **tol, err_msg=path)
    if path != "f32":
        plain = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
        assert not np.allclose(got, plain, **tol)
    start = rng.standard_normal(want.shape).astype(np.float32)
    got = _filter(x, dy, (kh, kw), strides, dilation, padding, flag | ACCUMULATE, start.copy())
    np.testing.assert_allclose(got, want + start, **tol, err_msg=f"{path} accumulate")
    # The same bits on any number of threads.
    with on_threads(1):
        once = _filter(x, dy, (kh, kw), strides, dilation, padding, flags=flag)
    np.testing.assert_array_equal(_filter(x, dy, (kh, kw), strides, dilation, padding, flag),
                                  once)  # fmt: skip


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", FILTER_CASES, ids=str)
def test_bf16_operands_give_the_float32_operands_bits(case, path, threads, rng):
    """``X_BF16`` / ``W_BF16`` (the convolution) and ``X_BF16`` / ``DY_BF16`` (its kernel
    gradient), alone and together: operands of bfloat16 elements give the bits of the
    call on the same values in float32 (which match the reference on them), accumulating
    or not."""
    _skip_unless(path)
    n, h, width, c, kh, kw, f, strides, dilation, padding = case
    geometry = (strides, dilation, padding)
    pt, pb, pl, pr = padding
    oh = output_size(h, kh, strides[0], dilation[0], pt, pb)
    ow = output_size(width, kw, strides[1], dilation[1], pl, pr)
    x16 = rng.standard_normal((n, h, width, c)).astype(ml_dtypes.bfloat16)
    w16 = rng.standard_normal((kh, kw, c, f)).astype(ml_dtypes.bfloat16)
    dy16 = rng.standard_normal((n, oh, ow, f)).astype(ml_dtypes.bfloat16)
    x, w, dy = (v.astype(np.float32) for v in (x16, w16, dy16))
    flag = FLAGS[path]
    attrs = dict(strides=strides, dilation=dilation, padding=padding)
    want = _ref_conv(None, [x.astype(np.float64), w.astype(np.float64)], attrs)[0]
    start = rng.standard_normal(want.shape).astype(np.float32)
    for acc in (0, ACCUMULATE):
        same = _conv(x, w, *geometry, flag | acc, start.copy())
        depth = kh * kw * c
        tol = dict(rtol=1e-5, atol=1e-5 * np.sqrt(depth))
        np.testing.assert_allclose(same, want + (start if acc else 0), **tol)
        for bits in (X_BF16, W_BF16, X_BF16 | W_BF16):
            xa, wa = (x16 if bits & X_BF16 else x), (w16 if bits & W_BF16 else w)
            got = _conv(xa, wa, *geometry, flag | acc | bits, start.copy())
            np.testing.assert_array_equal(got, same, err_msg=f"{path} bits={bits} acc={acc}")
    attrs["kernel"] = (kh, kw)
    want = _ref_filter(None, [x.astype(np.float64), dy.astype(np.float64)], attrs)[0]
    start = rng.standard_normal(want.shape).astype(np.float32)
    for acc in (0, ACCUMULATE):
        same = _filter(x, dy, (kh, kw), *geometry, flag | acc, start.copy())
        tol = dict(rtol=1e-5, atol=1e-5 * np.sqrt(n * oh * ow))
        np.testing.assert_allclose(same, want + (start if acc else 0), **tol)
        for bits in (X_BF16, DY_BF16, X_BF16 | DY_BF16):
            xa, da = (x16 if bits & X_BF16 else x), (dy16 if bits & DY_BF16 else dy)
            got = _filter(xa, da, (kh, kw), *geometry, flag | acc | bits, start.copy())
            np.testing.assert_array_equal(got, same, err_msg=f"{path} dW bits={bits} acc={acc}")


def _cnn(keras, seed: int):
    """A mixed_bfloat16 CNN whose convolutions take each path: a stem shallower than
    ``BCONV_MIN_DEPTH`` (kc_sconv), a strided 3x3, a 5x5 "same" max-pooled, a 1x1 and a
    Conv1D over channels not multiples of 16 (the tiles), a float32 head."""
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        return keras.Sequential(
            [
                keras.Input((11, 9, 3)),
                layers.Conv2D(20, 3, padding="same", activation="relu"),
                layers.Conv2D(24, 3, strides=2, activation="relu"),
                layers.Conv2D(33, 5, padding="same"),
                layers.MaxPooling2D(),
                layers.Conv2D(17, 1, activation="relu"),
                layers.Reshape((4, 17)),
                layers.Conv1D(19, 3, padding="same", activation="relu"),
                layers.Flatten(),
                layers.Dense(10, activation="softmax", dtype="float32"),
            ]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _engine_convs(model, step: str) -> list[bool]:
    """Whether each conv2d and conv2d_filter of ``model``'s optimized ``step`` graph runs
    on an engine's path (``conv_on_bf16_engine``), kernel bodies included."""
    from kcompile.codegen.lowering.products import conv_on_bf16_engine
    from kcompile.ir import parse_graph
    from kcompile.tools.inspect import pipeline_stages

    graph = parse_graph(pipeline_stages(model, step)[-1][1])
    found, pending = [], list(graph.nodes)
    while pending:
        node = pending.pop()
        if node.traits.kernel_body:
            pending += node.attrs["body"].nodes
        elif node.op in ("conv2d", "conv2d_filter"):
            found.append(conv_on_bf16_engine(node))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("path", list(PATHS))
def test_a_mixed_cnn_predicts_and_trains_as_the_reference(path, threads, monkeypatch, rng):
    """Native (the convolutions on ``path``) against the reference interpreter, same
    weights: predictions, and the weights after two SGD steps, within bf16 roundings
    (the sums run in another order; a rounding that flips travels)."""
    import kcompile as keras
    import kcompile.codegen.lowering.products as products

    _skip_unless(path)
    if path == "dp" and _isa() == PATHS["amx"]:
        pytest.skip("compiled models take AMX here (the kernel tests run the AVX512_BF16 path)")
    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    if path == "f32":
        monkeypatch.setattr(products, "has_conv_engine", lambda features: False)
    x = rng.standard_normal((7, 11, 9, 3)).astype(np.float32)
    y = rng.integers(0, 10, 7)
    results = {}
    for backend in ("llvm", "reference"):
        model = _cnn(keras, 3)
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
                      backend=backend)  # fmt: skip
        predicted = model.predict_on_batch(x)
        for _ in range(2):
            model.train_on_batch(x, y)
        results[backend] = (predicted, model.get_weights())
        if backend == "llvm":
            # The stem (27 deep: forward and kernel gradient) and the 1x1's input gradient
            # (17) stay on kc_sconv; the others (forward, stride-1 input gradients, kernel
            # gradients) take the path under test.
            on = _engine_convs(model, "train")
            assert len(on) == 13 and on.count(False) == (13 if path == "f32" else 3), on
    (got, got_w), (want, want_w) = results["llvm"], results["reference"]
    step = 2**-8
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * step * np.max(np.abs(want)))
    for k, (a, b) in enumerate(zip(got_w, want_w)):
        scale = max(float(np.max(np.abs(b))), 1e-2)
        np.testing.assert_allclose(a, b, rtol=0, atol=8 * step * scale, err_msg=f"weight {k}")


@pytest.mark.parametrize("value", [0.0, 0.1])
def test_pooled_and_patched_bf16_values_are_not_rounded_again(value, rng):
    """``hold_narrow_floats``: a maximum of bf16 values, and patches of a bf16 image padded
    with a value bf16 holds, are bf16 values (no ``round_to`` after them; 0.1 is not one:
    its patches are rounded), and the convolutions are marked for the engines; the
    reference computes the same before and after."""
    from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
    from kcompile.ir import build as B
    from kcompile.passes.narrow_floats import hold_narrow_floats

    g = Graph("pooled")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 6, 6, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3, 3, 3, 4)), "param")
    xb, wb = B.cast(x, DType.bf16), B.cast(w, DType.bf16)
    y = B.conv2d(xb, wb, padding=(1, 1, 1, 1))
    pooled = B.reduce_max(B.reshape(y, (BATCH, 3, 2, 3, 2, 4)), (2, 4))
    patches = B.extract_patches(xb, kernel=(3, 3), strides=(1, 1), dilation=(1, 1),
                                padding=(1, 1, 1, 1), value=value)  # fmt: skip
    g.set_outputs([("pooled", B.cast(pooled, DType.f32)), ("patches", B.cast(patches, DType.f32))])
    held = hold_narrow_floats(g)
    rounded = {n.inputs[0].node.op for n in held.nodes if n.op == "round_to" and n.inputs[0].node}
    assert "reduce_max" not in rounded and ("extract_patches" in rounded) == (value == 0.1)
    assert [n.attrs.get("precision") for n in held.nodes if n.op == "conv2d"] == ["bf16"]
    feeds = {
        "x": rng.standard_normal((3, 6, 6, 3)).astype(np.float32),
        "w": rng.standard_normal((3, 3, 3, 4)).astype(np.float32),
    }
    want, got = interpret(g, feeds), interpret(held, feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
