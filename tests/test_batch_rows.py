"""Batch-row chains (passes/batch_rows.py, codegen/lowering/batch_rows.py): attention's kernels run
one batch row at a time, its scores and their gradients kept in a row's scratch. The
chained graph computes what the graph did (reference interpreter, central differences),
and the native code computes what the reference does: ragged sizes (odd batch, odd
sequences, head sizes off the vector width), masks with and without a batch axis, 1 and
2 threads."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
import kcompile.passes.batch_rows as chains
from kcompile import layers
from kcompile.ir import BATCH, DType, Graph, TensorType, interpret, verify
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import PassManager, append_gradients, default_passes
from kcompile.runtime import make_executable
from tests.host_cpu import skip_where_the_host_is_avx2
from tests.threads import on_threads


@pytest.fixture
def small_links(monkeypatch):
    """Chains over the small tensors of a test (the pipeline links only large ones); the
    monkeypatch, for more. The compile cache off: it does not key on the threshold, so a
    step another test prepared (unchained) would come back from it."""
    monkeypatch.setattr(chains, "LINK_ROW_BYTES", 64)
    monkeypatch.setenv("KCOMPILE_CACHE", "0")
    return monkeypatch


def _attention_graph(heads: int, t: int, s: int, h: int, mask: str | None) -> Graph:
    """Attention's forward and backward: q [B, T, heads, H], k and v [B, S, heads, H];
    ``mask``: None, "batch" (a bool [B, T, S] input) or "causal" (a constant [T, S]),
    applied as Keras does (masked scores -1e9, masked probabilities 0)."""
    g = Graph("attention")
    q = g.add_input("q", TensorType(DType.f32, (BATCH, t, heads, h)), "data")
    k = g.add_input("k", TensorType(DType.f32, (BATCH, s, heads, h)), "data")
    v = g.add_input("v", TensorType(DType.f32, (BATCH, s, heads, h)), "data")
    scores = B.batch_matmul(B.transpose(q, (0, 2, 1, 3)), B.transpose(k, (0, 2, 3, 1)))
    scores = scores * (1.0 / np.sqrt(h))
    keep = None
    if mask == "batch":
        m = g.add_input("m", TensorType(DType.bool, (BATCH, t, s)), "data")
        keep = B.reshape(m, (BATCH, 1, t, s))
    elif mask == "causal":
        lower = np.tril(np.ones((t, s), dtype=bool)).ravel().tolist()
        keep = B.const_array(g, lower, DType.bool, (1, 1, t, s))
    if keep is not None:
        scores = B.select(keep, scores, -1e9)
    # The softmax as the front end writes it (kcompile/activations.py).
    e = B.exp(scores - B.stop_gradient(B.reduce_max(scores, -1, keepdims=True)))
    probs = e / B.reduce_sum(e, -1, keepdims=True)
    if keep is not None:
        probs = B.select(keep, probs, 0.0)
    mixed = B.transpose(B.batch_matmul(probs, B.transpose(v, (0, 2, 1, 3))), (0, 2, 1, 3))
    w = g.add_input("w", mixed.type, "data")
    # The backward reads the forward's result: a model's backward starts after its forward.
    loss = B.reduce_sum(mixed * mixed * w)
    grads = append_gradients(g, loss, [q, k, v])
    g.set_outputs(
        [("out", mixed), ("loss", loss)] + [(f"d{x.name}", d) for x, d in zip((q, k, v), grads)]
    )
    return g


def _feeds(rng, g: Graph, n: int, dtype=np.float32) -> dict:
    feeds = {}
    for v in g.inputs:
        shape = v.type.concrete_shape(n)
        if v.dtype is DType.bool:
            keep = rng.random(shape) < 0.7
            keep[..., 0] = True  # every query row sees a key
            feeds[v.name] = keep
        else:
            feeds[v.name] = rng.normal(size=shape).astype(dtype)
    return feeds


def _optimized(g: Graph) -> Graph:
    return PassManager(default_passes()).run(g)


def _chain_nodes(g: Graph):
    return [n for n in g.nodes if n.op == "batch_rows"]


def test_attention_forms_a_forward_and_a_backward_chain(small_links):
    g = _optimized(_attention_graph(3, 7, 5, 5, None))
    verify(g)
    forward, backward = _chain_nodes(g)
    ops = [[m.op for m in n.attrs["body"].nodes] for n in (forward, backward)]
    assert ops[0] == ["batch_matmul", "fused", "batch_matmul"]
    # dV, dP, the softmax gradient, dQ and dK (and at these small links the loss's
    # gradient loops): dP and dS never leave the chain.
    assert ops[1].count("batch_matmul") == 4
    body = backward.attrs["body"]
    kept = {v for _, v in body.outputs}
    rows = [m for m in body.nodes if m.attrs.get("kind") == "row"]
    assert len(rows) == 1 and rows[0].outputs[0] not in kept
    assert rows[0].inputs[0].node.op == "batch_matmul"  # dP, from the chain's own product


def test_the_pipeline_links_only_large_values():
    """At the test's sizes the scores are 420 bytes a row: no chain (the default)."""
    assert not _chain_nodes(_optimized(_attention_graph(3, 7, 5, 5, None)))


@pytest.mark.parametrize("mask", [None, "batch", "causal"])
def test_chained_graph_gradients_match_central_differences(rng, small_links, mask):
    g = _attention_graph(2, 5, 4, 3, mask)
    chained = _optimized(g)
    assert len(_chain_nodes(chained)) == 2
    feeds = _feeds(rng, g, 3, np.float64)
    out = interpret(chained, feeds, np.float64)
    want = interpret(g, feeds, np.float64)
    np.testing.assert_allclose(out["out"], want["out"], rtol=1e-12, atol=1e-12)
    for name in ("q", "k", "v"):
        np.testing.assert_allclose(
            out[f"d{name}"], numeric_gradient(g, feeds, name), rtol=1e-5, atol=1e-7, err_msg=name
        )


@pytest.mark.parametrize(
    "heads, t, s, h, mask",
    [
        (3, 7, 5, 5, None),
        (2, 37, 37, 20, None),  # tails of the per-head products' vectors and row tiles
        (3, 9, 9, 13, "batch"),
        (2, 19, 19, 20, "causal"),  # a mask without a batch axis: the chain splits itself
    ],
)
def test_chained_kernels_match_the_interpreter(rng, small_links, heads, t, s, h, mask):
    g = _attention_graph(heads, t, s, h, mask)
    exe = make_executable(g, "llvm")
    assert len(_chain_nodes(exe.compiled.graph)) == 2
    for threads in (1, 2):
        with on_threads(threads):
            for n in (1, 5, 11):
                feeds = _feeds(rng, g, n)
                got, want = exe(feeds), interpret(g, feeds)
                for name in want:
                    np.testing.assert_allclose(
                        got[name], want[name], rtol=3e-5, atol=3e-5, err_msg=f"{name} n={n}"
                    )


def test_a_value_read_outside_keeps_its_kernels_apart(small_links):
    """A chain never encloses a path that leaves it and comes back: the softmax's result
    also feeds a loop whose result the mixing product reads, so the product stays out."""
    g = Graph("detour")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 2, 6, 6)), "data")
    v = g.add_input("v", TensorType(DType.f32, (BATCH, 2, 6, 3)), "data")
    scores = B.batch_matmul(x, x, transpose_b=True)
    e = B.exp(scores - B.reduce_max(scores, -1, keepdims=True))
    probs = e / B.reduce_sum(e, -1, keepdims=True)
    y = B.batch_matmul(probs, B.batch_matmul(B.transpose(probs, (0, 1, 3, 2)), v))
    g.set_outputs([("y", y)])
    chained = _optimized(g)
    verify(chained)
    feeds = _feeds(np.random.default_rng(0), g, 3)
    np.testing.assert_allclose(
        interpret(chained, feeds)["y"], interpret(g, feeds)["y"], rtol=1e-6, atol=1e-6
    )
    exe = make_executable(g, "llvm")
    np.testing.assert_allclose(exe(feeds)["y"], interpret(g, feeds)["y"], rtol=3e-5, atol=3e-5)


@pytest.mark.slow  # two models compiled for each backend: ~4 s
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_trains_alike_on_both_backends(monkeypatch, small_links, causal):
    """Keras's MultiHeadAttention (a causal mask, or a padding mask from the data), one
    training step on each backend; the chains are made."""
    made = []
    find = chains.find_chains
    monkeypatch.setattr(chains, "find_chains", lambda g: made.append(find(g)) or made[-1])
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 11, 6)).astype("float32")
    mask = rng.random((5, 11, 11)) < 0.8
    mask[..., 0] = True
    y = rng.normal(size=(5, 11, 6)).astype("float32")
    results = {}
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(7)
        seq = keras.Input(shape=(11, 6))
        keep = keras.Input(shape=(11, 11), dtype="bool")
        mha = layers.MultiHeadAttention(3, 5)
        if causal:
            model = keras.Model(seq, mha(seq, seq, use_causal_mask=True))
        else:
            model = keras.Model([seq, keep], mha(seq, seq, attention_mask=keep))
        model.compile(keras.optimizers.SGD(0.1), "mse", backend=backend)
        loss = model.train_on_batch(x if causal else [x, mask], y)
        results[backend] = (loss, [w.numpy() for w in model.weights])
    assert any(len(c) == 2 for c in made)
    np.testing.assert_allclose(results["llvm"][0], results["reference"][0], rtol=1e-5)
    for a, b in zip(results["llvm"][1], results["reference"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # two builds of a model, one for another CPU: ~5 s
def test_the_avx2_build_of_chained_attention_trains_as_the_host_build(tmp_path, small_links):
    """The chains' kernels compiled for x86-64-v3 (AVX2, 8-float vectors: the CI machines'
    path) in an artifact: its predictions and train steps match the host build's."""
    skip_where_the_host_is_avx2()
    made = []
    find = chains.find_chains
    small_links.setattr(chains, "find_chains", lambda g: made.append(find(g)) or made[-1])

    def model():
        keras.utils.set_random_seed(3)
        seq = keras.Input(shape=(13, 10))
        attention = layers.MultiHeadAttention(3, 7)(seq, seq)
        out = layers.Dense(4, activation="softmax")(layers.GlobalAveragePooling1D()(attention))
        m = keras.Model(seq, out)
        m.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return m

    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 13, 10)).astype(np.float32)
    y = rng.integers(0, 4, 9).astype(np.int32)
    path = str(tmp_path / "v3.kc")
    manifest = model().export(path, cpu="x86-64-v3", probe=x)
    assert not [f for f in manifest["target"]["requires"] if f.startswith("avx512")]
    assert any(len(c) == 2 for c in made)  # the train step's forward and backward chains
    loaded, host = keras.load(path), model()
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), host.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    for _ in range(2):
        np.testing.assert_allclose(
            loaded.train_on_batch(x, y), host.train_on_batch(x, y), rtol=1e-5, atol=1e-6
        )
