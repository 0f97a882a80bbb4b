"""Row kernels in phases (codegen/lowering/row_loops.py): softmax, layer normalization and their
gradients, each one loop per reduction over the row, against the reference at ragged
row lengths and batches, on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from kcompile.codegen.lowering.row_loops import plan_row
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret
from kcompile.ir import build as B
from kcompile.runtime import make_executable
from tests.host_cpu import skip_where_the_host_is_avx2
from tests.threads import on_threads


def _f32(*shape) -> TensorType:
    return TensorType(DType.f32, shape)


def _softmax(x):
    e = B.exp(x - B.reduce_max(x, -1, keepdims=True))
    total = B.reduce_sum(e, -1, keepdims=True)
    return e / total, total


def _softmax_graph(cols: int) -> Graph:
    """Attention's softmax: the probabilities and their row sums (kept for the gradient)."""
    g = Graph("softmax")
    x = g.add_input("x", _f32(BATCH, 3, cols))
    probs, total = _softmax(x)
    g.set_outputs([("probs", probs), ("total", total)])
    return g


def _softmax_gradient_graph(cols: int) -> Graph:
    g = Graph("softmax_grad")
    dy = g.add_input("dy", _f32(BATCH, 3, cols))
    y = g.add_input("y", _f32(BATCH, 3, cols))
    total = g.add_input("total", _f32(BATCH, 3, 1))
    inner = B.reduce_sum(-dy * y / total, -1, keepdims=True)
    g.set_outputs([("dx", (dy / total + inner) * y * total)])
    return g


def _layer_norm_graph(cols: int) -> Graph:
    """A residual, then layer normalization with gamma and beta; the sum and the inverse
    deviation are results too, and the centred row is read after a second reduction."""
    g = Graph("layer_norm")
    x = g.add_input("x", _f32(BATCH, cols))
    r = g.add_input("r", _f32(BATCH, cols))
    gamma = g.add_input("gamma", _f32(cols))
    beta = g.add_input("beta", _f32(cols))
    s = x + r
    centred = s - B.reduce_sum(s, -1, keepdims=True) / float(cols)
    variance = B.reduce_sum(centred * centred, -1, keepdims=True) / float(cols)
    inverse = 1.0 / B.sqrt(variance + 1e-3)
    g.set_outputs([("sum", s), ("y", centred * inverse * gamma + beta), ("inverse", inverse)])
    return g


def _max_of_a_made_row_graph(cols: int) -> Graph:
    """A maximum over a row the kernel makes (kept in a stack row) and over a result
    (read back from where it was stored), and one over an operand."""
    g = Graph("made_max")
    x = g.add_input("x", _f32(BATCH, cols))
    t = B.tanh(x) * 3.0
    u = x * x
    peak = B.reduce_max(t, -1, keepdims=True)
    low = -B.reduce_max(-x, -1, keepdims=True)
    g.set_outputs([("u", u), ("y", B.exp(t - peak) + low * B.reduce_max(u, -1, keepdims=True))])
    return g


GRAPHS = {
    "softmax": _softmax_graph,
    "softmax_gradient": _softmax_gradient_graph,
    "layer_norm": _layer_norm_graph,
    "made_max": _max_of_a_made_row_graph,
}


def _feeds(g: Graph, batch: int, rng) -> dict:
    feeds = {}
    for v in g.inputs:
        shape = tuple(batch if d == BATCH else d for d in v.shape)
        value = rng.normal(size=shape) * 2
        feeds[v.name] = (np.abs(value) + 0.5 if v.name == "total" else value).astype(np.float32)
    return feeds


def _row_nodes(exe):
    return [n for n in exe.graph.nodes if n.op == "fused" and n.attrs["kind"] == "row"]


@pytest.mark.parametrize("cols", [7, 37, 128, 130])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_row_kernel_in_phases_matches_the_reference(rng, name, cols):
    g = GRAPHS[name](cols)
    for threads in (1, 2):
        with on_threads(threads):
            exe = make_executable(g, "llvm")
            rows = _row_nodes(exe)
            assert rows, "the body became no row kernel"
            for node in rows:  # lowered in phases, not node by node
                body = node.attrs["body"]
                assert plan_row(body, node.attrs["row_shape"], node.attrs["cols"]) is not None
            for batch in (1, 5, 33):
                feeds = _feeds(g, batch, rng)
                got, want = exe(feeds), interpret(g, feeds)
                for key in want:  # sums differ in order: an ulp of the row's largest term
                    scale = float(np.abs(want[key]).max())
                    np.testing.assert_allclose(
                        got[key],
                        want[key],
                        rtol=2e-6,
                        atol=2e-6 * scale,
                        err_msg=f"{key} at N={batch}",
                    )


def test_softmax_is_three_passes_over_its_row():
    """The maximum, then one loop of exponentials and their sum, then one of the
    division; the exponentials are kept in a stack row between the two loops."""
    g = _softmax_graph(128)
    exe = make_executable(g, "llvm")
    (node,) = _row_nodes(exe)
    plan = plan_row(node.attrs["body"], node.attrs["row_shape"], node.attrs["cols"])
    assert plan.phases == 2
    assert [n.op for n in plan.between[0]] == ["reduce_max"]
    assert sorted(n.op for n in plan.loops[0]) == ["exp", "reduce_sum", "sub"]
    assert [n.op for n in plan.loops[1]] == ["div"]
    assert [v.node.op for v in plan.kept] == ["exp"]


def test_argmax_and_one_hot_keep_the_node_by_node_lowering():
    g = Graph("argmax")
    x = g.add_input("x", _f32(BATCH, 5))
    labels = g.add_input("labels", TensorType(DType.i32, (BATCH,)))
    hit = B.cast(B.eq(B.argmax(x, 1), labels), DType.f32)
    g.set_outputs(
        [("y", B.one_hot(labels, 5) * x - B.reduce_max(x, -1, keepdims=True)), ("h", hit)]
    )
    exe = make_executable(g, "llvm")
    rows = _row_nodes(exe)
    assert rows and any(
        plan_row(n.attrs["body"], n.attrs["row_shape"], n.attrs["cols"]) is None for n in rows
    )
    rng = np.random.default_rng(2)
    feeds = {"x": rng.normal(size=(9, 5)).astype(np.float32), "labels": rng.integers(0, 5, 9)}
    feeds["labels"] = feeds["labels"].astype(np.int32)
    got, want = exe(feeds), interpret(g, feeds)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6)


def _encoder():
    import kcompile as keras
    from kcompile import layers

    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=(7, 12))
    attention = layers.MultiHeadAttention(3, 4)(inputs, inputs)
    x = layers.LayerNormalization()(layers.Add()([inputs, attention]))
    ff = layers.Dense(20, activation="gelu")(x)
    x = layers.LayerNormalization()(layers.Add()([x, layers.Dense(12)(ff)]))
    outputs = layers.Dense(5, activation="softmax")(layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


@pytest.mark.slow
def test_the_avx2_build_of_an_encoder_block_trains_as_the_host_build(tmp_path):
    """Softmax and layer-normalization rows, their gradients and gelu's epilogue compiled
    for x86-64-v3 (AVX2, 8-float vectors: the CI machines' path) in an artifact: its
    predictions and a train step match the host build's."""
    skip_where_the_host_is_avx2()
    import kcompile as keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 7, 12)).astype(np.float32)
    y = rng.integers(0, 5, 9).astype(np.int32)
    path = str(tmp_path / "v3.kc")
    manifest = _encoder().export(path, cpu="x86-64-v3", probe=x)
    assert "avx2" in manifest["target"]["requires"]
    assert not [f for f in manifest["target"]["requires"] if f.startswith("avx512")]
    loaded, host = keras.load(path), _encoder()
    assert loaded.selfcheck()["reference"] < 1e-5
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), host.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    for _ in range(2):
        np.testing.assert_allclose(
            loaded.train_on_batch(x, y), host.train_on_batch(x, y), rtol=1e-5, atol=1e-6
        )
    for var, got, want in zip(host.weights, loaded.get_weights(), host.get_weights()):
        # The key projection's bias shifts each query's scores by one constant, which
        # softmax ignores: its gradient is zero but for each build's roundoff (~1e-6).
        atol = 2e-5 if var.path.endswith("key/bias") else 1e-6
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol, err_msg=var.path)


@pytest.mark.parametrize("cols", [7, 37, 128])
@pytest.mark.parametrize("reduction", ["softmax", "min"])
def test_row_maximum_propagates_nan_and_inf_as_numpy(cols, reduction):
    """A row's maximum is a compare and a select per vector with NaN tracked beside it
    (codegen/lowering/row_loops.py's reduce_row): a NaN anywhere in the row (a whole vector's lane,
    the columns past the last whole vector) makes the maximum NaN, as numpy's does."""
    g = Graph("nan_max")
    x = g.add_input("x", _f32(BATCH, cols))
    if reduction == "softmax":
        y = B.exp(x - B.reduce_max(x, -1, keepdims=True))
    else:
        y = -B.reduce_max(-x, -1, keepdims=True)
    g.set_outputs([("y", y)])
    exe = make_executable(g, "llvm")
    assert [n.attrs.get("kind") for n in exe.graph.nodes] == ["row"]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, cols)).astype(np.float32)
    x[0, 0] = np.nan
    x[1, cols // 2] = np.nan
    x[2, cols - 1] = np.nan
    x[3, cols // 3] = np.inf
    x[4, :] = -np.inf
    got, want = exe({"x": x}), interpret(g, {"x": x})
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-6)  # NaN where NaN
