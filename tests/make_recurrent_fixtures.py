"""Run ``recurrent_state_programs`` on Keras 3 (JAX backend) and store its weights,
inputs and outputs in ``keras_fixtures/recurrent_state.npz`` (made with Keras 3.15.1 and
JAX, as the file records). Run it where Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_recurrent_fixtures.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recurrent_state_programs import PROGRAMS  # noqa: E402


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for name, program in PROGRAMS.items():
        keras.utils.set_random_seed(1)
        model, inputs = program(keras)
        outputs = model.predict(inputs, verbose=0)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        for kind, values in (("w", model.get_weights()), ("x", inputs), ("y", outputs)):
            for i, v in enumerate(values):
                arrays[f"{name}/{kind}{i}"] = np.asarray(v)
    np.savez(HERE / "keras_fixtures" / "recurrent_state.npz", **arrays)


if __name__ == "__main__":
    main()
