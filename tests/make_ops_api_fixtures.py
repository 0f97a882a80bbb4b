"""What Keras 3 (JAX backend) computes for the ``keras.ops`` calls of
``ops_api_cases.py``: each case's inputs and result. Writes
``keras_fixtures/ops_api.npz`` (with the Keras and JAX versions), which
``test_ops_numpy_api.py`` checks kcompile against.

Run it where Keras is installed, not in kcompile's own environment::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_ops_api_fixtures.py

(made with Keras 3.15.1 and JAX from that environment).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ops_api_cases import CASES, make_inputs

OUT = Path(__file__).resolve().parent / "keras_fixtures" / "ops_api.npz"


def main() -> None:
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    failed = []
    for name, (fn, _inputs, _flags) in CASES.items():
        xs = make_inputs(name)
        for i, x in enumerate(xs):
            arrays[f"{name}/in{i}"] = x
        try:
            arrays[f"{name}/out"] = np.asarray(keras.ops.convert_to_numpy(fn(keras.ops, *xs)))
        except Exception as e:  # reported; the file is not written
            failed.append(f"{name}: {type(e).__name__}: {e}")
    if failed:
        raise SystemExit("cases Keras refused:\n" + "\n".join(failed))
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
