"""The public attributes Keras 3 gives a model and a layer: ``input``/``output``,
``variables`` and their trainable split, ``loss``, ``metrics``, dtypes, output shapes,
``count_params``, the ``trainable`` setter, and the refusals (``add_metric``, which
Keras deprecates, and ``quantize`` modes kcompile does not compile). Each expected value is what Keras 3.15.1
(JAX) gives for the same model."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras


def _model():
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(2, name="out")(inputs)
    return keras.Model(inputs, outputs, name="m")


def test_input_and_output():
    model = _model()
    assert model.input is model.inputs[0]
    assert model.output is model.outputs[0]
    assert model.input.shape == (None, 4) and model.output.shape == (None, 2)
    a, b = keras.Input((3,)), keras.Input((2,))
    two = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    assert two.input == [a, b]
    with pytest.raises(AttributeError, match="has never been called and thus has no defined input"):
        _ = keras.Sequential([keras.layers.Dense(3)]).input


def test_variables_and_their_trainable_split():
    inputs = keras.Input((4,))
    h = keras.layers.BatchNormalization(name="bn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(h))
    # Keras lists Dropout's seed state too; kcompile's random layers have none
    assert [v.path for v in model.variables] == [
        "bn/gamma",
        "bn/beta",
        "bn/moving_mean",
        "bn/moving_variance",
        "d/kernel",
        "d/bias",
    ]
    assert [v.path for v in model.trainable_variables] == [
        "bn/gamma",
        "bn/beta",
        "d/kernel",
        "d/bias",
    ]
    assert [v.path for v in model.non_trainable_variables] == [
        "bn/moving_mean",
        "bn/moving_variance",
    ]
    dense = model.get_layer("d")
    assert dense.variables == dense.weights and dense.non_trainable_variables == []


def test_trainable_setter_reaches_every_layer():
    model = _model()
    model.trainable = False
    assert all(not layer.trainable for layer in model.layers)
    assert model.trainable_variables == [] and len(model.non_trainable_variables) == 2
    model.trainable = True
    assert model.get_layer("out").trainable and len(model.trainable_variables) == 2


def test_loss_and_compile_settings():
    model = _model()
    assert model.loss is None
    model.compile(optimizer="adam", loss="mse")
    assert model.loss == "mse"
    assert (model.run_eagerly, model.jit_compile, model.steps_per_execution) == (False, True, 1)
    huber = keras.losses.Huber()
    model.compile(optimizer="sgd", loss=huber, steps_per_execution=2)
    assert model.loss is huber and model.steps_per_execution == 2


def test_metrics_after_compile_and_fit(rng):
    model = _model()
    assert model.metrics == []
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    assert model.metrics[1].metrics == []  # Keras builds them on the first batch
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    loss, compiled = model.metrics
    assert loss.result() == pytest.approx(history.history["loss"][-1])
    assert compiled.result() == {"mae": pytest.approx(history.history["mae"][-1])}
    assert [m.name for m in compiled.metrics] == ["mae"]
    assert model.metrics_variables == []
    assert model.get_metrics_result() == {
        "loss": pytest.approx(history.history["loss"][-1]),
        "mae": pytest.approx(history.history["mae"][-1]),
    }
    no_metrics = _model()
    no_metrics.compile(optimizer="adam", loss="mse")
    assert [m.name for m in no_metrics.metrics] == ["loss"]
    with pytest.raises(NotImplementedError, match="updated inside the compiled"):
        loss.update_state(1.0)


def test_a_layers_metric_trackers_are_its_metrics():
    class Tracked(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.tracker = keras.metrics.Mean(name="seen")

        def call(self, x):
            return x

    layer = Tracked()
    assert [m.name for m in layer.metrics] == ["seen"]
    assert keras.layers.Dense(2).metrics == []


def test_dtypes_and_plain_attributes():
    model = _model()
    dense = model.get_layer("out")
    for obj in (model, dense):
        assert obj.dtype == obj.compute_dtype == obj.variable_dtype == "float32"
        assert obj.input_dtype == "float32"
        assert obj.autocast is True and obj.supports_jit is True
        assert obj.quantization_mode is None
    assert dense.path == "out"
    assert keras.layers.InputLayer(shape=(3,), dtype="int32").dtype == "int32"


def test_output_shapes_and_counts():
    model = _model()
    assert model.compute_output_shape((None, 4)) == (None, 2)
    assert model.count_params() == 10
    dense = keras.layers.Dense(2)
    assert dense.compute_output_shape((3, 4)) == (3, 2)
    spec = dense.compute_output_spec(keras.Input((4,)))
    assert spec.shape == (None, 2) and spec.dtype == "float32"
    conv = keras.layers.Conv2D(5, 3)
    assert conv.compute_output_shape((2, 10, 10, 3)) == (2, 8, 8, 5)
    assert keras.layers.Concatenate().compute_output_shape([(None, 2), (None, 3)]) == (None, 5)
    with pytest.raises(ValueError, match="isn't built"):
        keras.layers.Dense(3).count_params()


def test_add_variable_in_build():
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_variable((input_shape[-1],), "ones", name="scale")

        def call(self, x):
            return x * self.scale

    layer = Scale()
    out = layer(np.full((2, 3), 2.0, np.float32))
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0))
    assert [v.path for v in layer.variables] == [f"{layer.name}/scale"]
    assert layer.built and layer.get_build_config() == {"input_shape": (None, 3)}


def test_refusals_name_the_reason():
    model = _model()
    with pytest.raises(NotImplementedError, match="add_metric\\(\\)` method is deprecated"):
        model.get_layer("out").add_metric(1.0)
    # (quantize("int8") and "int4" work: tests/test_quantization*.py; the other modes
    # are refused)
    with pytest.raises(NotImplementedError, match="'float8' is not supported by kcompile"):
        model.quantize("float8")
    with pytest.raises(NotImplementedError, match="'gptq' is not supported by kcompile"):
        model.get_layer("out").quantize("gptq")
    assert model.get_quantization_layer_structure("gptq") is None  # Keras's default hook


def test_rematerialized_call_is_the_call_without_a_remat_scope():
    dense = keras.layers.Dense(2)
    assert dense.rematerialized_call(dense.call) == dense.call


# What Keras 3.15.1 prints for keras.Sequential([Dense(3, name="dense"), Dense(1,
# name="dense_1")], name="seq").summary() before the model is built.
KERAS_UNBUILT_SUMMARY = """\
Model: "seq"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ ?                      │   0 (unbuilt) │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ ?                      │   0 (unbuilt) │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 0 (0.00 B)
 Trainable params: 0 (0.00 B)
 Non-trainable params: 0 (0.00 B)"""


def test_summary_of_a_sequential_not_built_yet():
    model = keras.Sequential(
        [keras.layers.Dense(3, name="dense"), keras.layers.Dense(1, name="dense_1")], name="seq"
    )
    lines = []
    model.summary(print_fn=lines.append)
    assert "\n".join(lines) == KERAS_UNBUILT_SUMMARY
    model.build((None, 5))
    lines = []
    model.summary(print_fn=lines.append)
    assert "│ dense (Dense)                   │ (None, 3)" in "\n".join(lines)
    assert " Total params: 22 (88.00 B)" in lines[0].splitlines()


def test_operations_of_a_functional_model_only():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs) * 2.0)
    kinds = [type(op).__name__ for op in model.operations]
    assert kinds == ["InputLayer", "Dense", "Operation"]  # as Keras 3.15.1 lists them
    assert not hasattr(keras.Sequential([keras.layers.Dense(1)]), "operations")


def test_utils_of_symbolic_tensors_and_data_tuples():
    a, b = keras.Input((3,)), keras.Input((2,))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))
    assert keras.utils.get_source_inputs(out) == [a, b]
    assert keras.utils.get_source_inputs(a) == [a]
    assert keras.utils.is_keras_tensor(out) and not keras.utils.is_keras_tensor(np.ones(2))
    pack, unpack = keras.utils.pack_x_y_sample_weight, keras.utils.unpack_x_y_sample_weight
    assert pack(1) == 1 and pack(1, 2) == (1, 2) and pack(1, 2, 3) == (1, 2, 3)
    assert pack([1, 2]) == ([1, 2],)
    assert unpack((1, 2)) == (1, 2, None) and unpack(5) == (5, None, None)
    assert unpack([1, 2, 3]) == (1, 2, 3)
    with pytest.raises(ValueError, match="Data is expected to be in format"):
        unpack((1, 2, 3, 4))


def test_input_spec_is_kerass_and_a_layers_own_spec_is_checked():
    model = _model()
    assert repr(model.input_spec) == "[InputSpec(shape=(None, 4), ndim=2)]"  # as Keras's
    spec = keras.layers.InputSpec(min_ndim=2, axes={-1: 4})
    assert repr(spec) == "InputSpec(min_ndim=2, axes={-1: 4})"
    assert keras.layers.InputSpec.from_config(spec.get_config()).axes == {-1: 4}
    assert keras.layers.Dense(2).input_spec is None

    class Sequence3D(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.input_spec = keras.layers.InputSpec(ndim=3)

        def call(self, x):
            return x

    assert Sequence3D()(keras.Input((2, 4))).shape == (None, 2, 4)
    with pytest.raises(ValueError, match='layer "sequence3d.*expected ndim=3, found ndim=2'):
        Sequence3D()(keras.Input((4,)))
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        Sequence3D()(np.ones((2, 4), np.float32))


def test_summary_counts_each_weight_in_its_dtypes_bytes():
    """Keras 3.15.1's footer for this model under the "bfloat16" policy (its weights
    bf16: 2 bytes a value) reads 52 params, 104 bytes: 88 trainable, 16 not."""
    keras.mixed_precision.set_global_policy("bfloat16")
    try:
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(4), keras.layers.BatchNormalization()]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    lines = []
    model.summary(print_fn=lines.append)
    footer = "\n".join(lines)
    assert " Total params: 52 (104.00 B)" in footer
    assert " Trainable params: 44 (88.00 B)" in footer
    assert " Non-trainable params: 8 (16.00 B)" in footer


def test_an_input_no_output_uses_is_taken_and_listed_as_keras_lists_it():
    """keras.io's translation transformer builds its decoder this way when its symbolic
    call fails: Keras keeps such Inputs (a loss may read them), at depth 0 first."""
    keras.utils.set_random_seed(2)
    a, b, c = keras.Input((3,), name="a"), keras.Input((2,), name="b"), keras.Input((1,), name="c")
    dense = keras.layers.Dense(2, name="d")
    model = keras.Model([a, b, c], dense(a))
    assert [layer.name for layer in model.layers] == ["a", "b", "c", "d"]  # Keras's order
    x = [np.arange(6, dtype="float32").reshape(2, 3), np.ones((2, 2), "float32"), np.ones((2, 1))]
    want = x[0] @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    loss = model.evaluate(x, np.zeros((2, 2), "float32"), verbose=0)
    assert loss == pytest.approx(np.mean(want**2), rel=1e-6)
