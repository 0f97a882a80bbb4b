"""Run ``lora_programs`` on Keras 3 (JAX backend): per program and quantization mode
(None: float), the model prepared as ``lora_programs.prepared`` does it (perturbed float
weights, stored by path, ``quantize``, ``enable_lora(2, lora_alpha=3)``, nonzero LoRA
values), then store every weight by path with its trainable flag, the predictions, what each LoRA layer's
``save_own_variables`` writes (the kernel merged with its delta; quantized, requantized),
the predictions of the model saved as ``.keras`` and loaded again, and one SGD step on an
MSE loss (the loss and every weight after it), in ``keras_fixtures/lora.npz`` with the
Keras and JAX versions; the int8 MLP's ``.keras`` file as ``keras_fixtures/lora_int8.keras``. Run it where Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_lora_fixtures.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from lora_programs import PROGRAMS, perturbed, prepared  # noqa: E402

OUT = TESTS / "keras_fixtures"


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for name, program in PROGRAMS.items():
        for mode in program(keras)[3]:
            key = f"{name}/{mode or 'float'}"
            keras.utils.set_random_seed(1)
            float_model = program(keras)[0]
            float_model.set_weights(perturbed(float_model))
            float_weights = {v.path: v.numpy() for v in float_model.weights}
            for path, value in float_weights.items():
                arrays[f"{key}/float/{path}"] = value
            model, x, names = prepared(keras, program, mode, float_weights)
            arrays[f"{key}/x"] = x
            arrays[f"{key}/paths"] = np.array([v.path for v in model.weights])
            arrays[f"{key}/trainable"] = np.array([v.trainable for v in model.weights])
            for v in model.weights:
                arrays[f"{key}/start/{v.path}"] = np.asarray(v.numpy())
            arrays[f"{key}/y"] = np.asarray(model.predict(x, verbose=0), np.float32)
            for layer_name in names:
                store: dict = {}
                model.get_layer(layer_name).save_own_variables(store)
                for i, value in store.items():
                    arrays[f"{key}/saved/{layer_name}/{i}"] = np.asarray(value)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "m.keras"
                model.save(path)
                if key == "dense_mlp/int8":
                    model.save(OUT / "lora_int8.keras")
                again = keras.saving.load_model(path)
                arrays[f"{key}/y_reloaded"] = np.asarray(again.predict(x, verbose=0), np.float32)
            model.compile(keras.optimizers.SGD(0.1), "mse")
            target = np.random.default_rng(12).normal(size=arrays[f"{key}/y"].shape)
            arrays[f"{key}/target"] = target.astype(np.float32)
            arrays[f"{key}/loss"] = np.float32(model.train_on_batch(x, arrays[f"{key}/target"]))
            for v in model.weights:
                arrays[f"{key}/after/{v.path}"] = np.asarray(v.numpy())
    np.savez_compressed(OUT / "lora.npz", **arrays)


if __name__ == "__main__":
    main()
