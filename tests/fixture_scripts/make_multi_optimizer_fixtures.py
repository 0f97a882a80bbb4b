"""Run ``multi_optimizer_programs`` on Keras 3 (JAX backend) and store each program's
losses, weights and iteration counts in ``keras_fixtures/multi_optimizer.npz`` (the file
records the Keras and JAX versions), and the ``mapped`` program's trained model with its
optimizer state as ``keras_fixtures/multi_optimizer.keras``. Run it where Keras is
installed (it was made with Keras 3.15.1)::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_multi_optimizer_fixtures.py
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

from multi_optimizer_programs import PROGRAMS  # noqa: E402


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for name, program in PROGRAMS.items():
        model, results = program(keras)
        for key, value in results.items():
            arrays[f"{name}/{key}"] = value
        if name == "mapped":
            model.save(TESTS / "keras_fixtures" / "multi_optimizer.keras")
    np.savez(TESTS / "keras_fixtures" / "multi_optimizer.npz", **arrays)


if __name__ == "__main__":
    main()
