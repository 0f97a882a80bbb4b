"""MultiHeadAttention's and GroupQueryAttention's ``activity_regularizer`` as Keras 3
applies it: to each of its EinsumDense projections' outputs (Keras passes it to them),
against real Keras on the same weights (skipped where no Keras is at hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from tests.keras_oracle import run_in_keras

# The model in both libraries: ``keras`` is kcompile or Keras.
BUILD = """
def build(keras, kind):
    inp = keras.Input((5, 8))
    if kind == "mha":
        layer = keras.layers.MultiHeadAttention(2, 4, activity_regularizer="l2", name="att")
    else:
        layer = keras.layers.GroupQueryAttention(
            head_dim=4, num_query_heads=4, num_key_value_heads=2,
            activity_regularizer="l2", name="att",
        )
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(layer(inp, inp)))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model
"""


def _build(kind: str):
    namespace: dict = {}
    exec(BUILD, namespace)
    return namespace["build"](keras, kind)


@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_the_activity_penalty_is_the_projections_as_in_keras(kind, tmp_path: Path):
    rng = np.random.default_rng(3)
    model = _build(kind)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.normal(size=(4, 5, 8)).astype(np.float32)
    y = rng.normal(size=(4, 3)).astype(np.float32)
    loss = float(model.train_on_batch(x, y))
    plain = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert loss > plain * 1.01  # (the penalty counts)
    np.savez(tmp_path / "case.npz", x=x, y=y, **{f"w{i}": w for i, w in enumerate(weights)})
    script = (
        "import numpy as np, keras\n"
        + BUILD
        + f"data = np.load(r'{tmp_path / 'case.npz'}')\n"
        + f"m = build(keras, '{kind}')\n"
        + "m.set_weights([data[f'w{i}'] for i in range(len(m.weights))])\n"
        + "print(float(m.train_on_batch(data['x'], data['y'])))\n"
    )
    result = run_in_keras(script, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    want = float(result.stdout.split()[-1])
    np.testing.assert_allclose(loss, want, rtol=1e-5)
