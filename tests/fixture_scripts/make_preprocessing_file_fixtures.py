"""Makes the fixtures of ``tests/test_preprocessing_files.py`` with real Keras (3.15.1 on
TensorFlow 2.21, whose lookup layers need it to adapt and save), in ``tests/keras_fixtures/``:

- ``preprocessing_model.keras``: a functional model of adapted StringLookup, IntegerLookup,
  TextVectorization, Discretization and Normalization layers and a Hashing, concatenated
  into a Dense layer, saved by ``model.save`` (vocabularies under ``assets/``);
- ``preprocessing_model.json``: the inputs (``tests/preprocessing_file_cases.py``'s
  ``rows``) and Keras's predictions on them, each layer's vocabulary, and the saved
  Normalization's mean, variance and count.

In an environment with keras 3.15.1 and tensorflow-cpu 2.21::

    python tests/fixture_scripts/make_preprocessing_file_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"  # Keras's lookups run on TensorFlow alone

import keras
import numpy as np
import tensorflow as tf

TESTS = Path(__file__).resolve().parents[1]
OUT = TESTS / "keras_fixtures"
sys.path.insert(0, str(TESTS))

import preprocessing_file_cases as cases  # noqa: E402


def main() -> None:
    keras.utils.set_random_seed(0)
    rows = cases.rows()
    model = cases.build(keras, rows)
    # (predict's data adapter takes no strings: the model is called on TensorFlow's)
    predictions = model([tf.constant(a) for a in cases.model_inputs(rows)])
    by_name = {layer.name: layer for layer in model.layers}
    norm = by_name["norm"]
    record = {
        "keras_version": keras.__version__,
        "predictions": np.asarray(predictions).tolist(),
        "vocabularies": {
            name: [str(t) for t in by_name[name].get_vocabulary()]
            for name in ("city", "code", "text")
        },
        "bin_boundaries": by_name["amount"].bin_boundaries,
        "normalization": {
            "mean": np.asarray(norm.mean).tolist(),
            "variance": np.asarray(norm.variance).tolist(),
            "count": int(norm.count.numpy()),
        },
    }
    model.save(OUT / "preprocessing_model.keras")
    (OUT / "preprocessing_model.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
