"""Issue 26's core, activation, regularization, normalization and attention layers
beyond their Keras numbers (``test_layers_keras_cases_extra.py``): Keras's argument
errors, EinsumDense's LoRA, Wrapper, masks, SpectralNormalization trained as Keras's JAX
backend trains it (``keras_fixtures/misc_layers.npz``), AlphaDropout's statistics,
gradients by central differences, and compiled training equal to the reference
interpreter's step by step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.gradcheck import assert_model_gradients

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "misc_layers.npz")


# --- Keras's errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: layers.EinsumDense("ab,bc", 3)(keras.Input((4,))), ValueError, "Invalid einsum"),
        (
            lambda: layers.EinsumDense("ab,bc->ac", 3, bias_axes="x")(keras.Input((4,))),
            ValueError,
            "Bias dimension 'x' was requested",
        ),
        (
            lambda: layers.EinsumDense("ab,bz->ac", 3)(keras.Input((4,))),
            ValueError,
            "Dimension 'c' was specified in the output",
        ),
        (
            lambda: layers.EinsumDense("abc,cd->abd", (5, 3))(keras.Input((4, 2))),
            ValueError,
            "Input shape and output shape do not match at shared dimension 'b'",
        ),
        (
            lambda: layers.EinsumDense("ab,bcd->ac", 3)(keras.Input((4,))),
            ValueError,
            "Weight dimension 'd' did not have a match",
        ),
        (lambda: layers.AlphaDropout(1.5), ValueError, "Expected a float value between 0 and 1"),
        (
            lambda: layers.GroupQueryAttention(2, 3, 2),
            ValueError,
            "`num_query_heads` must be divisible by `num_key_value_heads`",
        ),
        (
            lambda: layers.GroupQueryAttention(2, 4, 2, sliding_window=0),
            ValueError,
            "`sliding_window` must be `None` or a positive integer",
        ),
        (
            lambda: layers.SpectralNormalization(layers.Dense(2), power_iterations=0),
            ValueError,
            "`power_iterations` should be greater than zero",
        ),
        (
            lambda: layers.SpectralNormalization(layers.Flatten())(keras.Input((3,))),
            ValueError,
            "Flatten object has no attribute 'kernel' nor 'embeddings'",
        ),
        (lambda: layers.Wrapper("dense"), ValueError, "isn't a supported layer type"),
        (
            lambda: layers.RMSNormalization(axis=3)(keras.Input((4,))),
            ValueError,
            "Axis 3 is out of bounds",
        ),
        (
            lambda: layers.PReLU(alpha_constraint="non_neg"),
            NotImplementedError,
            "alpha_constraint",
        ),
    ],
)
def test_kerass_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_prelu_input_spec_refuses_another_width():
    layer = layers.PReLU(shared_axes=[1])
    layer(keras.Input((3, 4)))
    with pytest.raises(ValueError, match="p_re_lu|incompatible"):
        layer(keras.Input((3, 5)))


# --- EinsumDense -----------------------------------------------------------------------


def test_einsum_dense_keras_docstring_shapes():
    assert layers.EinsumDense("ab,bc->ac", 64, bias_axes="c")(keras.Input((32,))).shape == (
        None,
        64,
    )
    seq = layers.EinsumDense("abc,cd->abd", (None, 64), bias_axes="d")
    assert seq(keras.Input((32, 128))).shape == (None, 32, 64)
    dots = layers.EinsumDense("...x,xy->...y", 64, bias_axes="y")
    assert dots(keras.Input((32, 128))).shape == (None, 32, 64)


def test_einsum_dense_refuses_an_unknown_dimension_its_kernel_takes():
    """As Keras's variables refuse a shape with None: a ValueError naming the layer, where
    the kernel's fan computation used to fail with a TypeError (int * None)."""
    layer = layers.EinsumDense("ab,bc->ac", 5, name="proj")
    with pytest.raises(ValueError, match=r"layer 'proj' \(EinsumDense\).*\(None, 5\)"):
        layer(keras.Input((None,)))
    # An unknown dimension the kernel does not take is fine.
    seq = layers.EinsumDense("abc,cd->abd", (None, 4))(keras.Input((None, 3)))
    assert seq.shape == (None, None, 4)


def test_einsum_dense_kernel_fans_are_the_equations():
    # Keras's VarianceScaling fans: input axes (c) and output axes (d, e) of the kernel
    keras.utils.set_random_seed(3)
    layer = layers.EinsumDense("abc,cde->abde", (None, 40, 50), kernel_initializer="he_normal")
    layer.build((None, 3, 30))
    std = layer.kernel.numpy().std()
    assert std == pytest.approx(np.sqrt(2.0 / 30), rel=0.05)


def test_einsum_dense_lora_adds_a_trainable_low_rank_delta(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = layers.EinsumDense("ab,bc->ac", 5, bias_axes="c")
    base = layer(x)
    layer.enable_lora(2)
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == [
        "bias",
        "lora_kernel_a",
        "lora_kernel_b",
    ]
    np.testing.assert_allclose(layer(x), base, rtol=1e-6)  # b starts at zeros
    a = rng.normal(size=(6, 2)).astype("float32")
    b = rng.normal(size=(2, 5)).astype("float32")
    layer.lora_kernel_a.assign(a)
    layer.lora_kernel_b.assign(b)
    kernel = layer._kernel.numpy() + (2 / 2) * a @ b
    np.testing.assert_allclose(layer(x), x @ kernel + layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lora is already enabled"):
        layer.enable_lora(2)
    config = layer.get_config()
    assert config["lora_rank"] == 2 and config["lora_alpha"] == 2
    again = layers.EinsumDense.from_config(config)
    again.build((None, 6))
    assert again.lora_enabled and not again._kernel.trainable


# --- Identity, ELU, masks ----------------------------------------------------------------


def test_identity_and_elu_pass_masks_on():
    ids = keras.Input((4,), dtype="int32")
    embedded = layers.Embedding(5, 3, mask_zero=True)(ids)
    for layer in (layers.Identity(), layers.ELU(), layers.PReLU(), layers.RMSNormalization()):
        out = layer(embedded)
        assert out._keras_mask is not None, type(layer).__name__


def test_reversible_embedding_masks_forward_calls_only():
    layer = layers.ReversibleEmbedding(10, 4, mask_zero=True)
    ids = keras.Input((3,), dtype="int32")
    vectors = layer(ids)
    assert vectors._keras_mask is not None
    assert layer(vectors, reverse=True)._keras_mask is None
    assert layer.compute_output_shape((None, 3)) == (None, 3, 4)
    assert layer.compute_output_shape((None, 3, 4), reverse=True) == (None, 3, 10)


# --- Wrapper -------------------------------------------------------------------------------


class _Doubled(layers.Wrapper):
    def call(self, inputs):
        return 2.0 * self.layer(inputs)


def test_a_users_wrapper_builds_calls_and_round_trips(rng):
    x = rng.normal(size=(3, 4)).astype("float32")
    wrapper = _Doubled(layers.Dense(2, name="inner"))
    wrapper.build((None, 4))
    assert wrapper.layer.built and len(wrapper.weights) == 2
    kernel, bias = (w.numpy() for w in wrapper.layer.weights)
    np.testing.assert_allclose(wrapper(x), 2 * (x @ kernel + bias), rtol=1e-5)
    config = wrapper.get_config()
    assert config["layer"]["class_name"] == "Dense"
    again = _Doubled.from_config(config)
    assert isinstance(again.layer, layers.Dense) and again.layer.units == 2
    with pytest.raises(NotImplementedError):
        layers.Wrapper(layers.Dense(2))(x)  # Keras's Wrapper has no call of its own


# --- SpectralNormalization trained as in Keras ---------------------------------------------


@pytest.mark.parametrize("backend", ["llvm", pytest.param("reference", marks=pytest.mark.slow)])
def test_spectral_normalization_trains_as_kerass_jax_backend(backend):
    inputs = keras.Input((5,))
    wrapped = layers.SpectralNormalization(layers.Dense(3))
    model = keras.Model(inputs, wrapped(inputs))
    model.compile(keras.optimizers.SGD(0.1), "mse", backend=backend)
    model.set_weights([FIXTURES[f"spectral_fit/w{j}"] for j in range(3)])
    assert [w.path.split("/")[-1] for w in model.weights] == ["kernel", "vector_u", "bias"]
    x, y = FIXTURES["spectral_fit/x"], FIXTURES["spectral_fit/y"]
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(float(FIXTURES["spectral_fit/loss"]), rel=1e-5)
    for j, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, FIXTURES[f"spectral_fit/after{j}"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), FIXTURES["spectral_fit/predict"], rtol=1e-5, atol=1e-6
    )


# --- AlphaDropout -------------------------------------------------------------------------


def test_alpha_dropout_keeps_mean_and_variance_and_drops_to_the_saturation_value():
    x = np.random.default_rng(0).normal(size=(200, 100)).astype("float32")
    layer = layers.AlphaDropout(0.3, seed=4)
    out = layer(x, training=True)
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    assert abs(out.mean()) < 0.03 and out.std() == pytest.approx(1.0, abs=0.03)
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - 0.3) * (1 + 0.3 * alpha_p**2)) ** -0.5
    dropped = np.isclose(out, a * alpha_p - a * alpha_p * 0.3)
    assert 0.27 < dropped.mean() < 0.33
    kept = ~dropped
    np.testing.assert_allclose(out[kept], a * x[kept] - a * alpha_p * 0.3, rtol=1e-5)
    shared = layers.AlphaDropout(0.5, noise_shape=(None, 1), seed=2)(x, training=True)
    rows_dropped = np.isclose(shared, shared[:, :1]).all(axis=1)  # whole rows drop together
    assert 60 < rows_dropped.sum() < 140


# --- gradients and compiled training -------------------------------------------------------


def _training_model(width: int = 6) -> keras.Model:
    inputs = keras.Input((3, width))
    x = layers.EinsumDense("abc,cd->abd", (None, width), bias_axes="d")(inputs)
    x = layers.PReLU(alpha_initializer="ones", shared_axes=[1])(x)
    x = layers.RMSNormalization()(x)
    x = x + layers.GroupQueryAttention(2, 2, 1, use_gate=True)(x, x, use_causal_mask=True)
    x = layers.AdditiveAttention()([x, x])
    x = layers.ELU(0.5)(layers.Identity()(x))
    x = layers.SpectralNormalization(layers.Dense(3))(x)
    x = layers.AlphaDropout(0.1, seed=3)(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


@pytest.mark.slow
def test_gradients_through_the_new_layers_by_central_differences(rng):
    model = _training_model(width=3)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert_model_gradients(model, rng, 2, lambda r, n: r.integers(0, 2, n).astype(np.int32))


def test_reversible_embedding_gradients_by_central_differences(rng):
    ids = keras.Input((5,), dtype="int32")
    shared = layers.ReversibleEmbedding(7, 4, logit_soft_cap=3.0)
    logits = shared(layers.RMSNormalization()(shared(ids)), reverse=True)
    model = keras.Model(ids, logits)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert_model_gradients(
        model,
        rng,
        2,
        lambda r, n: r.integers(0, 7, (n, 5)).astype(np.int32),
        {"input_layer": rng.integers(0, 7, (2, 5)).astype(np.int32)},
    )


@pytest.mark.slow
def test_native_training_equals_the_reference_interpreters(rng):
    x = rng.normal(size=(6, 3, 6)).astype("float32")
    y = rng.integers(0, 2, 6)
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(2)
        model = _training_model()
        model.compile("adam", "sparse_categorical_crossentropy", backend=backend)
        model.fit(x, y, epochs=2, batch_size=3, shuffle=False, verbose=0)
        results.append((model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_keras_file_of_the_new_layers_loads_with_the_same_predictions(rng, tmp_path):
    inputs = keras.Input((3, 6))
    x = layers.EinsumDense("abc,cd->abd", (3, 6), bias_axes="d")(inputs)
    x = layers.ELU(0.3)(layers.RMSNormalization()(layers.PReLU()(x)))
    x = layers.GroupQueryAttention(2, 2, 1, use_gate=True)(x, x, use_causal_mask=True)
    x = layers.AlphaDropout(0.2)(layers.Identity()(layers.AdditiveAttention()([x, x])))
    ids = keras.Input((3,), dtype="int32")
    encoded = layers.CategoryEncoding(5, "multi_hot")(ids)
    bins = layers.Discretization([0.0, 1.0], output_mode="one_hot")(inputs)
    model = keras.Model([inputs, ids], [x, encoded, bins])
    model.compile("sgd", "mse")
    data = [rng.normal(size=(2, 3, 6)).astype("float32"), np.array([[1, 2, 0], [3, 4, 4]])]
    before = model.predict(data, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    for a, b in zip(again.predict(data, verbose=0), before):
        np.testing.assert_array_equal(a, b)


def test_group_query_attention_output_shape_is_kerass():
    layer = layers.GroupQueryAttention(2, 4, 2)
    assert layer.compute_output_shape((None, 3, 6), (None, 5, 6)) == (None, 3, 6)
    with pytest.raises(ValueError, match="The last dimension of `query_shape` and `value_shape`"):
        layer.compute_output_shape((None, 3, 6), (None, 5, 4))
    with pytest.raises(ValueError, match="All dimensions of `value` and `key`"):
        layer.compute_output_shape((None, 3, 6), (None, 5, 6), (None, 4, 6))
    assert type(layer).__name__ == "GroupQueryAttention" and layer.name.startswith("grouped_")


@pytest.mark.slow
def test_reversible_embedding_native_training_equals_the_reference_interpreters(rng):
    ids = rng.integers(1, 7, (6, 5)).astype("int32")
    targets = rng.integers(0, 7, (6, 5)).astype("int32")
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(4)
        inputs = keras.Input((5,), dtype="int32")
        tied = layers.ReversibleEmbedding(7, 4, mask_zero=True)
        untied = layers.ReversibleEmbedding(7, 4, tie_weights=False, logit_soft_cap=2.0)
        x = layers.RMSNormalization()(tied(inputs))
        logits = tied(x, reverse=True) + untied(x, reverse=True)
        model = keras.Model(inputs, logits)
        model.compile(
            "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), backend=backend
        )
        model.fit(ids, targets, epochs=2, batch_size=3, shuffle=False, verbose=0)
        results.append((model.predict(ids, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
