"""Run ``quantization_programs`` on Keras 3 (JAX backend): per program, perturb its float
weights (so biases are not zero), store them, ``model.quantize("int8")``, and store the
quantized weights (int8 kernels and their scales, in Keras's ``get_weights`` order, with
their paths, dtypes and trainable flags), the layers' policy names, the warnings Keras
gave, the predictions, the input's gradient of ``sum(model(x) * c)`` (``jax.grad`` through
Keras's custom gradients), and one SGD step on an MSE loss (loss and weights after); the
first Dense's config as JSON, the functional model's summary footer and each layer's
parameter count; and the quantized functional model as
``keras_fixtures/quantization_functional.keras``. Everything but that file is in
``keras_fixtures/quantization.npz`` (with the Keras and JAX versions). Run it where Keras
is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_quantization_fixtures.py [NAME ...]

With program names, only those are run and their arrays replace (or join) those in the
existing file, the others kept as they are (XLA's CPU code differs between CPUs in the
last bits of a gradient): the ``attention`` program was added so (Keras 3.15.1, JAX
0.10.2, on a Zen 4).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import keras
import numpy as np

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from quantization_programs import PROGRAMS  # noqa: E402

OUT = TESTS / "keras_fixtures"


def perturbed(model) -> list[np.ndarray]:
    """The float weights plus N(0, 0.1) noise; a variance kept positive."""
    rng = np.random.default_rng(7)
    out = []
    for v, w in zip(model.weights, model.get_weights()):
        w = w.astype(np.float32) + 0.1 * rng.normal(size=w.shape).astype(np.float32)
        out.append(np.abs(w) + 0.5 if "variance" in v.path else w)
    return out


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    configs = {}
    only = sys.argv[1:]
    for name, program in PROGRAMS.items():
        if only and name not in only:
            continue
        keras.utils.set_random_seed(1)
        model, x = program(keras)
        model.set_weights(perturbed(model))
        arrays[f"{name}/x"] = x
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/w{k}"] = np.asarray(w, np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.quantize("int8")
        arrays[f"{name}/warnings"] = np.array(
            sorted({str(w.message) for w in caught if "quantize" in str(w.message)})
        )
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/q{k}"] = np.asarray(w)  # int8 kernels stay int8
        arrays[f"{name}/q_paths"] = np.array([v.path.split("/", 1)[-1] for v in model.weights])
        arrays[f"{name}/q_trainable"] = np.array([v.trainable for v in model.weights])
        layers = [x for x in model._flatten_layers(include_self=False) if not x._layers]
        arrays[f"{name}/layer_names"] = np.array([x.name for x in layers])
        arrays[f"{name}/policies"] = np.array([x.dtype_policy.name for x in layers])
        y = np.asarray(model.predict(x, verbose=0)).astype(np.float32)
        arrays[f"{name}/y"] = y
        c = np.random.default_rng(11).normal(size=y.shape).astype(np.float32)
        arrays[f"{name}/c"] = c
        if x.dtype.kind == "f":

            def probe(t, model=model, c=c):
                return jnp.sum(model(t, training=False).astype("float32") * c)

            arrays[f"{name}/dx"] = np.asarray(jax.grad(probe)(jnp.asarray(x)), np.float32)
        if name == "functional":
            model.save(OUT / "quantization_functional.keras")
            configs["d1"] = model.get_layer("d1").get_config()
            lines: list[str] = []
            model.summary(print_fn=lambda line, lines=lines, **_: lines.extend(line.splitlines()))
            arrays["functional/summary_footer"] = np.array(
                [line for line in lines if "params:" in line]
            )
            arrays["functional/count_params"] = np.array([x.count_params() for x in layers])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        target = np.random.default_rng(12).normal(size=y.shape).astype(np.float32)
        arrays[f"{name}/target"] = target
        arrays[f"{name}/loss"] = np.float32(model.train_on_batch(x, target))
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/t{k}"] = np.asarray(w)
    if only:  # the other programs' arrays (and the configs) as the file has them
        with np.load(OUT / "quantization.npz") as old:
            kept = {k: old[k] for k in old.files if k.split("/")[0] not in only}
        arrays = {**kept, **{k: v for k, v in arrays.items() if "/" in k}}
    else:
        arrays["configs"] = np.array(json.dumps(configs, default=list))
    np.savez_compressed(OUT / "quantization.npz", **arrays)


if __name__ == "__main__":
    main()
