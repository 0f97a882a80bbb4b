"""Run ``loss_scaling_programs`` on Keras 3 (JAX backend) and store each program's losses,
weights, iteration count and loss-scale state in ``keras_fixtures/loss_scaling.npz`` (the
file records the Keras and JAX versions), and the mixed_float16 program's trained model
with its optimizer state as ``keras_fixtures/loss_scaling.keras``. Run it where Keras is
installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_loss_scaling_fixtures.py
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

from loss_scaling_programs import PROGRAMS  # noqa: E402


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for name, program in PROGRAMS.items():
        model, results = program(keras)
        for key, value in results.items():
            arrays[f"{name}/{key}"] = value
        if name == "mixed_float16_sgd":
            model.save(TESTS / "keras_fixtures" / "loss_scaling.keras")
    np.savez(TESTS / "keras_fixtures" / "loss_scaling.npz", **arrays)


if __name__ == "__main__":
    main()
