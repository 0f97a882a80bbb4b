"""Run the programs of ``keras_parity_programs`` on Keras 3 (JAX backend) and store what
Keras computed in ``keras_fixtures/<program>.npz`` (with the Keras and JAX versions).

Run it in an environment that has Keras, never kcompile's own::

    python -m venv /tmp/keras-env && /tmp/keras-env/bin/pip install keras jax
    KERAS_BACKEND=jax /tmp/keras-env/bin/python tests/make_keras_fixtures.py
    KERAS_BACKEND=jax /tmp/keras-env/bin/python tests/make_keras_fixtures.py files
    # the lookup layers need TensorFlow: pip install tensorflow-cpu in that environment
    KERAS_BACKEND=jax /tmp/keras-env/bin/python tests/make_keras_fixtures.py lookup
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


def keras_files(out: Path) -> None:
    """Small .keras and .weights.h5 files written by Keras, with the inputs and Keras's
    predictions, for test_keras_files."""
    from keras_parity_programs import CUSTOM_FILES, FILE_MODELS, file_custom_objects

    for name, (build, data) in FILE_MODELS.items():
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        model = build(keras)
        x, y = data(np.random.default_rng(0))
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        model.save(out / f"{name}.keras")
        model.save_weights(out / f"{name}.weights.h5")
        predict = np.asarray(model.predict(x, verbose=0))
        iterations = int(model.optimizer.iterations)
        # a step from the saved optimizer state, by the model Keras loads from the file
        objects = file_custom_objects(keras) if name in CUSTOM_FILES else None
        model = keras.models.load_model(out / f"{name}.keras", custom_objects=objects)
        model.train_on_batch(x, y)
        np.savez(
            out / f"{name}.npz",
            x=x,
            y=y,
            predict=predict,
            next_predict=np.asarray(model.predict(x, verbose=0)),
            iterations=np.asarray(iterations),
            versions=np.array(f"keras {keras.__version__}, jax {jax.__version__}"),
        )
        print(name, "files")


def lookup_layers(out: Path) -> None:
    """What Keras's StringLookup, IntegerLookup and TextVectorization give for the cases
    of keras_lookup_cases (they run on TensorFlow whatever the backend)."""
    import json

    import tensorflow as tf
    from keras_lookup_cases import cases

    results = cases(keras)
    results["versions"] = f"keras {keras.__version__}, tensorflow {tf.__version__}"
    (out / "lookup_layers.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    print("lookup", len(results) - 1, "cases")


def main() -> None:
    out = HERE / "keras_fixtures"
    out.mkdir(exist_ok=True)
    if sys.argv[1:] == ["files"]:
        keras_files(out)
        return
    if sys.argv[1:] == ["lookup"]:
        lookup_layers(out)
        return
    for name in sys.argv[1:] or PROGRAMS:
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        arrays = run(keras, name)
        arrays["versions"] = np.array(f"keras {keras.__version__}, jax {jax.__version__}")
        np.savez(out / f"{name}.npz", **arrays)
        print(name, sorted(k for k in arrays if "/" in k and k[0] not in "se"))


if __name__ == "__main__":
    main()
