"""bf16 values stored in bf16 buffers (``passes.narrow_storage``): the same bits as in f32
buffers, in fewer bytes; kernels outside the pass's table keep f32."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
import kcompile.codegen.lowering.products as products
from kcompile.codegen.building.target import host
from kcompile.codegen.library.bf16_gemm import has_engine
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.passes import PassManager, default_passes
from kcompile.passes.memory import memory_report
from kcompile.passes.narrow_floats import hold_narrow_floats
from kcompile.passes.narrow_storage import store_narrow
from kcompile.runtime import make_executable, prepare
from kcompile.tools.inspect import stage_graph
from tests.threads import on_threads

F32, BF16 = DType.f32, DType.bf16


def _bf16(x):
    return B.cast(x, BF16)


def _graph() -> Graph:
    """bf16 values a fused loop makes and others read: whole, sliced, summed, in a
    product's epilogue (not as its operand), through a reshape; results in f32."""
    g = Graph("narrow_storage")
    x = g.add_input("x", TensorType(F32, (BATCH, 6, 40)), "data")
    w = g.add_input("w", TensorType(F32, (40, 36)), "param")
    b = g.add_input("b", TensorType(F32, (36,)), "param")
    h = _bf16(B.tanh(_bf16(x)))  # made by a loop, read by several kernels below
    rows = B.reshape(h, (BATCH, 240))
    part = B.slice_(h, (0, 1, 0), (BATCH, 5, 10))
    total = B.reduce_sum(B.exp(part), 2)
    y = B.matmul(_bf16(B.exp(_bf16(x))), _bf16(w))
    z = B.add(y, _bf16(b))
    g.set_outputs(
        [
            ("rows", B.cast(B.mul(rows, rows), F32)),
            ("total", B.cast(total, F32)),
            ("z", B.cast(B.maximum(z, B.const(g, 0.0, BF16)), F32)),
        ]
    )
    verify(g)
    return g


def _narrow_values(graph: Graph) -> list:
    return [v for node in graph.nodes for v in node.outputs if v.dtype is BF16]


def test_values_fused_loops_make_and_read_are_stored_in_bf16():
    prepared = prepare(_graph(), PassManager(default_passes()))
    kept = prepare(_graph(), PassManager(default_passes({"store_narrow"})))
    assert _narrow_values(prepared) and not _narrow_values(kept)
    assert all(v.dtype is F32 for _, v in prepared.outputs)
    assert prepared.memory.arena_bytes < kept.memory.arena_bytes


def _without_engines(monkeypatch, engine: str) -> None:
    """``engine`` none: codegen told the CPU has no bf16 engine (the bf16 kernels' portable
    paths then read the bf16 operands); host: the CPU's own (the test says which ran)."""
    if engine == "none":
        monkeypatch.setattr(products, "has_engine", lambda features: False)
        monkeypatch.setattr(products, "has_conv_engine", lambda features: False)
    elif not has_engine(host().has):
        pytest.skip("this CPU has no bf16 engine")


def test_products_the_engines_take_read_operands_stored_in_bf16():
    if not has_engine(host().has):
        pytest.skip("this CPU has no bf16 engine: products keep f32 operands")
    prepared = prepare(_graph(), PassManager(default_passes()))
    products_read = [
        n
        for node in prepared.nodes
        for n in ([node, *node.attrs["body"].nodes] if node.op == "fused" else [node])
        if n.op == "matmul" and any(v.dtype is BF16 for v in n.inputs)
    ]
    assert products_read and all(n.outputs[0].dtype is F32 for n in products_read)


@pytest.mark.parametrize("engine", ["host", "none"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bf16_buffers_give_the_bits_of_f32_buffers(rng, monkeypatch, threads, engine):
    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    _without_engines(monkeypatch, engine)
    graph = _graph()
    runs = [
        make_executable(graph, "llvm", PassManager(default_passes(disable)))
        for disable in (set(), {"store_narrow"})
    ]
    with on_threads(threads):
        for n in (1, 5, 33):
            feeds = {
                "x": rng.normal(size=(n, 6, 40)).astype(np.float32),
                "w": rng.normal(size=(40, 36)).astype(np.float32),
                "b": rng.normal(size=36).astype(np.float32),
            }
            got, want = (exe(feeds) for exe in runs)
            reference = interpret(graph, feeds)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} n={n}")
                np.testing.assert_allclose(
                    got[name], reference[name], rtol=2**-7, atol=1e-5, err_msg=name
                )


def test_the_reference_runs_the_stored_graph_as_the_held_one(rng):
    held = hold_narrow_floats(_graph())
    passes = default_passes()
    before = [p.name for p in passes].index("store_narrow")
    fused = PassManager(passes[:before]).run(_graph())
    stored = store_narrow(fused)
    assert _narrow_values(stored)
    feeds = {
        "x": rng.normal(size=(3, 6, 40)).astype(np.float32),
        "w": rng.normal(size=(40, 36)).astype(np.float32),
        "b": rng.normal(size=36).astype(np.float32),
    }
    want = interpret(held, feeds)
    got = interpret(stored, feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _small_cnn():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(3)
        return keras.Sequential(
            [
                keras.Input((12, 12, 3)),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.MaxPooling2D(2),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.Flatten(),
                keras.layers.Dropout(0.25),
                keras.layers.Dense(5, activation="softmax", dtype="float32"),
            ]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("engine", ["host", "none"])
def test_a_mixed_precision_cnn_trains_to_the_same_bits_in_less_memory(rng, monkeypatch, engine):
    """Convolutions, pooling, dropout and a float32 head under ``mixed_bfloat16``: three
    Adam steps and a prediction with bf16 buffers and without."""
    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    _without_engines(monkeypatch, engine)
    x = rng.random((19, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 5, 19)
    results, arenas = [], []
    for disable in ("", "store_narrow"):
        monkeypatch.setenv("KCOMPILE_DISABLE", disable)
        model = _small_cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        keras.utils.set_random_seed(5)  # the same dropout masks
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        results.append((losses, model.predict_on_batch(x), model.get_weights()))
        arenas.append(memory_report(stage_graph(model, "train", "plan_memory")).arena)
    (losses, pred, weights), (losses2, pred2, weights2) = results
    assert losses == losses2
    np.testing.assert_array_equal(pred, pred2)
    for w, w2 in zip(weights, weights2):
        np.testing.assert_array_equal(w, w2)
    assert arenas[0] < arenas[1]
