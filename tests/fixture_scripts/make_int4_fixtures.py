"""Run ``quantization_int4_programs`` on Keras 3 (JAX backend): per case, perturb the
program's float weights (so biases are not zero), store them, quantize to int4 as the case
asks, and store the quantized weights (packed int8 kernels, scales, zero points, group
indices, in Keras's ``get_weights`` order, with their paths, dtypes and trainable flags),
the layers' policy names and the quantized layers' dtype and
quantization_config entries, the predictions, the input's gradient of
``sum(model(x) * c)`` (``jax.grad`` through Keras's custom gradients), and one SGD step on
an MSE loss (loss and trainable weights after); the mlp_default model's summary footer and each
layer's parameter count, and that model as ``keras_fixtures/quantization_int4.keras``.
Everything but that file is in ``keras_fixtures/quantization_int4.npz`` (with the Keras
and JAX versions). Run it where Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_int4_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import keras
import numpy as np

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from quantization_int4_programs import CASES, quantize  # noqa: E402

OUT = TESTS / "keras_fixtures"


def perturbed(model) -> list[np.ndarray]:
    """The float weights plus N(0, 0.1) noise."""
    rng = np.random.default_rng(7)
    return [
        w.astype(np.float32) + 0.1 * rng.normal(size=w.shape).astype(np.float32)
        for w in model.get_weights()
    ]


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    configs = {}
    for name, (program, block_size) in CASES.items():
        keras.utils.set_random_seed(1)
        model, x = program(keras)
        model.set_weights(perturbed(model))
        arrays[f"{name}/x"] = x
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/w{k}"] = np.asarray(w, np.float32)
        quantize(keras, model, block_size)
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/q{k}"] = np.asarray(w)  # packed kernels stay int8
        arrays[f"{name}/q_paths"] = np.array([v.path.split("/", 1)[-1] for v in model.weights])
        arrays[f"{name}/q_trainable"] = np.array([v.trainable for v in model.weights])
        layers = [x for x in model._flatten_layers(include_self=False) if not x._layers]
        arrays[f"{name}/layer_names"] = np.array([x.name for x in layers])
        arrays[f"{name}/policies"] = np.array([x.dtype_policy.name for x in layers])
        configs[name] = {  # (the parts a quantized layer's config adds)
            x.name: {k: x.get_config()[k] for k in ("dtype", "quantization_config")}
            for x in layers
            if x.dtype_policy.quantization_mode
        }
        y = np.asarray(model.predict(x, verbose=0)).astype(np.float32)
        arrays[f"{name}/y"] = y
        c = np.random.default_rng(11).normal(size=y.shape).astype(np.float32)
        arrays[f"{name}/c"] = c

        def probe(t, model=model, c=c):
            return jnp.sum(model(t, training=False).astype("float32") * c)

        arrays[f"{name}/dx"] = np.asarray(jax.grad(probe)(jnp.asarray(x)), np.float32)
        if name == "mlp_default":
            model.save(OUT / "quantization_int4.keras")
            lines: list[str] = []
            model.summary(print_fn=lambda line, out=lines, **_: out.extend(line.splitlines()))
            arrays[f"{name}/summary_footer"] = np.array(
                [line for line in lines if "params:" in line]
            )
            arrays[f"{name}/count_params"] = np.array([x.count_params() for x in layers])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        target = np.random.default_rng(12).normal(size=y.shape).astype(np.float32)
        arrays[f"{name}/target"] = target
        arrays[f"{name}/loss"] = np.float32(model.train_on_batch(x, target))
        for k, (v, w) in enumerate(zip(model.weights, model.get_weights())):
            if v.trainable:  # (the frozen ones are q{k} still: the test checks that)
                arrays[f"{name}/t{k}"] = np.asarray(w)
    arrays["configs"] = np.array(json.dumps(configs, default=list))
    np.savez_compressed(OUT / "quantization_int4.npz", **arrays)


if __name__ == "__main__":
    main()
