"""An elementwise loop body whose costly functions feed one another, run in two stages
per row inside a loop split by batch rows (``codegen.lowering.staged_loops``): which bodies are
split where, and an LSTM's and a GRU's steps with and without the stages, bit for bit, on 1, 2 and 3
threads at batch sizes that do not divide evenly (slices of unequal length), and against
the reference."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.codegen.lowering import scan
from kcompile.codegen.lowering.module import lower_graph
from kcompile.codegen.lowering.staged_loops import crossing, stages
from kcompile.ir import BATCH, DType, Graph, TensorType
from kcompile.ir import build as B
from tests.threads import on_threads

F32 = DType.f32


def _inputs(g: Graph, *names: str):
    return [g.add_input(name, TensorType(F32, (BATCH, 8))) for name in names]


def _chained(result_between: bool) -> Graph:
    g = Graph("gates")
    x, y = _inputs(g, "x", "y")
    a = B.logistic(x)
    m = B.mul(a, y)
    t = B.tanh(m)
    outputs = [("a", a), ("t", t), ("h", B.mul(a, t))]
    g.set_outputs(outputs + ([("m", m)] if result_between else []))
    return g


@pytest.mark.parametrize("result_between", [True, False])
def test_the_second_stage_holds_what_a_costly_op_reaches_through_another(result_between):
    """tanh(logistic(x)·y) and what reads it: the product between them is made in the
    second stage (LLVM may fuse it into a sum there, as in one loop), unless it is also
    a result."""
    body = _chained(result_between)
    if result_between:  # a product the second stage would read is also a result
        assert stages(body) is None
        return
    early, late = stages(body)
    assert [n.op for n in early] == ["logistic"]
    assert [n.op for n in late] == ["mul", "tanh", "mul"]  # the product is made there
    assert crossing(body, early, late) == [early[0].outputs[0]]


def test_a_constant_read_by_both_stages_is_made_in_each():
    """... and a sum is handed over in a row of scratch (compiled: the GRU below)."""
    g = Graph("gates")
    (x,) = _inputs(g, "x")
    one = B.const(g, 1.0, F32, ())
    a = B.logistic(B.sub(one, x))
    g.set_outputs([("t", B.sub(one, B.tanh(a)))])
    early, late = stages(g)
    assert early[0].op == "constant" and late[0] is early[0]
    assert crossing(g, early, late) == [a]


def test_no_stages_without_a_chain():
    g = Graph("side_by_side")
    x, y = _inputs(g, "x", "y")
    g.set_outputs([("a", B.logistic(x)), ("b", B.mul(B.tanh(y), x))])
    assert stages(g) is None


def _model(kind: str):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    layer = layers.LSTM(7) if kind == "lstm" else layers.GRU(7, go_backwards=True)
    model = keras.Sequential(
        [keras.Input(shape=(5, 3)), layer, layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _train_executable(model):
    return next(e for key, e in model.compiled_steps.executables.items() if key[0] == "train")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_trains_to_the_same_bits_with_and_without_stages(kind, monkeypatch, rng, tmp_path):
    data = [
        (rng.normal(size=(n, 5, 3)).astype(np.float32), rng.integers(0, 3, n)) for n in (9, 33, 1)
    ]
    runs = {}
    for staged in (True, False):
        monkeypatch.setattr(scan, "STAGED_LOOPS", staged)
        # a cache of each setting's own: the cache does not see the flag
        monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path / str(staged)))
        for threads in (1, 2, 3):
            model = _model(kind)
            with on_threads(threads):
                losses = [model.train_on_batch(x, y) for x, y in data]
                outputs = model.predict_on_batch(data[0][0])
            llvm = lower_graph(_train_executable(model).compiled.graph).llvm_ir
            assert ("stage2.header" in llvm) == staged
            runs[staged, threads] = (losses, outputs, model.get_weights())
    for threads in (1, 2, 3):  # (the weight gradients' sums differ between thread counts)
        staged, plain = runs[True, threads], runs[False, threads]
        assert staged[0] == plain[0]
        np.testing.assert_array_equal(staged[1], plain[1], err_msg=f"{threads} threads")
        for a, b in zip(staged[2], plain[2]):
            np.testing.assert_array_equal(a, b, err_msg=f"{threads} threads")
    reference = _model(kind)
    reference.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend="reference")
    want = [reference.train_on_batch(x, y) for x, y in data]
    np.testing.assert_allclose(runs[True, 1][0], want, rtol=1e-5)
