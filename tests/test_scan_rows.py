"""Scans run on slices of the batch, one loop per thread (``codegen.lowering.scan``): which
bodies qualify (``ir.rows``), the sums over the batch that ``passes.loops`` moves out
of the backward loop so that it qualifies, and native train and predict steps against
the reference on 1, 2 and 3 threads at batch sizes that do not divide evenly."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.codegen.library.runtime_library import runtime
from kcompile.codegen.lowering.scan import MIN_SLICE_ROWS, splits_by_rows
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, parse_graph
from kcompile.ir import build as B
from kcompile.ir.rows import separable_rows
from kcompile.runtime import make_executable
from kcompile.tools.inspect import pipeline_stages
from tests.scan_graphs import scan_attrs

F32 = DType.f32


@pytest.fixture
def threads():
    rt = runtime()
    before = rt.threads()
    yield rt.set_threads
    rt.set_threads(before)


def _scans(model, step: str = "train") -> list:
    graph = parse_graph(pipeline_stages(model, step)[-1][1])
    return [n for n in graph.nodes if n.op == "scan"]


def _model(kind: str, units: int = 7):
    layer = {
        "lstm": layers.LSTM(units, return_sequences=True),
        "gru": layers.GRU(units, go_backwards=True),
        "simple": layers.SimpleRNN(units),
    }[kind]
    model = keras.Sequential([keras.Input(shape=(4, 3)), layer, layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple"])
def test_recurrent_layers_forward_and_backward_loops_split_by_rows(kind):
    keras.backend.clear_session()
    scans = _scans(_model(kind))
    assert len(scans) == 2  # the forward loop and its gradient
    assert all(splits_by_rows(n) for n in scans)
    backward = scans[1].attrs["body"]
    # the weight and bias gradients are summed over the batch after the loop, and their
    # accumulators (passed through unchanged) are no longer carries of it
    assert not [n for n in backward.nodes if n.op == "reduce_sum" and 0 in n.attrs["axes"]]
    assert scans[1].attrs["carries"] == scans[0].attrs["carries"]
    # the product through the recurrent kernel's transpose reads the kernel itself (the
    # split loop packs it once): no transposed copy before the loop
    products = [_product(n) for n in backward.nodes if _product(n) is not None]
    assert [n.attrs["transpose_b"] for n in products] == [True]
    graph = parse_graph(pipeline_stages(_model(kind), "train")[-1][1])
    kernel = [v for v in graph.inputs if v.name.endswith("recurrent_kernel")]
    assert len(kernel) == 1
    assert not [n for n in graph.nodes if n.op == "transpose" and n.inputs[0] is kernel[0]]


def _product(node):
    """The matrix product of a node: itself, or the one in a fused node's body."""
    if node.op == "matmul":
        return node
    if node.op == "fused" and node.attrs["kind"] == "matmul":
        return next(n for n in node.attrs["body"].nodes if n.op == "matmul")
    return None


def _graph_with_batch_mean(steps: int) -> Graph:
    """h' = tanh(x_t + h·u - mean over the batch of h): rows depend on each other."""
    g = Graph("centered")
    x = g.add_input("x", TensorType(F32, (BATCH, steps, 3)))
    u = g.add_input("u", TensorType(F32, (3, 3)), "param")
    body = Graph("step")
    h = body.add_input("h", TensorType(F32, (BATCH, 3)), "carry")
    xt = body.add_input("x", TensorType(F32, (BATCH, 3)), "step")
    ub = body.add_input("u", TensorType(F32, (3, 3)), "invariant")
    mean = B.reduce_sum(h, 0) * 0.25
    hn = B.tanh(xt + B.matmul(h, ub) - mean)
    body.set_outputs([("h", hn), ("y", hn)])
    attrs = scan_attrs(body, steps)
    h0 = B.const(g, 0.0, F32, (BATCH, 3))
    h_t, ys, *_ = g.emit("scan", [h0, x, u], attrs)
    g.set_outputs([("h", h_t), ("ys", ys)])
    return g


def test_a_body_that_mixes_rows_runs_whole_and_matches_the_reference(threads, rng):
    g = _graph_with_batch_mean(5)
    scan = next(n for n in g.nodes if n.op == "scan")
    assert not separable_rows(scan.attrs["body"]) and not splits_by_rows(scan)
    exe = make_executable(g, "llvm")
    u = (rng.normal(size=(3, 3)) * 0.5).astype(np.float32)
    exe.bind("u", u)
    threads(2)
    for n in (1, 9, 33):
        x = rng.normal(size=(n, 5, 3)).astype(np.float32)
        want = interpret(g, {"x": x, "u": u})
        got = exe({"x": x})
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_separable_rows_refuses_what_mixes_or_races():
    g = Graph("g")
    x = g.add_input("x", TensorType(F32, (BATCH, 4)))
    w = g.add_input("w", TensorType(F32, (4, 4)))
    g.set_outputs([("y", B.matmul(x, w) + B.reduce_sum(x, 1, keepdims=True))])
    assert separable_rows(g)
    for make in (
        lambda x, w: B.matmul(x, x, transpose_a=True),  # contracts the batch
        lambda x, w: B.reduce_sum(x, 0),  # sums the batch, and writes a value without it
        lambda x, w: B.transpose(x, (1, 0)),  # moves the batch off the leading axis
        lambda x, w: w * 2.0,  # a value without the batch, written by each slice
    ):
        h = Graph("h")
        xh = h.add_input("x", TensorType(F32, (BATCH, 4)))
        wh = h.add_input("w", TensorType(F32, (4, 4)))
        h.set_outputs([("y", make(xh, wh))])
        assert not separable_rows(h)


def _build(backend: str, kind: str, units: int):
    keras.backend.clear_session()
    keras.utils.set_random_seed(11)
    inputs = keras.Input(shape=(6, 3))
    masked = layers.Masking(0.0)(inputs)
    if kind == "lstm":
        # the inputs' dropout: one mask per sequence, of [T, N, F] time-major inputs
        seq = layers.Bidirectional(layers.LSTM(units, return_sequences=True, dropout=0.2))(masked)
        out = layers.LSTM(units, go_backwards=True)(seq)
    else:
        seq = layers.GRU(units, return_sequences=True, go_backwards=True)(masked)
        # recurrent dropout: masks of batch rows that every step reads; zeros out of
        # masked steps: the last output is a slice of the (time-major) stack
        out = layers.SimpleRNN(units, recurrent_dropout=0.25, zero_output_for_mask=True)(seq)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(out))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_train_and_predict_steps_on_slices_match_the_reference(kind, threads, rng):
    """Masked steps, go_backwards, a bidirectional pair and odd units, on 1, 2 and 3
    threads: batches of 9 and 33 rows cut into slices of unequal length."""
    native, reference = _build("llvm", kind, 5), _build("reference", kind, 5)
    assert all(splits_by_rows(n) for n in _scans(native))
    for count, n in [(1, 9), (2, 9), (3, 33), (2, 2 * MIN_SLICE_ROWS - 1), (2, 1)]:
        threads(count)
        x = rng.normal(size=(n, 6, 3)).astype(np.float32)
        x[: n // 2, -2:] = 0.0  # masked steps at the end of some sequences
        y = rng.integers(0, 3, n)
        np.testing.assert_allclose(
            native.predict_on_batch(x), reference.predict_on_batch(x), rtol=1e-5, atol=1e-6
        )
        assert native.train_on_batch(x, y) == pytest.approx(
            reference.train_on_batch(x, y), rel=1e-5
        )
        for a, b in zip(native.get_weights(), reference.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_profile_of_a_split_loop_counts_one_slice(threads):
    """On two threads each body kernel is counted in the first slice only: once per
    step of the sequence, as in a loop that runs whole."""
    from kcompile.tools import inspect

    keras.backend.clear_session()
    model = keras.Sequential([keras.Input(shape=(5, 3)), layers.GRU(4), layers.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    threads(2)
    result = inspect.profile_step(model, "predict", batch=2 * MIN_SLICE_ROWS + 1, calls=4)
    assert all(splits_by_rows(n) for n in _scans(model, "predict"))
    assert result.inner and all(calls == 4 * 5 for _, _, calls, _ in result.inner)
