"""Elementwise loops above the size threshold run in chunks on the thread pool; the
results must equal the interpreter's at every batch size and thread count, in-place
updates included."""

import numpy as np
import pytest

from kcompile.codegen.library.parallel import PARALLEL_MIN_WORK
from kcompile.codegen.lowering.module import lower_graph
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.runtime import make_executable
from tests.threads import on_threads


@pytest.mark.parametrize("threads", [1, 2])
def test_big_fused_loops_in_chunks_match_the_interpreter(rng, threads):
    g = Graph("chunks")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 300)), "data")
    w = g.add_input("w", TensorType(DType.f32, (300, 200)), "param")
    m = g.add_input("m", TensorType(DType.f32, (300, 200)), "param")
    bias = g.add_input("b", TensorType(DType.f32, (300,)), "param")
    act = B.tanh(x * 2.0 + bias)  # batch-sized: chunked only for large batches
    new_m = m * 0.9 + w * 0.1  # an optimizer-like update of two weights in place
    g.set_outputs([("act", act), ("m", new_m), ("w", w - B.sqrt(B.abs(new_m) + 1e-3) * 0.01)])
    assert PARALLEL_MIN_WORK <= 300 * 200
    with on_threads(threads):
        exe = make_executable(g, "llvm")
        assert "_chunk" in lower_graph(exe.graph).llvm_ir  # the chunked path is compiled
        weights = rng.normal(size=(300, 200)).astype(np.float32)
        moments = rng.normal(size=(300, 200)).astype(np.float32)
        biases = rng.normal(size=300).astype(np.float32)
        exe.bind("w", weights)
        exe.bind("m", moments)
        exe.bind("b", biases)
        for n in (1, 50, 200, 333):
            xs = rng.normal(size=(n, 300)).astype(np.float32)
            want = interpret(g, {"x": xs, "w": weights.copy(), "m": moments.copy(), "b": biases})
            got = exe({"x": xs})
            np.testing.assert_allclose(got["act"], want["act"], rtol=2e-6, atol=2e-6)
            np.testing.assert_allclose(weights, want["w"], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(moments, want["m"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_row_wise_kernels_split_by_batch_match_the_interpreter(rng, threads):
    """Patches, their adjoint and pooling-like reductions run on slices of the batch
    (pointers advanced, ``n`` the slice) when the batch is big enough."""
    g = Graph("rows")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 12, 12, 8)), "data")
    patches = B.extract_patches(x, (3, 3), padding=(1, 1, 1, 1))
    pooled = B.reduce_max(B.reshape(x, (BATCH, 6, 2, 6, 2, 8)), (2, 4))
    folded = B.fold_patches(patches * 0.5, (12, 12), (3, 3), padding=(1, 1, 1, 1))
    g.set_outputs([("patches", patches), ("pooled", pooled), ("folded", folded)])
    with on_threads(threads):
        exe = make_executable(g, "llvm")
        assert "_split" in lower_graph(exe.graph).llvm_ir
        for n in (1, 3, 64, 77):
            xs = rng.normal(size=(n, 12, 12, 8)).astype(np.float32)
            want, got = interpret(g, {"x": xs}), exe({"x": xs})
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)


def test_gradient_accumulated_in_place_by_the_gemm(rng):
    """``acc = acc + xᵀ·g`` written over ``acc`` (an invariant's gradient in a loop):
    the product adds into the accumulator itself, with no epilogue."""
    g = Graph("accumulate")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 40)), "data")
    gy = g.add_input("g", TensorType(DType.f32, (BATCH, 24)), "data")
    acc = g.add_input("acc", TensorType(DType.f32, (40, 24)), "state")
    g.set_outputs([("acc", acc + B.matmul(x, gy, transpose_a=True))])
    exe = make_executable(g, "llvm")
    text = lower_graph(exe.graph).llvm_ir
    assert "kc_sgemm" in text and "_epilogue" not in text
    total = rng.normal(size=(40, 24)).astype(np.float32)
    exe.bind("acc", total)
    for n in (1, 17, 300):
        xs = rng.normal(size=(n, 40)).astype(np.float32)
        gs = rng.normal(size=(n, 24)).astype(np.float32)
        want = interpret(g, {"x": xs, "g": gs, "acc": total.copy()})["acc"]
        exe({"x": xs, "g": gs})
        np.testing.assert_allclose(total, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_batch_matmul_split_by_batch_rows_matches_the_interpreter(rng, threads):
    """Attention-shaped products (rows of the batch, heads, matrices): the kernel is split
    across threads by batch rows, each thread running its rows' products."""
    g = Graph("bmm")
    q = g.add_input("q", TensorType(DType.f32, (BATCH, 4, 16, 8)), "data")
    k = g.add_input("k", TensorType(DType.f32, (BATCH, 4, 24, 8)), "data")
    g.set_outputs([("scores", B.batch_matmul(q, k, transpose_b=True))])
    with on_threads(threads):
        exe = make_executable(g, "llvm")
        assert "_rows" in lower_graph(exe.graph).llvm_ir  # the batch-split wrapper
        for n in (1, 9, 130):
            feeds = {
                "q": rng.normal(size=(n, 4, 16, 8)).astype(np.float32),
                "k": rng.normal(size=(n, 4, 24, 8)).astype(np.float32),
            }
            got = exe(feeds)["scores"]
            np.testing.assert_allclose(got, interpret(g, feeds)["scores"], rtol=1e-5, atol=1e-5)
