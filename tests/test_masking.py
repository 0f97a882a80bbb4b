"""Keras's masks: Embedding(mask_zero=True) and Masking make them, the layers that take
them honour them (recurrent layers keep their states over masked steps, global average
pooling averages the kept steps, attention leaves masked keys out), the others pass
them on or drop them as Keras does (merges of masked inputs follow Keras's rules), and losses and mean metrics leave masked values
out. Checked against the definitions (a padded sequence gives what its unpadded part
gives), central differences, and both backends; the Keras 3 parity programs
``masked_*`` and ``masking_layer`` check them against Keras's own numbers."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops
from tests.gradcheck import assert_model_gradients


def _recurrent(cell: str, ids_shape: int, **options):
    ids = keras.Input((ids_shape,), dtype="int32")
    h = layers.Embedding(6, 3, mask_zero=True)(ids)
    out = getattr(layers, cell)(4, **options)(h)
    return keras.Model(ids, out)


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_a_padded_sequence_gives_what_its_unpadded_part_gives(cell, go_backwards):
    keras.utils.set_random_seed(3)
    padded = _recurrent(cell, 7, go_backwards=go_backwards)
    short = _recurrent(cell, 4, go_backwards=go_backwards)
    short.set_weights(padded.get_weights())
    ids = np.array([[1, 4, 2, 5]], np.int32)
    after = np.concatenate([ids, np.zeros((1, 3), np.int32)], 1)  # padded after
    before = np.concatenate([np.zeros((1, 3), np.int32), ids], 1)  # and before
    want = short.predict(ids, verbose=0)
    for x in (after, before):
        np.testing.assert_allclose(padded.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_masked_steps_repeat_the_last_output_or_give_zeros_in_a_bidirectional():
    keras.utils.set_random_seed(4)
    ids = keras.Input((5,), dtype="int32")
    h = layers.Embedding(6, 3, mask_zero=True)(ids)
    single = layers.GRU(2, return_sequences=True)(h)
    both = layers.Bidirectional(layers.GRU(2, return_sequences=True))(h)
    model = keras.Model(ids, [single, both])
    x = np.array([[3, 1, 0, 0, 2]], np.int32)  # a masked gap in the middle
    single_out, both_out = model.predict(x, verbose=0)
    np.testing.assert_array_equal(single_out[0, 2], single_out[0, 1])  # state carried
    np.testing.assert_array_equal(single_out[0, 3], single_out[0, 1])
    assert not np.any(both_out[0, 2:4]) and np.all(both_out[0, [0, 1, 4]] != 0)


def test_global_average_pooling_averages_the_kept_steps():
    ids = keras.Input((5,), dtype="int32")
    e = layers.Embedding(6, 3, mask_zero=True)
    model = keras.Model(ids, layers.GlobalAveragePooling1D()(e(ids)))
    x = np.array([[3, 1, 0, 0, 2], [0, 0, 0, 4, 4]], np.int32)
    table = e.embeddings.numpy()
    want = [table[[3, 1, 2]].mean(0), table[[4, 4]].mean(0)]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6)


def test_masking_zeroes_the_masked_steps_and_masks_them():
    x = keras.Input((4, 2))
    masked = layers.Masking(mask_value=-1.0)(x)
    model = keras.Model(x, [masked, layers.GlobalAveragePooling1D()(masked)])
    data = np.array([[[1, 2], [-1, -1], [-1, 3], [5, 6]]], np.float32)
    out, pooled = model.predict(data, verbose=0)
    np.testing.assert_array_equal(out[0, 1], [0, 0])
    np.testing.assert_array_equal(out[0, 2], [-1, 3])  # one feature differs: kept
    np.testing.assert_allclose(pooled[0], data[0, [0, 2, 3]].mean(0), rtol=1e-6)


def test_a_masked_loss_and_metric_average_the_kept_values():
    keras.utils.set_random_seed(5)
    ids = keras.Input((6,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=True)(ids)
    h = layers.LSTM(4, return_sequences=True)(h)
    model = keras.Model(ids, layers.Dense(3, activation="softmax")(h))
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 1, 2, 0], [0, 0, 3, 3, 3, 3]], np.int32)
    y = (x % 3).astype(np.int32)
    p = model.predict(x, verbose=0)
    kept = x != 0
    picked = np.take_along_axis(p, y[..., None], -1)[..., 0]
    logs = model.evaluate(x, y, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(-np.log(picked[kept]).mean(), rel=1e-5)
    assert logs["accuracy"] == pytest.approx((p.argmax(-1) == y)[kept].mean(), rel=1e-6)


def test_a_users_layer_gets_the_mask_and_may_compute_one():
    class MaskedSum(layers.Layer):
        def call(self, inputs, mask=None):
            kept = ops.cast(ops.expand_dims(mask, -1), "float32")
            return ops.sum(inputs * kept, axis=1)

    class KeepFirstTwo(layers.Layer):
        def call(self, inputs):
            return inputs

        def compute_mask(self, inputs, previous_mask):
            return ops.logical_and(previous_mask, ops.arange(4) < 2)

    ids = keras.Input((4,), dtype="int32")
    e = layers.Embedding(5, 2, mask_zero=True)
    model = keras.Model(ids, [MaskedSum()(e(ids)), MaskedSum()(KeepFirstTwo()(e(ids)))])
    table = e.embeddings.numpy()
    summed, first_two = model.predict(np.array([[1, 0, 3, 2]], np.int32), verbose=0)
    np.testing.assert_allclose(summed[0], table[[1, 3, 2]].sum(0), rtol=1e-6)
    np.testing.assert_allclose(first_two[0], table[1], rtol=1e-6)


def test_an_eager_call_returns_its_mask_and_the_next_eager_call_takes_it():
    """Keras sets an eager output's mask on the array (``_keras_mask``) and reads it back
    in the next call, as the masking guide prints and passes it."""

    class TemporalSplit(layers.Layer):  # the guide's
        def call(self, inputs):
            return ops.split(inputs, 2, axis=1)

        def compute_mask(self, inputs, mask=None):
            return None if mask is None else ops.split(mask, 2, axis=1)

    keras.utils.set_random_seed(5)
    ids = np.array([[1, 4, 2, 0, 0, 0], [3, 0, 0, 0, 0, 0]], np.int32)
    embedded = layers.Embedding(6, 3, mask_zero=True)(ids)
    np.testing.assert_array_equal(embedded._keras_mask, ids != 0)
    first, second = TemporalSplit()(embedded)
    np.testing.assert_array_equal(first._keras_mask, ids[:, :3] != 0)
    np.testing.assert_array_equal(second._keras_mask, ids[:, 3:] != 0)
    masked = layers.Masking()(np.asarray(embedded) * (ids != 0)[..., None])
    np.testing.assert_array_equal(masked._keras_mask, ids != 0)
    # a new tensor computed from a masked one has no mask, as a JAX array has not
    assert not hasattr(embedded + 1.0, "_keras_mask")
    assert not hasattr(layers.Dense(2)(np.ones((1, 3), "float32")), "_keras_mask")
    lstm = layers.LSTM(4)
    padded = lstm(embedded)  # takes the mask the Embedding's call left on the array
    short = lstm(np.asarray(embedded)[:1, :3])
    np.testing.assert_allclose(padded[:1], short, rtol=1e-5, atol=1e-6)


def test_a_built_in_compute_mask_called_inside_a_users_call():
    """The masking guide's ``MyLayer``: ``self.embedding.compute_mask(inputs)`` in its
    ``call``, the mask then given to an LSTM by hand."""

    class MyLayer(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embedding = layers.Embedding(6, 3, mask_zero=True)
            self.lstm = layers.LSTM(4)

        def call(self, inputs):
            return self.lstm(self.embedding(inputs), mask=self.embedding.compute_mask(inputs))

    keras.utils.set_random_seed(6)
    layer = MyLayer()
    ids = np.array([[1, 4, 2, 0, 0], [3, 5, 0, 0, 0]], np.int32)
    out = layer(ids)
    for row, kept in enumerate((3, 2)):  # what the unpadded part gives
        short = layer.lstm(layer.embedding(ids[row : row + 1, :kept]))
        np.testing.assert_allclose(out[row : row + 1], short, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer.embedding.compute_mask(ids), ids != 0)


def test_layers_that_do_not_take_masks_drop_them_with_kerass_warning():
    ids = keras.Input((4,), dtype="int32")
    h = layers.Embedding(5, 2, mask_zero=True)(ids)
    with pytest.warns(UserWarning, match="does not support masking"):
        model = keras.Model(ids, layers.GlobalAveragePooling1D()(layers.Conv1D(2, 1)(h)))
        model.predict(np.array([[1, 0, 0, 0]], np.int32), verbose=0)


def test_multiply_of_masked_inputs_counts_masked_values_as_one():
    ids = keras.Input((3,), dtype="int32")
    e = layers.Embedding(5, 2, mask_zero=True)
    h = e(ids)
    unmasked = layers.Conv1D(2, 1, use_bias=False)(h)  # drops the mask
    model = keras.Model(ids, [layers.multiply([h, unmasked]), layers.multiply([h, h])])
    x = np.array([[1, 0, 3]], np.int32)
    partly, fully = model.predict(x, verbose=0)
    table, kernel = e.embeddings.numpy(), model.layers[2].kernel.numpy()[0]
    conv = table[x[0]] @ kernel
    np.testing.assert_allclose(partly[0, 1], conv[1], rtol=1e-6)  # masked: 1 * other
    np.testing.assert_allclose(partly[0, 2], table[3] * conv[2], rtol=1e-6)
    np.testing.assert_array_equal(fully[0, 1], [0, 0])  # all masked: 0
    np.testing.assert_allclose(fully[0, 0], table[1] ** 2, rtol=1e-6)


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_both_backends_train_a_masked_model_alike(backend):
    keras.utils.set_random_seed(6)
    ids = keras.Input((6,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=True)(ids)
    h = layers.Bidirectional(layers.LSTM(3, return_sequences=True))(h)
    model = keras.Model(ids, layers.Dense(1)(layers.GlobalAveragePooling1D()(h)))
    start = model.get_weights()
    x = np.array([[1, 2, 0, 0, 0, 0], [3, 4, 5, 6, 1, 2], [0, 0, 0, 0, 5, 5]], np.int32)
    y = np.array([[0.5], [-1.0], [2.0]], np.float32)
    results = {}
    for name in ("llvm", "reference"):
        model.set_weights(start)
        model.compile(keras.optimizers.SGD(0.1), "mse", backend=name)
        model.fit(x, y, epochs=3, batch_size=2, verbose=0, shuffle=False)
        results[name] = model.get_weights()
    for a, b in zip(results["llvm"], results["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert backend in results


def test_masked_recurrent_gradients_match_central_differences(rng):
    keras.utils.set_random_seed(7)
    ids = keras.Input((5,), dtype="int32")
    h = layers.Embedding(6, 3, mask_zero=True)(ids)
    h = layers.GRU(3, return_sequences=True, go_backwards=True)(h)
    h = layers.LSTM(2)(layers.Dense(3, activation="tanh")(h))
    model = keras.Model(ids, layers.Dense(2)(h))
    model.compile("sgd", "mse")
    x = np.array([[1, 2, 0, 0, 0], [0, 3, 4, 5, 1], [2, 0, 0, 3, 0]], np.int32)
    name = model.input_names[0]
    assert_model_gradients(model, rng, 3, lambda r, n: r.normal(size=(n, 2)), inputs={name: x})
