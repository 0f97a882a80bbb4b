"""``keras.quantizers``' functions and serialization against Keras 3.15.1's numbers
(``keras_fixtures/quantizer_api.npz``, written by
``fixture_scripts/make_quantizer_api_fixtures.py`` on the JAX backend), and the names
kcompile refuses with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras

FIX = np.load(Path(__file__).parent / "keras_fixtures" / "quantizer_api.npz")
AMAX, SCALE, X, HISTORY = (FIX[k] for k in ("amax", "scale_in", "x", "history_in"))
q = keras.quantizers


def test_float8_scale_and_amax_history_are_kerass():
    assert str(FIX["keras_version"]).startswith("3.15")
    np.testing.assert_allclose(q.compute_float8_scale(AMAX, SCALE, 448.0), FIX["scale"], rtol=1e-6)
    np.testing.assert_allclose(
        q.compute_float8_scale(AMAX, SCALE, 57344.0, margin=2), FIX["scale_margin"], rtol=1e-6
    )
    np.testing.assert_array_equal(q.compute_float8_amax_history(X, HISTORY), FIX["history"])


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_quantize_and_dequantize_rounds_to_float8_as_keras(dtype):
    out = q.quantize_and_dequantize(X, np.float32(0.5), dtype, "float32")
    np.testing.assert_array_equal(out, FIX[f"qdq_{dtype}"])


def test_serialize_deserialize_and_get_as_keras():
    expected = json.loads(str(FIX["serialized"]))
    made = {
        "quantizer": q.AbsMaxQuantizer(axis=-1),
        "int8": q.Int8QuantizationConfig(),
        "int4": q.Int4QuantizationConfig(block_size=64),
    }
    for key, obj in made.items():
        serialized = json.loads(json.dumps(q.serialize(obj)))
        assert serialized == expected[key], key
        again = q.deserialize(expected[key])
        assert type(again) is type(obj)
        assert json.loads(json.dumps(again.get_config())) == expected[key]["config"]
    assert isinstance(q.Int8QuantizationConfig(), q.QuantizationConfig)
    assert isinstance(q.get("abs_max_quantizer"), q.AbsMaxQuantizer)
    assert q.get("AbsMaxQuantizer", axis=0).axis == (0,) and q.get(None) is None
    with pytest.raises(ValueError, match="Could not interpret quantizer"):
        q.get("no_such_quantizer")
    with pytest.raises(NotImplementedError, match="Subclasses must implement"):
        _ = q.QuantizationConfig().mode


@pytest.mark.parametrize("name", ["GPTQConfig", "AWQConfig", "Float8QuantizationConfig"])
def test_what_kcompile_does_not_quantize_is_refused_with_the_reason(name):
    with pytest.raises(NotImplementedError, match=f"keras.quantizers.{name} is not offered"):
        getattr(q, name)
    with pytest.raises(AttributeError):
        q.no_such_name  # noqa: B018  (a name Keras lacks too)


def test_quantize_and_dequantize_is_refused_in_a_compiled_step():
    class QDQ(keras.layers.Layer):
        def call(self, x):
            return q.quantize_and_dequantize(x, 0.5, "float8_e4m3fn", "float32")

    with pytest.raises(NotImplementedError, match="layer 'qdq' .*no float8 type"):
        keras.Sequential([keras.Input((3,)), QDQ()]).predict(X, verbose=0)


FQ_CASES = {  # as fixture_scripts/make_quantizer_api_fixtures.py: (min, max, bits, narrow, axis)
    "tensor8": (-1.0, 1.3, 8, False, None),
    "tensor4_narrow": (-0.7, 2.1, 4, True, None),
    "channel8": ([-1.0, -0.2, -2.0], [1.0, 0.9, 0.5], 8, False, -1),
}


@pytest.mark.parametrize("case", list(FQ_CASES))
def test_fake_quant_gives_kerass_values(case):
    lo, hi, bits, narrow, axis = FQ_CASES[case]
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    out = q.fake_quant_with_min_max_vars(FIX["fq_x"], lo, hi, bits, narrow, axis)
    np.testing.assert_allclose(out, FIX[f"fq_{case}"], rtol=1e-6, atol=1e-7)


class _FakeQuant(keras.layers.Layer):
    """x + offset, fake-quantized to a trainable range: one SGD(1) step moves the
    offset by minus the inputs' gradient summed over the batch, min and max by minus
    theirs."""

    def __init__(self, lo, hi, bits, narrow, axis, **kwargs):
        super().__init__(**kwargs)
        self.options = (bits, narrow, axis)
        self.lo = self.add_weight(np.shape(lo), keras.initializers.Constant(lo), name="lo")
        self.hi = self.add_weight(np.shape(hi), keras.initializers.Constant(hi), name="hi")
        self.offset = self.add_weight((5, 3), "zeros", name="offset")

    def call(self, x):
        return q.fake_quant_with_min_max_vars(x + self.offset, self.lo, self.hi, *self.options)


@pytest.mark.parametrize("case", list(FQ_CASES))
def test_fake_quant_trains_with_kerass_gradient(case):
    lo, hi, bits, narrow, axis = FQ_CASES[case]
    layer = _FakeQuant(np.float32(lo), np.float32(hi), bits, narrow, axis)
    model = keras.Sequential([keras.Input((5, 3)), layer])
    model.compile(keras.optimizers.SGD(1.0), lambda y, p: keras.ops.sum(y * p))
    loss = model.train_on_batch(FIX["fq_x"], FIX["fq_c"])
    np.testing.assert_allclose(loss, (FIX[f"fq_{case}"] * FIX["fq_c"]).sum(), rtol=1e-5)
    np.testing.assert_allclose(layer.offset.numpy(), -FIX[f"fq_{case}_dx"].sum(0), atol=1e-5)
    np.testing.assert_allclose(layer.lo.numpy(), lo - FIX[f"fq_{case}_dmin"], atol=1e-5)
    np.testing.assert_allclose(layer.hi.numpy(), hi - FIX[f"fq_{case}_dmax"], atol=1e-5)


def test_fake_quant_on_symbolic_tensors_is_a_node_of_the_model():
    inputs = keras.Input((5, 3))
    outputs = q.fake_quant_with_min_max_vars(inputs, -1.0, 1.3)
    model = keras.Model(inputs, outputs)
    np.testing.assert_allclose(
        model.predict(FIX["fq_x"], verbose=0), FIX["fq_tensor8"], rtol=1e-6, atol=1e-7
    )
