"""keras.losses.circle and Circle on concrete arrays (and refused inside a compiled
step), keras.losses.ctc, CTC and keras.ops.ctc_loss (eager, traced, trained) and
keras.ops.ctc_decode (greedy: eager, traced, compiled), against Keras 3.15's numbers (``keras_fixtures/extras.npz``,
``fixture_scripts/make_extras_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Graph, TensorType, f32, interpret
from kcompile.ir import build as B
from kcompile.ir.differences import numeric_gradient
from kcompile.passes import append_gradients
from kcompile.tools.fuzz.oracle import run_compiled
from tests.fixture_scripts.make_extras_fixtures import (
    CIRCLE_CASES,
    DECODE_CASES,
    ctc_case,
    decode_case,
    embeddings,
    run_ctc,
)

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "extras.npz")


def test_circle_function_matches_keras():
    labels, e = embeddings()
    np.testing.assert_allclose(keras.losses.circle(labels, e), FIXTURE["circle/function"],
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    refs = np.random.default_rng(10).normal(size=(3, 4)).astype(np.float32)
    got = keras.losses.circle(labels, e, ref_labels=np.array([0, 1, 5]), ref_embeddings=refs,
                              remove_diagonal=False, margin=0.3)  # fmt: skip
    np.testing.assert_allclose(got, FIXTURE["circle/refs"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key", list(CIRCLE_CASES))
def test_circle_loss_reduces_over_the_positive_losses_as_keras(key):
    labels, e = embeddings()
    loss = keras.losses.Circle(**CIRCLE_CASES[key])
    np.testing.assert_allclose(loss(labels, e), FIXTURE[f"circle/{key}"], rtol=1e-5, atol=1e-5)
    weights = np.arange(6, dtype=np.float32) / 5
    np.testing.assert_allclose(loss(labels, e, sample_weight=weights),
                               FIXTURE[f"circle/{key}/weighted"], rtol=1e-5, atol=1e-5)  # fmt: skip
    assert keras.losses.deserialize(keras.losses.serialize(loss)).get_config() == loss.get_config()


def test_circle_is_refused_in_a_compiled_step():
    g = Graph("circle")
    y = TracedTensor(g.add_input("y", f32(BATCH, 4), "data"))
    with pytest.raises(NotImplementedError, match=r"keras\.losses\.circle inside a compiled"):
        keras.losses.circle(y, y)
    model = keras.Sequential([keras.Input((4,)), keras.layers.UnitNormalization()])
    model.compile("sgd", keras.losses.Circle())
    labels, e = embeddings()
    with pytest.raises(NotImplementedError, match=r"keras\.losses\.Circle inside a compiled"):
        model.train_on_batch(e, labels)


def test_ctc_loss_matches_keras():
    logits, labels, label_length, logit_length = ctc_case()
    got = keras.ops.ctc_loss(labels, logits, label_length, logit_length)
    np.testing.assert_allclose(got, FIXTURE["ctc_loss"], rtol=1e-5)
    got = keras.ops.nn.ctc_loss(labels, logits, label_length, logit_length, mask_index=2)
    np.testing.assert_allclose(got, FIXTURE["ctc_loss/blank_2"], rtol=1e-5)


@pytest.mark.slow
def test_ctc_loss_gradient_matches_central_differences():
    logits, labels, label_length, logit_length = ctc_case()
    g = Graph("ctc")
    x = g.add_input("x", f32(BATCH, 7, 5), "data")
    w = g.add_input("w", f32(BATCH), "data")
    ints = {name: g.add_input(name, TensorType(DType.i32, shape), "data")
            for name, shape in (("labels", (BATCH, 4)), ("lengths", (BATCH,)),
                                ("steps", (BATCH,)))}  # fmt: skip
    traced = [TracedTensor(v) for v in (ints["labels"], x, ints["lengths"], ints["steps"])]
    loss = B.reduce_sum(keras.ops.ctc_loss(*traced).value * w)
    (grad,) = append_gradients(g, loss, [x])
    g.set_outputs([("loss", loss), ("g", grad)])
    feeds = {"x": logits.astype(np.float64), "w": np.array([1.0, -0.5, 2.0]),
             "labels": labels, "lengths": label_length, "steps": logit_length}  # fmt: skip
    got = interpret(g, feeds, np.float64)
    np.testing.assert_allclose(got["loss"], FIXTURE["ctc_loss"] @ feeds["w"], rtol=1e-5)
    np.testing.assert_allclose(got["g"], numeric_gradient(g, feeds, "x"), rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_training_under_ctc_matches_keras():
    got = run_ctc(keras)
    for key in ("losses", "kernel", "bias"):
        np.testing.assert_allclose(got[key], FIXTURE[f"ctc/{key}"], rtol=1e-5, atol=1e-6)


def test_ctc_loss_class_matches_keras_reductions():
    logits, labels, _, _ = ctc_case()
    per_sample = keras.losses.ctc(labels, logits)
    want = keras.ops.ctc_loss(labels, logits, np.array([3, 2, 4]), np.array([7, 7, 7]))
    np.testing.assert_allclose(per_sample, want, rtol=1e-5)
    np.testing.assert_allclose(keras.losses.CTC()(labels, logits), want.mean(), rtol=1e-5)
    weights = np.array([1.0, 0.5, 2.0], np.float32)
    np.testing.assert_allclose(keras.losses.CTC(reduction="sum")(labels, logits, weights),
                               want @ weights, rtol=1e-5)  # fmt: skip
    assert isinstance(keras.losses.get("ctc"), keras.losses.CTC)


def _decode_graph(key: str) -> Graph:
    g = Graph("decode")
    inputs = g.add_input("x", f32(BATCH, 9, 4), "data")
    steps = g.add_input("lengths", TensorType(DType.i32, (BATCH,)), "data")
    out = keras.ops.nn.ctc_decode(TracedTensor(inputs), TracedTensor(steps), **DECODE_CASES[key])
    g.set_outputs([("decoded", out[0].value), ("scores", out[1].value)])
    return g


@pytest.mark.parametrize("key", list(DECODE_CASES))
def test_ctc_greedy_decode_matches_keras_eager_and_traced(key):
    x, lengths = decode_case()
    decoded, scores = keras.ops.ctc_decode(x, lengths, **DECODE_CASES[key])
    np.testing.assert_array_equal(decoded, FIXTURE[f"ctc_decode/{key}/decoded"])
    np.testing.assert_allclose(scores, FIXTURE[f"ctc_decode/{key}/scores"], rtol=1e-5)
    got = interpret(_decode_graph(key), {"x": x, "lengths": lengths})
    np.testing.assert_array_equal(got["decoded"], decoded)
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-6)


@pytest.mark.slow
def test_ctc_greedy_decode_compiles():
    x, lengths = decode_case()
    got = run_compiled(_decode_graph("default"), {"x": x, "lengths": lengths})
    np.testing.assert_array_equal(got["decoded"], FIXTURE["ctc_decode/default/decoded"])
    np.testing.assert_allclose(got["scores"], FIXTURE["ctc_decode/default/scores"], rtol=1e-5)


def test_ctc_beam_search_is_refused():
    x, lengths = decode_case()
    with pytest.raises(NotImplementedError, match="beam_search"):
        keras.ops.ctc_decode(x, lengths, strategy="beam_search")
