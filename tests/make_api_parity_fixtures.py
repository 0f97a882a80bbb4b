"""Run the programs of ``api_parity_cases`` on Keras 3 (JAX backend) and store what Keras
computed in ``keras_fixtures/api_parity.npz`` (with the Keras and JAX versions).

Made with Keras 3.15.1 on JAX; run it where Keras is installed::

    KERAS_BACKEND=jax /path/to/keras-env/bin/python tests/make_api_parity_fixtures.py
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

import api_parity_cases as C  # noqa: E402


def main() -> None:
    keras.utils.set_random_seed(0)
    out: dict[str, np.ndarray] = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for key, cls, kwargs, calls in C.METRIC_CASES:
        for part, value in C.run_metric(keras, cls, kwargs, calls).items():
            out[f"metric/{key}/{part}"] = value
    for kind in C.COMPILED_METRICS:
        for name, value in C.run_compiled_metrics(keras, kind).items():
            out[f"compiled_metric/{kind}/{name}"] = value
    for key, call in C.LOSS_CALLS.items():
        out[f"loss/{key}"] = np.asarray(call(keras), np.float32)
    for key in C.TRAINED_LOSSES:
        for i, w in enumerate(C.run_trained_loss(keras, key)):
            out[f"trained_loss/{key}/{i}"] = w
    for key in C.OPTIMIZERS:
        for name, value in C.run_optimizer(keras, key).items():
            out[f"optimizer/{key}/{name}"] = value
    path = HERE / "keras_fixtures" / "api_parity.npz"
    np.savez(path, **out)
    print(f"wrote {len(out)} arrays to {path}")


if __name__ == "__main__":
    main()
