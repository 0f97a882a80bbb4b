"""ConvLSTM's weights in `.keras` files where Keras keeps them (``cell/vars``), so that
each side loads the other's files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.keras_oracle import run_in_keras


@pytest.mark.slow
def test_conv_lstm_round_trips_with_keras_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    inputs = keras.Input((3, 5, 5, 2))
    lstm = layers.ConvLSTM2D(2, 3)
    model = keras.Model(inputs, layers.Dense(1)(layers.Flatten()(lstm(inputs))))
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5, 2)).astype("float32")
    want = model.predict(x, verbose=0)
    path = tmp_path / "convlstm.keras"
    model.save(path)
    np.testing.assert_array_equal(keras.saving.load_model(path).predict(x, verbose=0), want)
    with zipfile.ZipFile(path) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        group = weights[f"layers/{lstm.name}/cell/vars"]
        assert [group[k].shape for k in sorted(group, key=int)] == [
            w.shape for w in lstm.get_weights()
        ]
    np.save(tmp_path / "x.npy", x)
    script = (
        "import keras, numpy as np, sys; d = sys.argv[1]; "
        "m = keras.saving.load_model(d + '/convlstm.keras'); "
        "np.save(d + '/y.npy', m.predict(np.load(d + '/x.npy'), verbose=0))"
    )
    result = run_in_keras(script, tmp_path, str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)
