"""Makes the ``keras.utils.FeatureSpace`` fixtures with real Keras (3.15.1, JAX backend,
TensorFlow 2.21 for the tf.data and lookups FeatureSpace needs), in ``tests/keras_fixtures/``:

- ``feature_space.json``: the table of ``tests/feature_space_cases.py``; for each space
  there, its encoded output on the whole table and on its first row alone (each array's
  values, shape and dtype), its config, build config, ``one_hot_encoders`` and the
  layers' names; the ``concat`` space adapted on the table batched by 8; the type and
  message of every error case;
- ``feature_space.keras``: the ``concat`` space saved by ``FeatureSpace.save``.

In an environment with keras 3.15.1, jax and tensorflow-cpu (the lookups need it)::

    KERAS_BACKEND=jax python tests/fixture_scripts/make_feature_space_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
import tensorflow as tf

TESTS = Path(__file__).resolve().parents[1]
OUT = TESTS / "keras_fixtures"
sys.path.insert(0, str(TESTS))

import feature_space_cases as cases  # noqa: E402


def arrays(x) -> dict:
    """Values, shape and dtype of one output array (or of each in a dict)."""
    if isinstance(x, dict):
        return {k: arrays(v) for k, v in x.items()}
    a = np.asarray(x)
    return {"values": a.tolist(), "shape": list(a.shape), "dtype": str(a.dtype)}


def describe(space, data: dict) -> dict:
    data = {k: data[k] for k in space.features}
    first = {k: v[0] for k, v in data.items()}
    return {
        "table": arrays(space(data)),
        "row": arrays(space(first)),
        "config": space.get_config(),
        "build_config": space.get_build_config(),
        "one_hot_encoders": {k: int(v.num_tokens) for k, v in space.one_hot_encoders.items()},
        "preprocessors": {k: [type(v).__name__, v.name] for k, v in space.preprocessors.items()},
        "crossers": {k: [type(v).__name__, v.name] for k, v in space.crossers.items()},
    }


def main() -> None:
    data = cases.table()
    record = {
        "versions": f"keras {keras.__version__}, tensorflow {tf.__version__}",
        "table": {k: v.tolist() for k, v in data.items()},
        "spaces": {},
        "errors": {},
    }
    for name, build in cases.SPACES.items():
        keras.utils.clear_session()
        space = build(keras)
        if name != "custom":  # its layers need no adapt (and cannot be adapted)
            space.adapt(data)
        record["spaces"][name] = describe(space, data)
        if name == "concat":
            space.save(OUT / "feature_space.keras")
    keras.utils.clear_session()
    batched = cases.concat_space(keras)
    batched.adapt(tf.data.Dataset.from_tensor_slices(data).batch(8))
    record["batched_by_8"] = arrays(batched(data))
    for name in cases.ERRORS:
        keras.utils.clear_session()
        record["errors"][name] = cases.error_of(keras, name, data)
    text = json.dumps(record, separators=(",", ":"), default=str)
    (OUT / "feature_space.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
