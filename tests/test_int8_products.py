"""Integer products of quantized layers: ``matmul`` of ``i8`` operands gives the exact
``i32`` sums (reference), ``gradient_via`` sends a gradient to its proxy, and native code
(``passes.int8_products``: f32 products exact to ``EXACT_I8_DEPTH``, split beyond it)
gives the reference's numbers, the casts of bytes included."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, ShapeError, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.grad import append_gradients
from kcompile.ir.parser import parse_graph
from kcompile.ir.printer import print_graph
from kcompile.passes import PassManager, default_passes, int8_products
from kcompile.passes.int8_products import EXACT_I8_DEPTH
from kcompile.runtime import make_executable, prepare
from tests.threads import on_threads

F32, I8, I32 = DType.f32, DType.i8, DType.i32


def _quantized_dense(
    depth: int, width: int, transpose_b: bool = False, with_sums: bool = True
) -> Graph:
    """Keras's ``_int8_call`` on rows: abs-max quantized inputs times an int8 kernel,
    rescaled, plus a bias, a ReLU; with ``with_sums`` the i32 sums are an output too
    (else only the product's epilogue reads them)."""
    g = Graph("quantized_dense")
    x = g.add_input("x", TensorType(F32, (BATCH, depth)), "data")
    shape = (width, depth) if transpose_b else (depth, width)
    kernel = g.add_input("kernel", TensorType(I8, shape), "param")
    kscale = g.add_input("kernel_scale", TensorType(F32, (width,)), "param")
    bias = g.add_input("bias", TensorType(F32, (width,)), "param")
    amax = B.reduce_max(B.abs(x), -1, keepdims=True)
    scale = B.div(127.0, B.add(amax, 1e-7))
    q = B.cast(B.minimum(B.maximum(B.round_(B.mul(x, scale)), -127.0), 127.0), I8)
    acc = B.matmul(q, kernel, transpose_b=transpose_b)
    y = B.div(B.cast(acc, F32), B.mul(kscale, scale))
    y = B.maximum(B.add(y, bias), 0.0)
    g.set_outputs([("y", y), ("acc", acc)] if with_sums else [("y", y)])
    verify(g)
    return g


def _feeds(rng, n: int, depth: int, width: int, transpose_b: bool = False) -> dict:
    shape = (width, depth) if transpose_b else (depth, width)
    return {
        "x": rng.normal(size=(n, depth)).astype(np.float32),
        "kernel": rng.integers(-127, 128, size=shape).astype(np.int8),
        "kernel_scale": rng.uniform(10, 100, size=width).astype(np.float32),
        "bias": rng.normal(size=width).astype(np.float32),
    }


def test_integer_matmul_types_and_exact_reference(rng):
    g = Graph("int8_matmul")
    a = g.add_input("a", TensorType(I8, (BATCH, 5)), "data")
    b = g.add_input("b", TensorType(I8, (5, 3)), "param")
    out = B.matmul(a, b)
    assert out.type == TensorType(I32, (BATCH, 3))
    g.set_outputs([("out", out)])
    # The printed form parses back with its dtypes.
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)
    feeds = {"a": np.full((2, 5), -128, np.int8), "b": np.full((5, 3), -128, np.int8)}
    got = interpret(g, feeds)["out"]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.full((2, 3), 5 * 128 * 128, np.int32))
    with pytest.raises(ShapeError, match="one dtype"):
        B.matmul(a, g.add_input("f", TensorType(F32, (5, 3)), "param"))
    wide = B.cast(a, I32)
    with pytest.raises(ShapeError, match="both i8"):
        B.matmul(wide, B.cast(b, I32))


@pytest.mark.parametrize("integer_kernel", [True, False], ids=["igemm", "f32"])
@pytest.mark.parametrize(
    "depth, transpose_b, threads",
    [
        (48, False, 1),
        (300, True, 2),
        (EXACT_I8_DEPTH, False, 2),
        (EXACT_I8_DEPTH + 201, False, 1),
    ],
)
def test_quantized_dense_native_equals_reference(
    rng, monkeypatch, integer_kernel, depth, transpose_b, threads
):
    """Integer sums exact on both paths, operands at the int8 extremes (sums reach
    2**24), on one and two threads, one row and several, an odd depth: ``kc_igemm`` on
    the bytes (int32 sums, any depth); or f32 products of one part up to
    ``EXACT_I8_DEPTH`` and two beyond it, the kernel in bytes (``B_I8``: widened as
    ``kc_sgemm`` packs it, by rows or transposed)."""
    monkeypatch.setattr(int8_products, "INTEGER_KERNEL", integer_kernel)
    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the prepared graphs' cache keys no flag
    width = 40
    g = _quantized_dense(depth, width, transpose_b)
    prepared = prepare(g, PassManager(default_passes()))
    products = [
        n
        for node in prepared.nodes
        for n in ([node] + (node.attrs["body"].nodes if node.traits.kernel_body else []))
        if n.op == "matmul"
    ]
    assert products and all(p.attrs.get("precision") == "i8" for p in products)
    assert all(p.inputs[1].dtype is I8 for p in products)
    parts = 1 if integer_kernel else -(-depth // EXACT_I8_DEPTH)
    assert len(products) == parts, print_graph(prepared)
    assert all((p.inputs[0].dtype is I8) == integer_kernel for p in products)
    exe = make_executable(g, "llvm", PassManager(default_passes()))
    with on_threads(threads):
        for n in (1, 9, 70):
            _check_native(exe, g, rng, n, depth, width, transpose_b)


def _check_native(exe, g, rng, n, depth, width, transpose_b) -> None:
    feeds = _feeds(rng, n, depth, width, transpose_b)
    feeds["x"][0] = np.where(np.arange(depth) % 2, 5.0, -5.0)  # quantizes to ±127
    if transpose_b:
        feeds["kernel"][:, :] = -127
    else:
        feeds["kernel"][:, 0] = -127
    want = interpret(g, feeds)
    got = exe(feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name}, n={n}")


@pytest.mark.parametrize("threads", [1, 2])
def test_a_product_only_its_epilogue_reads_stays_in_tiles(rng, threads):
    """Without the i32 sums as an output, ``kc_igemm`` gets no C: each tile stays in its
    own buffer for the epilogue (rescale, bias, ReLU), which gives the same numbers; at
    2,700 rows in two slabs of A (``SLAB_BYTES``), the second's tiles tell the epilogue
    their rows in C (each row's own input scale)."""
    g = _quantized_dense(200, 70, with_sums=False)
    prepared = prepare(g, PassManager(default_passes()))
    kinds = [n.attrs.get("kind") for n in prepared.nodes if n.op == "fused"]
    assert kinds == ["row", "matmul"], print_graph(prepared)
    exe = make_executable(g, "llvm", PassManager(default_passes()))
    with on_threads(threads):
        for n in (1, 13, 64, 2700):
            _check_native(exe, g, rng, n, 200, 70, False)


def test_byte_casts_native_equal_reference(rng):
    """f32 -> i8/u8 saturates (NaN to 0) and truncates; i32 -> i8 wraps; bytes widen with
    their sign; u8 <-> i8 keep the bits."""
    g = Graph("byte_casts")
    x = g.add_input("x", TensorType(F32, (BATCH, 8)), "data")
    k = g.add_input("k", TensorType(I32, (BATCH, 8)), "data")
    as_i8 = B.cast(x, I8)
    as_u8 = B.cast(x, DType.u8)
    g.set_outputs(
        [
            ("i8", as_i8),
            ("u8", as_u8),
            ("wrapped", B.cast(k, I8)),
            ("widened", B.cast(as_i8, F32)),
            ("uwidened", B.cast(as_u8, I32)),
            ("reinterpreted", B.cast(B.cast(as_u8, I8), I32)),
            ("nonzero", B.cast(as_i8, DType.bool)),
        ]
    )
    verify(g)
    feeds = {
        "x": np.array([[-300.0, -128.7, -1.5, -0.4, 0.9, 127.9, 255.5, np.nan]] * 3, np.float32),
        "k": rng.integers(-1000, 1000, size=(3, 8)).astype(np.int32),
    }
    want = interpret(g, feeds)
    got = make_executable(g, "llvm", PassManager(default_passes()))(feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert got[name].dtype == want[name].dtype, name


def test_gradient_via_sends_the_gradient_to_its_proxy(rng):
    """Keras's custom gradient of a quantized Dense: the input's gradient is the float
    product's, the integer path gets none; the proxy product is gone after autodiff."""
    g = Graph("via")
    x = g.add_input("x", TensorType(F32, (BATCH, 6)), "data")
    w = g.add_input("w", TensorType(F32, (6, 4)), "param")
    q = B.cast(B.round_(x), I8)
    wq = B.cast(B.round_(w), I8)
    value = B.cast(B.matmul(q, wq), F32)
    y = B.gradient_via(value, B.matmul(x, w))
    loss = B.reduce_sum(B.mul(y, y))
    (gx,) = append_gradients(g, loss, [x])
    g.set_outputs([("loss", loss), ("grad_x", gx)])
    verify(g)
    feeds = {
        "x": rng.normal(size=(3, 6)).astype(np.float32) * 3,
        "w": rng.normal(size=(6, 4)).astype(np.float32) * 3,
    }
    out = interpret(g, feeds)
    ref_value = np.round(feeds["x"]) @ np.round(feeds["w"])
    # d(sum y^2)/dx through the proxy: 2 y w^T, y being the integer path's value.
    np.testing.assert_allclose(out["grad_x"], 2 * ref_value @ feeds["w"].T, rtol=1e-5)
    with pytest.raises(ShapeError, match="gradient_via"):
        B.gradient_via(value, B.matmul(x, B.slice_(w, [0, 0], [6, 3])))
    prepared = prepare(g, PassManager(default_passes()))
    assert all(n.op != "gradient_via" for n in prepared.nodes)


@pytest.mark.parametrize("channels, pooled", [(1, False), (32, False), (32, True)])
def test_quantized_convolution_native_equals_reference(rng, channels, pooled):
    """A conv2d of int8 values gives exact i32 sums natively too: a shallow stem, a 3x3
    stride-1 kernel over 32 channels (whose f32 convolution may take Winograd's path:
    ``EXACT`` keeps an int8 one off it, its transforms' fractions would round large
    sums), and one with a pooled epilogue."""
    g = Graph("quantized_conv")
    x = g.add_input("x", TensorType(F32, (BATCH, 10, 10, channels)), "data")
    w = g.add_input("w", TensorType(I8, (3, 3, channels, 24)), "param")
    q = B.cast(B.round_(x), I8)
    acc = B.conv2d(q, w, (1, 1), (1, 1), (1, 1, 1, 1))
    assert acc.dtype is I32
    y = B.mul(B.cast(acc, F32), 0.5)
    if pooled:
        windows = B.reshape(y, (BATCH, 5, 2, 5, 2, 24))
        y = B.reduce_max(windows, (2, 4))
    g.set_outputs([("y", y), ("acc", acc)])
    verify(g)
    exe = make_executable(g, "llvm", PassManager(default_passes()))
    for n in (1, 5):
        feeds = {
            "x": rng.integers(-127, 128, size=(n, 10, 10, channels)).astype(np.float32),
            "w": rng.integers(-127, 128, size=(3, 3, channels, 24)).astype(np.int8),
        }
        feeds["x"][0] = 127.0
        feeds["w"][..., 0] = 127
        want = interpret(g, feeds)
        got = exe(feeds)
        np.testing.assert_array_equal(got["acc"], want["acc"], err_msg=f"n={n}")
        np.testing.assert_array_equal(got["y"], want["y"], err_msg=f"n={n}")


def test_memory_report_shows_the_bytes_int8_kernels_save():
    """``kcompile memory``'s ledger: an int8 kernel is held in a byte an element, and
    the report says what float32 would have taken."""
    from kcompile.passes.memory import memory_report

    prepared = prepare(_quantized_dense(512, 256), PassManager(default_passes()))
    report = memory_report(prepared)
    assert report.narrow_inputs == {"int8": (512 * 256, 4 * 512 * 256)}
    assert "of which int8                   128.0 KiB (512.0 KiB in float32: 384.0 KiB saved)" in (
        report.text()
    )
