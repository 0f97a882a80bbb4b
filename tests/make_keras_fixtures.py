"""Run the programs of ``keras_parity_programs`` on Keras 3 (JAX backend) and store what
Keras computed in ``keras_fixtures/<program>.npz`` (with the Keras and JAX versions).

Run it in an environment that has Keras, never kcompile's own::

    python -m venv /tmp/keras-env && /tmp/keras-env/bin/pip install keras jax
    KERAS_BACKEND=jax /tmp/keras-env/bin/python tests/make_keras_fixtures.py
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

from keras_parity_programs import PROGRAMS, run  # noqa: E402


def main() -> None:
    out = HERE / "keras_fixtures"
    out.mkdir(exist_ok=True)
    for name in sys.argv[1:] or PROGRAMS:
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        arrays = run(keras, name)
        arrays["versions"] = np.array(f"keras {keras.__version__}, jax {jax.__version__}")
        np.savez(out / f"{name}.npz", **arrays)
        print(name, sorted(k for k in arrays if "/" in k and k[0] not in "se"))


if __name__ == "__main__":
    main()
