"""passes/reductions.py: factors constant along a sum's axes leave it, sums of centred
values vanish, element counts read the earliest value of their shape; and what that
buys BatchNormalization's training step."""

from __future__ import annotations

import numpy as np

import kcompile as keras
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, parse_graph
from kcompile.ir import build as B
from kcompile.passes import PIPELINE, PassManager, default_passes
from kcompile.passes.reductions import simplify_reductions
from kcompile.tools import inspect
from kcompile.tools.fuzz.oracle import run_compiled
from tests.threads import on_threads


def f32(*shape):
    return TensorType(DType.f32, shape)


def feeds(g: Graph, rng, n=5) -> dict:
    out = {}
    for v in g.inputs:
        shape = tuple(n if d is BATCH else d for d in v.shape)
        out[v.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def close(before: Graph, after: Graph, rng) -> None:
    data = feeds(before, rng)
    want, got = interpret(before, data), interpret(after, data)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


def reductions_over(g: Graph) -> list:
    return [n.inputs[0] for n in g.nodes if n.op == "reduce_sum"]


def test_factors_constant_along_the_axes_leave_the_sum_and_equal_sums_merge():
    rng = np.random.default_rng(0)
    g = Graph("bn_grad")
    dy, xm = g.add_input("dy", f32(BATCH, 7, 6)), g.add_input("xm", f32(BATCH, 7, 6))
    gamma, r = g.add_input("gamma", f32(6)), g.add_input("r", f32(6))
    a = B.reduce_sum(B.neg(dy * gamma * r), (0, 1))  # d mean
    b = B.reduce_sum(dy, (0, 1))  # d beta
    c = B.reduce_sum(xm * (dy * gamma), (0, 1))  # d variance
    d = B.reduce_sum((dy * r) * xm, (0, 1))  # d gamma
    g.set_outputs([("a", a), ("b", b), ("c", c), ("d", d)])
    out = simplify_reductions(g)
    # Two sums over whole tensors remain: sum(dy) and sum(dy * xm), in one order.
    operands = reductions_over(out)
    assert len(operands) == 2, [n.op for n in out.nodes]
    assert {v.shape for v in operands} == {(BATCH, 7, 6)}
    close(g, out, rng)


def test_a_sum_of_values_centred_on_their_mean_over_the_same_axes_is_zero():
    rng = np.random.default_rng(1)
    g = Graph("centred")
    x, c = g.add_input("x", f32(BATCH, 4, 3)), g.add_input("c", f32(1, 1, 3))
    mean = B.reduce_sum(x, (0, 1), keepdims=True) / B.numel(x, (0, 1))
    xm = x - mean
    zero = B.reduce_sum(c * xm + c * xm, (0, 1))  # a square's gradient, as autodiff writes it
    other = B.reduce_sum(x - mean, (0,))  # other axes: not zero
    g.set_outputs([("zero", zero), ("other", other)])
    out = simplify_reductions(g)
    sums = reductions_over(out)
    # The mean's own sum and the sum over other axes remain; the centred one is gone.
    assert len(sums) == 2
    data = feeds(g, rng)
    got = interpret(out, data)
    np.testing.assert_array_equal(got["zero"], np.zeros(3, np.float32))
    close(g, out, rng)


def test_an_element_count_reads_the_earliest_value_of_its_shape():
    g = Graph("count")
    x = g.add_input("x", f32(BATCH, 4))
    square = B.mul(B.exp(x), B.exp(x))
    g.set_outputs([("n", B.numel(square, (0, 1))), ("y", B.reduce_sum(square, (1,)))])
    out = simplify_reductions(g)
    count = next(n for n in out.nodes if n.op == "numel")
    assert count.inputs[0] is out.inputs[0]
    data = {"x": np.ones((3, 4), np.float32)}
    assert interpret(out, data)["n"] == 12.0


def test_batch_normalization_training_reads_each_tensor_fewer_times():
    """A Conv1D + BatchNormalization + ReLU stack's train step: the backward of each
    normalization keeps three passes over full tensors (the sums of dy and dy * (x - mean),
    and dx); every stage still computes what the traced graph computes."""
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input((9, 2)),
            # Without a bias: a bias before a normalization has a gradient of exactly zero,
            # which float32 computes as rounding noise that Adam then amplifies.
            layers.Conv1D(5, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.GlobalAveragePooling1D(),
            layers.Dense(3),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = inspect.check(model, "train")
    assert result.ok, result.text()
    without = [p for p in PIPELINE if p.name != "simplify_reductions"]
    assert full_passes(model, PIPELINE) <= full_passes(model, without) - 2


def full_passes(model, passes) -> int:
    """Fused kernels that read or write a [N, 9, 5] tensor, after fusion."""
    stages = dict(inspect.pipeline_stages(model, "train", passes))
    graph = parse_graph(stages["fuse"])
    full = (BATCH, 9, 5)
    return sum(
        1
        for n in graph.nodes
        if n.op == "fused" and any(v.shape == full for v in (*n.inputs, *n.outputs))
    )


def test_a_sum_over_the_batch_runs_in_chunks_with_the_same_bits():
    """A normalization's statistics: (x - mean)² summed over the batch and the image into
    per-channel partial sums, chunk by chunk, combined in chunk order. The results match
    the reference on 1 and 2 threads, bit for bit alike."""
    g = Graph("moments")
    x, mean = g.add_input("x", f32(BATCH, 33, 17, 24)), g.add_input("mean", f32(24))
    centred = x - mean
    g.set_outputs([("sq", centred * centred), ("var", B.reduce_sum(centred * centred, (0, 1, 2)))])
    fused = PassManager(default_passes()).run(g)
    assert [n.attrs["kind"] for n in fused.nodes if n.op == "fused"] == ["reduce"]
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((7, 33, 17, 24)).astype(np.float32),
             "mean": rng.standard_normal(24).astype(np.float32)}  # fmt: skip
    want = interpret(g, feeds, np.float64)
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            got = run_compiled(g, feeds)
            np.testing.assert_allclose(got["var"], want["var"], rtol=1e-5)
            np.testing.assert_allclose(got["sq"], want["sq"], rtol=1e-6)
            results.append(got["var"].tobytes())
    assert results[0] == results[1]
