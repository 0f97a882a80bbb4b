"""Attention's products read and write through strides: transposes around ``batch_matmul``
fold into its ``perm_a``/``perm_b``/``perm_out`` (passes/simplify.py) and the kernel reads
them in place (codegen/lowering/batch_products.py). And gelu's derivative is computed where gelu
is, so the backward product reads it instead of recomputing it."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients
from kcompile.passes.fuse import fuse
from kcompile.passes.simplify import simplify
from kcompile.runtime import make_executable
from tests.threads import on_threads

# Ragged attention: odd batch, 3 heads, sequences of 7 and 5, head size 5.
HEADS, T, S, H = 3, 7, 5, 5


def _attention(g: Graph):
    q = g.add_input("q", TensorType(DType.f32, (BATCH, T, HEADS, H)), "data")
    k = g.add_input("k", TensorType(DType.f32, (BATCH, S, HEADS, H)), "data")
    v = g.add_input("v", TensorType(DType.f32, (BATCH, S, HEADS, H)), "data")
    scores = B.batch_matmul(B.transpose(q, (0, 2, 1, 3)), B.transpose(k, (0, 2, 3, 1))) * 0.37
    e = B.exp(scores - B.reduce_max(scores, -1, keepdims=True))
    probs = e / B.reduce_sum(e, -1, keepdims=True)
    mixed = B.batch_matmul(probs, B.transpose(v, (0, 2, 1, 3)))
    return (q, k, v), B.transpose(mixed, (0, 2, 1, 3))  # [B, T, heads, H]


def _feeds(rng, n: int) -> dict:
    return {
        "q": rng.normal(size=(n, T, HEADS, H)).astype(np.float32),
        "k": rng.normal(size=(n, S, HEADS, H)).astype(np.float32),
        "v": rng.normal(size=(n, S, HEADS, H)).astype(np.float32),
        "w": rng.normal(size=(n, T, HEADS, H)).astype(np.float32),
    }


def _train_graph() -> Graph:
    g = Graph("attention")
    inputs, out = _attention(g)
    w = g.add_input("w", out.type, "data")
    loss = B.reduce_sum(out * w)
    grads = append_gradients(g, loss, list(inputs))
    g.set_outputs([("out", out)] + [(f"d{x.name}", d) for x, d in zip(inputs, grads)])
    return g


def test_transposes_and_the_scale_fold_into_the_products():
    g = simplify(_train_graph())
    assert not [n for n in g.nodes if n.op == "transpose"]
    products = [n for n in g.nodes if n.op == "batch_matmul"]
    assert len(products) == 6
    # The scores' scale: on the forward product, and on dQ and dK (from the scaled dS).
    assert sorted(n.attrs.get("alpha", 1.0) for n in products) == pytest.approx(
        [0.37, 0.37, 0.37, 1.0, 1.0, 1.0]
    )
    # dK comes out [.., H, S]: written as the product of the swapped operands.
    assert all(
        n.outputs[0].shape in ((BATCH, HEADS, T, S), (BATCH, T, HEADS, H), (BATCH, S, HEADS, H))
        for n in products
    )


def test_softmax_gradient_reads_the_softmax_not_its_exponentials():
    """Only the softmax and its row sums are kept for the backward pass: the exponentials
    are used by the softmax's own sum and division alone."""
    g = simplify(_train_graph())
    users = g.users()
    (exp,) = [n for n in g.nodes if n.op == "exp"]
    assert sorted(u.op for u in users[exp.outputs[0]]) == ["div", "reduce_sum"]


@pytest.mark.parametrize("threads", [1, 2])
def test_strided_products_match_the_interpreter(rng, threads):
    g = _train_graph()
    with on_threads(threads):
        exe = make_executable(g, "llvm")
        for n in (1, 5, 37):
            feeds = _feeds(rng, n)
            got, want = exe(feeds), interpret(g, feeds)
            for name in want:
                np.testing.assert_allclose(
                    got[name], want[name], rtol=2e-5, atol=2e-5, err_msg=name
                )


def _permuted_product(g: Graph, a, b, **attrs):
    return g.emit1("batch_matmul", [a, b], **attrs)


@pytest.mark.parametrize(
    "attrs, a_shape, b_shape",
    [
        # a read as [B, heads, T, H] out of [B, T, heads, H]; b as its transpose.
        ({"perm_a": (0, 2, 1, 3), "perm_b": (0, 2, 3, 1)}, (3, T, 2, H), (3, S, 2, H)),
        # written as [B, T, heads, H]; a transposed by the flag too.
        (
            {"perm_b": (0, 2, 1, 3), "perm_out": (0, 2, 1, 3), "transpose_a": True},
            (3, 2, S, T),
            (3, S, 2, H),
        ),
        # every transposition at once, both flags, a scale.
        (
            {
                "alpha": 0.25,
                "perm_a": (1, 0, 2, 3),
                "perm_b": (0, 2, 1, 3),
                "perm_out": (1, 0, 2, 3),
                "transpose_a": True,
                "transpose_b": True,
            },
            (2, 3, H, T),
            (3, S, 2, H),
        ),
    ],
)
def test_permuted_product_reference_gradient_and_kernel(rng, attrs, a_shape, b_shape):
    attrs = {"transpose_a": False, "transpose_b": False, **attrs}
    a_np = rng.normal(size=a_shape)
    b_np = rng.normal(size=b_shape)
    # The reference against numpy's einsum of the transposed operands.
    op_a = a_np.transpose(attrs.get("perm_a", range(4)))
    op_b = b_np.transpose(attrs.get("perm_b", range(4)))
    op_a = op_a.swapaxes(-1, -2) if attrs["transpose_a"] else op_a
    op_b = op_b.swapaxes(-1, -2) if attrs["transpose_b"] else op_b
    expected = (attrs.get("alpha", 1.0) * (op_a @ op_b)).transpose(attrs.get("perm_out", range(4)))

    g = Graph("permuted")
    a = g.add_input("a", TensorType(DType.f32, a_shape), "data")
    b = g.add_input("b", TensorType(DType.f32, b_shape), "data")
    y = _permuted_product(g, a, b, **attrs)
    assert y.shape == expected.shape
    w = g.add_input("w", y.type, "data")
    loss = B.reduce_sum(y * w)
    da, db = append_gradients(g, loss, [a, b])
    g.set_outputs([("y", y), ("loss", loss), ("da", da), ("db", db)])
    feeds = {"a": a_np, "b": b_np, "w": rng.normal(size=expected.shape)}
    out = interpret(g, feeds, np.float64)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-12)
    for name in ("a", "b"):
        numeric = numeric_gradient(g, feeds, name)
        np.testing.assert_allclose(out[f"d{name}"], numeric, rtol=1e-5, atol=1e-6)

    # The kernel against the reference (the gradient's products too), 1 and 2 threads.
    feeds32 = {k: v.astype(np.float32) for k, v in feeds.items()}
    want = interpret(g, feeds32)
    for threads in (1, 2):
        with on_threads(threads):
            got = make_executable(g, "llvm")(feeds32)
            for name in ("y", "da", "db"):
                np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


def test_gelu_derivative_is_computed_with_gelu():
    """The forward product's epilogue makes gelu and its derivative; the backward product's
    epilogue only multiplies (no erf), and the pre-activation is not kept."""
    g = Graph("ff")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 7, 12)), "data")
    w1 = g.add_input("w1", TensorType(DType.f32, (12, 20)), "param")
    w2 = g.add_input("w2", TensorType(DType.f32, (20, 3)), "param")
    y = B.matmul(B.gelu(B.matmul(x, w1)), w2)
    loss = B.reduce_sum(y * y)
    dw1, dw2 = append_gradients(g, loss, [w1, w2])
    g.set_outputs([("loss", loss), ("dw1", dw1), ("dw2", dw2)])
    fused = fuse(simplify(g))
    bodies = {n: n.attrs["body"] for n in fused.nodes if n.op == "fused"}
    with_gelu = [n for n, body in bodies.items() if any(m.op == "gelu" for m in body.nodes)]
    assert len(with_gelu) == 1
    body = bodies[with_gelu[0]]
    assert {m.op for m in body.nodes} >= {"matmul", "gelu", "gelu_grad"}
    assert [v.node.op for _, v in body.outputs] == ["gelu", "gelu_grad"]
    assert not any(
        m.op in ("erf", "gelu_grad")
        for n, b in bodies.items()
        if n not in with_gelu
        for m in b.nodes
    )

    rng = np.random.default_rng(3)
    exe = make_executable(g, "llvm")
    feeds = {"x": rng.normal(size=(5, 7, 12)).astype(np.float32)}
    params = {"w1": rng.normal(size=(12, 20)) * 0.5, "w2": rng.normal(size=(20, 3)) * 0.5}
    for name, value in params.items():
        exe.bind(name, value.astype(np.float32))
    got = exe(feeds)
    want = interpret(g, {**feeds, **{k: v.astype(np.float32) for k, v in params.items()}})
    for name in ("loss", "dw1", "dw2"):
        np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=2e-4, err_msg=name)


def _strided_case(m: int, n: int, k: int, layout: str):
    """A batch_matmul of logical [L0, L1, m, k] x [L0, L1, k, n] whose B is read with
    contiguous rows ("rows"), contiguous columns ("columns", a transposed B) or neither
    ("strided"), and whose A is row-major or transposed."""
    g = Graph("small")
    l1 = 3
    if layout == "rows":
        b = g.add_input("b", TensorType(DType.f32, (BATCH, l1, k, n)), "data")
        attrs = {}
    elif layout == "columns":
        b = g.add_input("b", TensorType(DType.f32, (BATCH, l1, n, k)), "data")
        attrs = {"transpose_b": True}
    else:  # logical (L0, L1, K, N) from physical (L0, K, N, L1): no unit stride
        b = g.add_input("b", TensorType(DType.f32, (BATCH, k, n, l1)), "data")
        attrs = {"perm_b": (0, 3, 1, 2)}
    transposed_a = layout == "columns"
    a_shape = (BATCH, l1, k, m) if transposed_a else (BATCH, l1, m, k)
    a = g.add_input("a", TensorType(DType.f32, a_shape), "data")
    attrs = {"transpose_a": transposed_a, "transpose_b": False, **attrs}
    g.set_outputs([("y", g.emit1("batch_matmul", [a, b], **attrs))])
    return g


@pytest.mark.parametrize("layout", ["rows", "columns", "strided"])
@pytest.mark.parametrize(
    "m, n, k", [(13, 37, 35), (40, 16, 32), (1, 3, 1), (7, 130, 17), (9, 20, 77)]
)
def test_small_product_kernel_matches_the_interpreter(rng, layout, m, n, k):
    """The kernel emitted per shape (codegen/lowering/small_products.py): ragged rows (a short last
    tile), ragged columns (masked stores), depths past and short of a register transpose's
    block, each way of packing B; 1 and 2 threads."""
    from kcompile.codegen.lowering.module import lower_graph
    from kcompile.codegen.lowering.small_products import fits_small, host_tile

    assert fits_small(m, n, k)
    g = _strided_case(m, n, k, layout)
    for threads in (1, 2):
        with on_threads(threads):
            exe = make_executable(g, "llvm")
            assert f"kc_small_{m}x{n}x{k}_v{host_tile().vw}" in lower_graph(exe.graph).llvm_ir
            for batch in (1, 5):
                feeds = {
                    v.name: rng.normal(
                        size=tuple(batch if d == BATCH else d for d in v.shape)
                    ).astype(np.float32)
                    for v in g.inputs
                }
                np.testing.assert_allclose(
                    exe(feeds)["y"], interpret(g, feeds)["y"], rtol=1e-5, atol=1e-5
                )


@pytest.mark.parametrize("vw", [8, 16])
def test_small_kernel_at_each_vector_width(rng, vw):
    """The 8-float path (AVX2 hosts) and the 16-float one (AVX-512), called directly with
    strided operands: LLVM lowers either width on any x86-64 host."""
    import ctypes

    from llvmlite import ir as llvm_ir

    from kcompile.codegen.building.target import CompileTimes, LoadedCode, compile_module
    from kcompile.codegen.lowering.small_products import small_product, tile_shape

    assert tile_shape(4, 8) == (6, 2) and tile_shape(2, 16) == (12, 2)
    assert tile_shape(8, 16) == (6, 4) and tile_shape(1, 16) == (16, 1)
    m, n, k = 13, 21, 19
    module = llvm_ir.Module()
    inner = small_product(module, m, n, k, vw=vw)
    assert small_product(module, m, n, k, vw=vw) is inner
    outer = llvm_ir.Function(module, inner.function_type, "entry")
    builder = llvm_ir.IRBuilder(outer.append_basic_block())
    builder.call(inner, list(outer.args))
    builder.ret_void()
    code = LoadedCode(compile_module(str(module), CompileTimes()).object_code)
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    signature = ctypes.CFUNCTYPE(None, ptr, i64, i64, ptr, i64, i64, ptr, i64, ctypes.c_float)
    entry = signature(code.address("entry"))
    a = rng.normal(size=(k, m)).astype(np.float32)  # A transposed: (rs, cs) = (1, m)
    b = rng.normal(size=(n, k + 2)).astype(np.float32)  # B transposed, padded rows
    c = np.full((m, n + 3), 7.0, np.float32)  # C with a row stride past its columns
    entry(a.ctypes.data, 1, m, b.ctypes.data, 1, k + 2, c.ctypes.data, n + 3, 0.5)
    np.testing.assert_allclose(c[:, :n], 0.5 * (a.T @ b[:, :k].T), rtol=1e-5, atol=1e-5)
    assert (c[:, n:] == 7.0).all()  # masked stores: nothing past the last column


def test_exponentials_rebuilt_from_the_softmax_match(rng):
    """Every later user of a softmax's exponentials reads ``y · sum`` instead: a product
    reassociated ((a · y) · sum), any other op through the product ``y · sum``."""
    g = Graph("softmax")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 3, 9)), "data")
    a = g.add_input("a", TensorType(DType.f32, (BATCH, 3, 9)), "data")
    e = B.exp(x - B.reduce_max(x, -1, keepdims=True))
    y = e / B.reduce_sum(e, -1, keepdims=True)
    g.set_outputs([("y", y), ("product", a * e), ("other", B.sqrt(e) + y)])
    simplified = simplify(g)
    users = simplified.users()
    (exp,) = [n for n in simplified.nodes if n.op == "exp"]
    assert sorted(u.op for u in users[exp.outputs[0]]) == ["div", "reduce_sum"]
    feeds = {"x": rng.normal(size=(5, 3, 9)) * 3, "a": rng.normal(size=(5, 3, 9))}
    want, got = interpret(g, feeds, np.float64), interpret(simplified, feeds, np.float64)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, err_msg=name)


def test_large_product_keeps_the_gemm_and_its_scale(rng):
    """A product past the small kernel's size runs through the runtime's GEMM, and a folded
    scale is then applied after it."""
    from kcompile.codegen.lowering.module import lower_graph
    from kcompile.codegen.lowering.small_products import fits_small

    m = n = k = 131
    assert not fits_small(m, n, k)
    g = Graph("large")
    a = g.add_input("a", TensorType(DType.f32, (BATCH, m, k)), "data")
    b = g.add_input("b", TensorType(DType.f32, (BATCH, n, k)), "data")
    g.set_outputs([("y", B.batch_matmul(a, b, transpose_b=True) * 0.5)])
    exe = make_executable(g, "llvm")
    assert "kc_small" not in lower_graph(exe.graph).llvm_ir
    assert [n.attrs.get("alpha") for n in exe.graph.nodes if n.op == "batch_matmul"] == [0.5]
    feeds = {"a": rng.normal(size=(3, m, k)), "b": rng.normal(size=(3, n, k))}
    feeds = {name: v.astype(np.float32) for name, v in feeds.items()}
    np.testing.assert_allclose(exe(feeds)["y"], interpret(g, feeds)["y"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "attrs, independent",
    [
        ({}, True),
        ({"perm_a": (0, 2, 1, 3), "perm_b": (0, 2, 3, 1), "perm_out": (0, 2, 1, 3)}, True),
        ({"perm_a": (1, 0, 2, 3)}, False),  # a's batch axis read from its second axis
        ({"perm_out": (1, 0, 2, 3)}, False),  # the result's batch axis written second
    ],
)
def test_a_product_is_row_independent_unless_a_permutation_moves_the_batch_axis(attrs, independent):
    """Loops split by batch rows and batch_rows chains run a node on slices of the batch
    only where its rows are independent (traits.rows_independent)."""
    g = Graph("rows")
    a = g.add_input("a", TensorType(DType.f32, (4, 4, 4, 4)), "data")  # any perm applies
    b = g.add_input("b", TensorType(DType.f32, (4, 4, 4, 4)), "data")
    y = _permuted_product(g, a, b, transpose_a=False, transpose_b=False, **attrs)
    assert y.node.traits.rows_independent(y.node) is independent
