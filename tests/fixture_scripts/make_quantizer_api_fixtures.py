"""Keras 3's ``keras.quantizers`` functions on fixed inputs (JAX backend), into
``keras_fixtures/quantizer_api.npz`` with the Keras version: ``compute_float8_scale``
(amax zero, infinite and finite, with a margin), ``compute_float8_amax_history``,
``quantize_and_dequantize`` to both float8 dtypes, and the serialized forms of a
quantizer and the two configs (the inputs stored beside them). Run it where Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_quantizer_api_fixtures.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "keras_fixtures" / "quantizer_api.npz"
AMAX = np.array([0.0, np.inf, 3.0, 1e-3], np.float32)
SCALE = np.array([0.5, 2.0, 0.25, 1.0], np.float32)
X = np.array([[0.1, 1.7, -300.0], [1e-4, -2.5, 448.5]], np.float32)
HISTORY = np.arange(5, dtype=np.float32)


FQ_X = np.random.default_rng(3).normal(size=(2, 5, 3)).astype(np.float32) * 1.5
FQ_C = np.random.default_rng(4).normal(size=(2, 5, 3)).astype(np.float32)
FQ_CASES = {  # name: (min, max, num_bits, narrow_range, axis)
    "tensor8": (np.float32(-1.0), np.float32(1.3), 8, False, None),
    "tensor4_narrow": (np.float32(-0.7), np.float32(2.1), 4, True, None),
    "channel8": (np.array([-1.0, -0.2, -2.0], np.float32), np.array([1.0, 0.9, 0.5], np.float32),
                 8, False, -1),
}  # fmt: skip


def fake_quant(arrays: dict) -> None:
    """``fake_quant_with_min_max_vars`` and the gradients of ``sum(fq(x, min, max) * c)``
    with respect to x, min and max (jax.grad through Keras's custom gradient)."""
    import jax

    arrays["fq_x"], arrays["fq_c"] = FQ_X, FQ_C
    for name, (lo, hi, bits, narrow, axis) in FQ_CASES.items():

        def probe(x, lo, hi, bits=bits, narrow=narrow, axis=axis):
            out = keras.quantizers.fake_quant_with_min_max_vars(x, lo, hi, bits, narrow, axis)
            return (out * FQ_C).sum()

        arrays[f"fq_{name}"] = np.asarray(
            keras.quantizers.fake_quant_with_min_max_vars(FQ_X, lo, hi, bits, narrow, axis)
        )
        grads = jax.grad(probe, argnums=(0, 1, 2))(FQ_X, lo, hi)
        for part, g in zip(("dx", "dmin", "dmax"), grads):
            arrays[f"fq_{name}_{part}"] = np.asarray(g)


def main() -> None:
    q = keras.quantizers
    arrays = {
        "keras_version": np.array(keras.__version__),
        "amax": AMAX,
        "scale_in": SCALE,
        "x": X,
        "history_in": HISTORY,
        "scale": np.asarray(q.compute_float8_scale(AMAX, SCALE, 448.0)),
        "scale_margin": np.asarray(q.compute_float8_scale(AMAX, SCALE, 57344.0, margin=2)),
        "history": np.asarray(q.compute_float8_amax_history(X, HISTORY)),
    }
    for dtype in ("float8_e4m3fn", "float8_e5m2"):
        out = q.quantize_and_dequantize(X, np.float32(0.5), dtype, "float32")
        arrays[f"qdq_{dtype}"] = np.asarray(out)
    serialized = {
        "quantizer": q.serialize(q.AbsMaxQuantizer(axis=-1)),
        "int8": q.serialize(q.Int8QuantizationConfig()),
        "int4": q.serialize(q.Int4QuantizationConfig(block_size=64)),
    }
    arrays["serialized"] = np.array(json.dumps(serialized, default=list))
    fake_quant(arrays)
    np.savez(OUT, **arrays)


if __name__ == "__main__":
    main()
