"""kcompile against Keras 3's own numbers: the programs of ``keras_parity_programs``, run
by Keras (JAX backend) into ``keras_fixtures/`` by ``make_keras_fixtures.py`` (the Keras
version is in each file), and here by kcompile from the same starting weights —
predictions, the losses and metrics of three training steps, the weights after them,
and ``evaluate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile
from tests.keras_parity_programs import PROGRAMS, run

FIXTURES = Path(__file__).resolve().parent / "keras_fixtures"

# Keras's JAX backend loses the prediction's mask between the gradient and the metrics of
# a train step (the mask is kept by the tensor's id, and jax.value_and_grad returns new
# arrays), so its train_on_batch metrics count masked steps while its evaluate, and the
# TensorFlow and PyTorch backends, leave them out. kcompile masks both, as Keras means to
# (MeanMetricWrapper applies the mask); these programs' train-step metrics are not
# compared, their losses, weights and evaluate metrics are.
UNMASKED_TRAIN_METRICS = {"masked_tagger", "masking_layer"}


def _fixture(name: str) -> dict:
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


# The programs that take longest to compile and train run in the full suite only; the
# quick tier (-m "not slow") keeps the rest, one of each kind of model.
SLOW = {
    "autoencoder",
    "dynamic_lstm",
    "functional_guide",
    "layer_zoo",
    "loss_zoo",
    "masked_classifier",
    "separable",
    "transformer_block",
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(PROGRAMS)]
)
def test_kcompile_gives_kerass_numbers(name):
    want = _fixture(name)
    got = run(kcompile, name)
    np.testing.assert_array_equal(got["x"], want["x"])
    for i in range(sum(k.startswith("start/") for k in want)):
        np.testing.assert_array_equal(got[f"start/{i}"], want[f"start/{i}"], err_msg=name)
    checked = [k for k in want if k.split("/")[0] not in ("x", "y", "start", "versions")]
    if name in UNMASKED_TRAIN_METRICS:
        checked = [k for k in checked if not (k.startswith("train") and not k.endswith("loss"))]
    assert set(checked) <= set(got), sorted(set(checked) - set(got))
    for key in checked:
        np.testing.assert_allclose(
            got[key], want[key], rtol=2e-4, atol=2e-5, err_msg=f"{name}: {key} ({want['versions']})"
        )
