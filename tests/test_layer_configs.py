"""Built-in layers' ``get_config()`` as Keras 3.15 writes it (``layer_config_cases``,
Keras's configs in ``keras_fixtures/layer_configs.json``), configs that lose nothing
through ``from_config`` and ``clone_model``, and the weight arguments those configs carry
honored in training: a regularizer adds its penalty to the loss and its gradient to the
step, a constraint projects the weight after the step, an initializer makes the weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.layer_config_cases import CASES

FIXTURE = json.loads((Path(__file__).parent / "keras_fixtures" / "layer_configs.json").read_text())
KERAS = FIXTURE["configs"]
WEIGHT_ARGUMENTS = ("_initializer", "_regularizer", "_constraint")


def make(case: str):
    return eval(CASES[case], {"L": layers})


def as_json(config: dict) -> dict:
    """The config without its name, as a ``.keras`` file holds it (tuples become lists)."""
    config = {k: v for k, v in config.items() if k != "name"}
    return json.loads(json.dumps(config))


def test_the_fixture_is_keras_3_15_and_covers_every_case():
    assert FIXTURE["keras_version"].startswith("3.15")
    assert set(KERAS) == set(CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_config_is_keras(case):
    if "error" in KERAS[case]:
        pytest.skip(f"Keras cannot make it here: {KERAS[case]['error']}")
    assert as_json(make(case).get_config()) == KERAS[case]


def weight_arguments(layer) -> dict:
    """The layer's initializers, regularizers and constraints, each as its class and
    config (None where unset)."""
    found = {}
    for name, value in vars(layer).items():
        if name.endswith(WEIGHT_ARGUMENTS) or name == "activity_regularizer":
            found[name] = None if value is None else (type(value), value.get_config())
    return found


@pytest.mark.parametrize("case", [c for c in CASES if "/" in c])
def test_from_config_loses_nothing(case):
    layer = make(case)
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    assert as_json(again.get_config()) == KERAS[case]
    assert weight_arguments(again) == weight_arguments(layer)
    assert weight_arguments(layer)  # (the rich cases all have some)


def test_dense_from_config_keeps_regularizer_and_initializer():
    config = layers.Dense(3, kernel_regularizer="l2", kernel_initializer="ones").get_config()
    dense = layers.Dense.from_config(config)
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L2)
    assert dense.kernel_regularizer.get_config() == {"l2": 0.01}
    assert isinstance(dense.kernel_initializer, keras.initializers.Ones)
    dense.build((None, 2))
    np.testing.assert_array_equal(dense.kernel.numpy(), np.ones((2, 3)))


def test_clone_model_keeps_regularizer_and_initializer():
    model = keras.Sequential(
        [
            keras.Input((2,)),
            layers.Dense(3, kernel_regularizer="l2", kernel_initializer="ones", name="d"),
        ]
    )
    clone = keras.models.clone_model(model)
    dense = clone.get_layer("d")
    assert dense.kernel_regularizer.get_config() == {"l2": 0.01}
    np.testing.assert_array_equal(dense.kernel.numpy(), np.ones((2, 3)))
    x = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    y = np.zeros((2, 3), np.float32)
    clone.compile(optimizer="sgd", loss="mse")
    mse = np.mean(x.sum(axis=1, keepdims=True).repeat(3, 1) ** 2)
    want = mse + 0.01 * 6.0  # l2 * sum(kernel²), the kernel all ones (2 x 3)
    np.testing.assert_allclose(clone.evaluate(x, y, verbose=0), want, rtol=1e-5)


# --- the regularizers kcompile used to refuse or drop, in a train step -------------------

L2, L1 = keras.regularizers.L2, keras.regularizers.L1

# (the layer given a regularizer or None, its input shape, the weight, the regularizer)
REGULARIZED = {
    "BatchNormalization gamma": (
        lambda r: layers.BatchNormalization(gamma_regularizer=r),
        (3,),
        "gamma",
        L2(0.25),
    ),
    "GroupNormalization gamma": (
        lambda r: layers.GroupNormalization(groups=1, gamma_regularizer=r),
        (4, 2),
        "gamma",
        L2(0.25),
    ),
    "DepthwiseConv2D depthwise": (
        lambda r: layers.DepthwiseConv2D(
            2, depth_multiplier=2, depthwise_initializer="ones", depthwise_regularizer=r
        ),
        (3, 3, 2),
        "kernel",
        L2(0.25),
    ),
    "SeparableConv2D pointwise": (
        lambda r: layers.SeparableConv2D(
            3,
            2,
            depthwise_initializer="ones",
            pointwise_initializer="ones",
            pointwise_regularizer=r,
        ),
        (3, 3, 2),
        "pointwise_kernel",
        L1(0.5),
    ),
    "SeparableConv2D depthwise": (
        lambda r: layers.SeparableConv2D(
            3,
            2,
            depthwise_initializer="ones",
            pointwise_initializer="ones",
            depthwise_regularizer=r,
        ),
        (3, 3, 2),
        "depthwise_kernel",
        L2(0.25),
    ),
    "Conv2DTranspose bias": (
        lambda r: layers.Conv2DTranspose(
            2, 2, kernel_initializer="ones", bias_initializer="ones", bias_regularizer=r
        ),
        (3, 3, 2),
        "bias",
        L2(0.25),
    ),
}


def one_sgd_step(layer, shape, lr=0.1, initial=None):
    """(the loss fit reports for one full-batch SGD step, the layer) on fixed data, the
    layer (its weights set to ``initial`` if given) followed by a Dense of ones."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    model = keras.Sequential(
        [keras.Input(shape), layer, layers.Flatten(), layers.Dense(1, kernel_initializer="ones")]
    )
    if initial is not None:
        layer.set_weights(initial)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], layer


@pytest.mark.parametrize("what", list(REGULARIZED))
def test_a_regularizer_adds_its_penalty_and_its_gradient(what):
    factory, shape, weight, regularizer = REGULARIZED[what]
    l1, l2 = regularizer.l1, regularizer.l2
    plain_loss, plain = one_sgd_step(factory(None), shape)
    loss, layer = one_sgd_step(factory(regularizer), shape)
    assert layer.get_config()[f"{what.split()[1]}_regularizer"]["config"] == (
        regularizer.get_config()
    )
    w0 = np.ones(getattr(layer, weight).shape)  # (every weight here starts at one)
    np.testing.assert_allclose(
        loss - plain_loss, l1 * np.abs(w0).sum() + l2 * np.square(w0).sum(), rtol=1e-5
    )
    # The same data gradient in both steps; the penalty's own, times the rate, besides.
    penalty_gradient = l1 * np.sign(w0) + 2 * l2 * w0
    np.testing.assert_allclose(
        getattr(layer, weight).numpy() - getattr(plain, weight).numpy(),
        -0.1 * penalty_gradient,
        rtol=1e-4,
        atol=1e-6,
    )


# --- constraints kcompile used to refuse, after a train step -----------------------------

# (the layer with a non_neg constraint, its input shape, the weight constrained)
CONSTRAINED = {
    "Conv3D": (lambda: layers.Conv3D(2, 2, kernel_constraint="non_neg"), (3, 3, 3, 1), "kernel"),
    "Conv2DTranspose": (
        lambda: layers.Conv2DTranspose(2, 2, kernel_constraint="non_neg"),
        (3, 3, 2),
        "kernel",
    ),
    "DepthwiseConv1D": (
        lambda: layers.DepthwiseConv1D(2, depthwise_constraint="non_neg"),
        (4, 2),
        "kernel",
    ),
    "DepthwiseConv2D": (
        lambda: layers.DepthwiseConv2D(2, depthwise_constraint="non_neg"),
        (3, 3, 2),
        "kernel",
    ),
    "SeparableConv2D": (
        lambda: layers.SeparableConv2D(2, 2, pointwise_constraint="non_neg"),
        (3, 3, 2),
        "pointwise_kernel",
    ),
    "LSTM": (lambda: layers.LSTM(3, recurrent_constraint="non_neg"), (4, 2), "recurrent_kernel"),
    "GRU": (lambda: layers.GRU(3, kernel_constraint="non_neg"), (4, 2), "kernel"),
    "ConvLSTM1D": (
        lambda: layers.ConvLSTM1D(2, 2, recurrent_constraint="non_neg"),
        (3, 4, 1),
        "recurrent_kernel",
    ),
    "GroupNormalization": (
        lambda: layers.GroupNormalization(
            groups=1, beta_initializer=keras.initializers.Constant(-1.0), beta_constraint="non_neg"
        ),
        (4, 2),
        "beta",
    ),
    "BatchNormalization": (
        lambda: layers.BatchNormalization(beta_constraint="non_neg"),
        (3,),
        "beta",
    ),
}


@pytest.mark.parametrize("what", list(CONSTRAINED))
def test_a_constraint_projects_the_weight_after_the_step(what):
    factory, shape, weight = CONSTRAINED[what]
    config = factory().get_config()
    del config["name"]
    free = type(factory()).from_config(
        {k: None if k.endswith("_constraint") else v for k, v in config.items()}
    )
    keras.Sequential([keras.Input(shape), free])
    initial = free.get_weights()
    one_sgd_step(free, shape, lr=0.01, initial=initial)
    _, layer = one_sgd_step(factory(), shape, lr=0.01, initial=initial)
    stepped = getattr(free, weight).numpy()
    assert stepped.min() < 0.0  # (so that the projection shows)
    np.testing.assert_array_equal(getattr(layer, weight).numpy(), np.maximum(stepped, 0.0))


def test_a_multi_head_attention_constraint_projects_its_kernels():
    inner = layers.MultiHeadAttention(2, 2, kernel_constraint="non_neg")
    inputs = keras.Input((3, 4))
    outputs = layers.Dense(1)(layers.Flatten()(inner(inputs, inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    rng = np.random.default_rng(1)
    model.fit(rng.normal(size=(4, 3, 4)), rng.normal(size=(4, 1)), verbose=0)
    for kernel in (inner._query_dense.kernel, inner._key_dense.kernel, inner._output_dense.kernel):
        assert kernel.numpy().min() >= 0.0


def test_an_embedding_constraint_is_kept_and_refuses_lora_as_keras():
    embedding = layers.Embedding(5, 2, embeddings_constraint="non_neg")
    model = keras.Sequential([keras.Input((3,), dtype="int32"), embedding, layers.Flatten()])
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    ids = np.array([[0, 1, 2], [3, 4, 0]], np.int32)
    model.fit(ids, np.full((2, 6), -5.0, np.float32), verbose=0)
    assert embedding.embeddings.numpy().min() >= 0.0
    with pytest.raises(ValueError, match="incompatible with embedding constraints"):
        embedding.enable_lora(2)


def test_initializers_make_the_weights():
    bn = layers.BatchNormalization(
        gamma_initializer="zeros",
        beta_initializer="ones",
        moving_mean_initializer="ones",
        moving_variance_initializer=keras.initializers.Constant(3.0),
    )
    bn.build((None, 2))
    assert [w.numpy().tolist() for w in bn.weights] == [[0, 0], [1, 1], [1, 1], [3, 3]]
    gn = layers.GroupNormalization(groups=1, gamma_initializer="zeros", beta_initializer="ones")
    gn.build((None, 3, 2))
    assert [w.numpy().tolist() for w in gn.weights] == [[0, 0], [1, 1]]
    embedding = layers.Embedding(3, 2)
    embedding.build((None, 4))
    assert np.abs(embedding.embeddings.numpy()).max() <= 0.05  # Keras's "uniform"
    lstm = layers.LSTM(2, recurrent_initializer="identity", bias_initializer="ones")
    lstm.build((None, 3, 2))
    np.testing.assert_array_equal(lstm.recurrent_kernel.numpy(), np.eye(2, 8))
    np.testing.assert_array_equal(lstm.bias.numpy(), np.ones(8))  # (forget block: 1 too)


# --- serialized values as Keras writes them -------------------------------------------


def test_values_as_keras_serializes_them():
    # Keras holds L1's factor as a float32 tensor, L2's as a Python float.
    assert keras.regularizers.L1(0.01).get_config() == {"l1": float(np.float32(0.01))}
    assert keras.regularizers.L2(0.01).get_config() == {"l2": 0.01}
    # Keras's Identity writes no gain; kcompile keeps one that is not 1.
    assert keras.initializers.Identity().get_config() == {}
    assert keras.initializers.Identity(2.0).get_config() == {"gain": 2.0}
    assert isinstance(keras.initializers.get("uniform"), keras.initializers.RandomUniform)
    # No seed given: None in the config (a layer made from it draws its own), as Keras;
    # RandomCrop writes the seed it drew, as Keras's does.
    for layer in (layers.Dropout(0.5), layers.GaussianNoise(0.1), layers.LSTM(2)):
        assert layer.get_config()["seed"] is None
    assert isinstance(layers.RandomCrop(2, 2).get_config()["seed"], int)
    assert "seed" not in layers.SimpleRNN(2).get_config()


def test_arguments_kcompile_does_not_implement_are_refused_by_name():
    refusals = [
        (lambda: layers.BatchNormalization(renorm=True), "BatchNormalization.*renorm"),
        (lambda: layers.LayerNormalization(rms_scaling=True), "LayerNormalization.*rms_scaling"),
        (lambda: layers.MultiHeadAttention(2, 2, use_gate=True), "MultiHeadAttention.*use_gate"),
        (lambda: layers.MaxPooling1D(data_format="channels_first"), "MaxPooling1D.*data_format"),
        (lambda: layers.AveragePooling2D(data_format="channels_first"), "AveragePooling2D"),
        (lambda: layers.Resizing(2, 2, antialias=True), "Resizing.*antialias"),
    ]
    for make_layer, message in refusals:
        with pytest.raises(NotImplementedError, match=message):
            make_layer()
    with pytest.raises(ValueError, match="sliding_window"):
        layers.MultiHeadAttention(2, 2, sliding_window=0)


# --- data_format and sliding_window, now taken: computed as Keras computes them -------


def test_channels_first_reshaping_is_the_channels_last_one_transposed():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (N, C, H, W)
    last = x.transpose(0, 2, 3, 1)
    first = {"data_format": "channels_first"}
    np.testing.assert_array_equal(layers.Flatten(**first)(x), last.reshape(2, -1))
    pads = ((1, 2), (0, 1))
    np.testing.assert_array_equal(
        layers.ZeroPadding2D(pads, **first)(x), np.pad(x, ((0, 0), (0, 0), *pads))
    )
    np.testing.assert_array_equal(
        layers.ZeroPadding1D((2, 1), **first)(x[:, :, 0]),
        np.pad(x[:, :, 0], ((0, 0), (0, 0), (2, 1))),
    )
    np.testing.assert_array_equal(layers.Cropping2D(((1, 0), (0, 2)), **first)(x), x[:, :, 1:, :3])
    np.testing.assert_array_equal(
        layers.UpSampling2D((2, 3), **first)(x), x.repeat(2, axis=2).repeat(3, axis=3)
    )


def test_sliding_window_is_the_band_mask():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(2, 5, 4)).astype(np.float32)
    banded = layers.MultiHeadAttention(2, 3, sliding_window=2)
    plain = layers.MultiHeadAttention(2, 3)
    out = banded(q, q)
    plain(q, q)
    plain.set_weights(banded.get_weights())
    rows, cols = np.indices((5, 5))
    band = np.broadcast_to(np.abs(rows - cols) < 2, (2, 5, 5))
    np.testing.assert_allclose(out, plain(q, q, attention_mask=band), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, plain(q, q), atol=1e-4)


def test_a_saved_file_gives_back_the_layers_configs(tmp_path):
    """A ``.keras`` file's layers are made with their initializers' settings too (a
    Constant's value, a seed), not only their class: the loaded layers' configs, and so
    their clones, are the saved ones'."""
    model = keras.Sequential(
        [
            keras.Input((4, 3)),
            layers.Conv1D(2, 2, kernel_initializer=keras.initializers.Constant(0.3)),
            layers.LSTM(3, recurrent_initializer=keras.initializers.RandomNormal(0.1, 0.2, 5)),
            layers.Dense(
                2,
                bias_initializer=keras.initializers.Constant(-1.5),
                **{
                    "kernel_regularizer": "l2",
                },
            ),
        ]
    )
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    for saved, loaded in zip(model.layers, again.layers):
        assert as_json(loaded.get_config()) == as_json(saved.get_config()), saved.name
