"""Run ``mixed_precision_programs`` on Keras 3 (JAX backend) and store, per program, its
weights, inputs, predictions (as float32: bf16 values widen exactly), output dtypes and
the policies Keras gave each layer, the variables' dtypes, then the losses and weights of
two SGD steps and (from the same weights) of three Adam steps, with Adam's slots, in
``keras_fixtures/mixed_precision.npz`` (the file records the Keras and JAX versions), and
the bf16-variable program after its Adam steps in ``keras_fixtures/bfloat16_variables.keras``.
Run it where Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_mixed_precision_fixtures.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from mixed_precision_programs import PROGRAMS  # noqa: E402


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for name, program in PROGRAMS.items():
        keras.utils.set_random_seed(1)
        try:
            model, x, labels = program(keras)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        start = model.get_weights()
        arrays[f"{name}/x"] = x
        arrays[f"{name}/labels"] = labels
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/w{k}"] = np.asarray(w, np.float32)
        prediction = model.predict(x, verbose=0)
        arrays[f"{name}/y"] = np.asarray(prediction).astype(np.float32)
        arrays[f"{name}/y_dtype"] = np.array(str(prediction.dtype))
        arrays[f"{name}/policies"] = np.array([layer.dtype_policy.name for layer in model.layers])
        arrays[f"{name}/weight_dtypes"] = np.array([str(w.dtype) for w in start])
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        losses = [float(model.train_on_batch(x, labels)) for _ in range(2)]
        arrays[f"{name}/losses"] = np.array(losses, np.float32)
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/trained{k}"] = np.asarray(w, np.float32)
        model.set_weights(start)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        losses = [float(model.train_on_batch(x, labels)) for _ in range(3)]
        arrays[f"{name}/adam_losses"] = np.array(losses, np.float32)
        for k, w in enumerate(model.get_weights()):
            arrays[f"{name}/adam_trained{k}"] = np.asarray(w, np.float32)
        # iterations and learning rate, then each weight's momentum and velocity
        for k, v in enumerate(model.optimizer.variables[2:]):
            arrays[f"{name}/adam_slot{k}"] = np.asarray(v, np.float32)
            arrays[f"{name}/adam_slot_dtype{k}"] = np.array(str(v.dtype))
        if name == "bfloat16_variables":  # bf16 weights and slots in Keras's file layout
            model.save(TESTS / "keras_fixtures" / "bfloat16_variables.keras")
    np.savez(TESTS / "keras_fixtures" / "mixed_precision.npz", **arrays)


if __name__ == "__main__":
    main()
