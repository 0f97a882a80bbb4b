"""keras.utils (pad_sequences, to_categorical, normalize, split_dataset) and keras.config,
against the examples of Keras's documentation."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras


def test_pad_sequences_as_keras_documents_it():
    sequence = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequence), [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequence, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequence, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    )
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequence, maxlen=2), [[0, 1], [2, 3], [5, 6]]
    )
    np.testing.assert_array_equal(
        keras.utils.pad_sequences(sequence, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]]
    )
    assert keras.utils.pad_sequences(sequence).dtype == np.int32
    assert keras.utils.pad_sequences([[]], maxlen=2).tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="padding and truncating"):
        keras.utils.pad_sequences(sequence, padding="middle")


def test_to_categorical_and_normalize():
    np.testing.assert_array_equal(
        keras.utils.to_categorical([0, 1, 2, 3], num_classes=4), np.eye(4, dtype="float32")
    )
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(keras.utils.normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(keras.utils.normalize(x, order=1), [[3 / 7, 4 / 7], [0, 0]])


def test_split_dataset():
    data = np.arange(10)
    left, right = keras.utils.split_dataset(data, left_size=0.8)
    assert left.tolist() == list(range(8)) and right.tolist() == [8, 9]
    (xl, yl), (xr, yr) = keras.utils.split_dataset((data, data * 2), right_size=3, shuffle=True)
    assert len(xl) == 7 and len(xr) == 3 and (yl == xl * 2).all() and (yr == xr * 2).all()
    assert sorted([*xl, *xr]) == list(range(10))
    with pytest.raises(ValueError, match="exceed"):
        keras.utils.split_dataset(data, left_size=8, right_size=5)


def test_config_switches_programs_call():
    assert keras.config.floatx() == "float32" and keras.config.epsilon() == 1e-7
    assert keras.config.image_data_format() == "channels_last"
    keras.config.disable_traceback_filtering()
    assert not keras.config.is_traceback_filtering_enabled()
    keras.config.enable_traceback_filtering()
    keras.config.enable_unsafe_deserialization()
    keras.config.set_floatx("float32")
    with pytest.raises(NotImplementedError, match="float32"):
        keras.config.set_floatx("float16")


def test_plot_model_renders_a_png_or_writes_dot_text(tmp_path, monkeypatch, capsys):
    from kcompile import layers

    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    x = layers.concatenate([layers.Dense(5, activation="relu")(a), b])
    model = keras.Model([a, b], layers.Dense(1)(x))
    text = keras.utils.model_to_dot(model, show_shapes=True, show_layer_activations=True)
    assert "a (InputLayer)|output: (None, 4)" in text and "activation: relu" in text
    edges = [line.strip() for line in text.splitlines() if "->" in line]
    assert len(edges) == 4  # a->dense, dense->concatenate, b->concatenate, ->dense_1
    import shutil

    if shutil.which("dot"):
        path = keras.utils.plot_model(model, str(tmp_path / "model.png"))
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr("kcompile.tools.plot.shutil.which", lambda name: None)
    path = keras.utils.plot_model(model, str(tmp_path / "other.png"))
    assert path.endswith("other.png.dot") and "apt-get install graphviz" in capsys.readouterr().out
