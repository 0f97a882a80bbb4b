"""Keras 3's model configs as JSON (``model.to_json()``) with the weights and predictions
of the same models, for ``test_serialization_api``: each config must load in kcompile
(``keras.models.model_from_json``) and, given Keras's weights, predict Keras's numbers.
The reverse is checked here, where Keras is installed: kcompile's ``to_json`` of the same
models loads in Keras and predicts kcompile's numbers.

Made with Keras 3.15.1 (JAX backend), in an environment that has Keras and kcompile::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_serialization_fixtures.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import kcompile  # noqa: E402
from tests.serialization_models import JSON_MODELS  # noqa: E402


def main() -> None:
    out = HERE / "keras_fixtures"
    for name, (build, shapes) in JSON_MODELS.items():
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        model = build(keras)
        rng = np.random.default_rng(0)
        xs = [rng.normal(size=(4, *s)).astype("float32") for s in shapes]
        x = xs[0] if len(xs) == 1 else xs
        (out / f"json_{name}.json").write_text(model.to_json(indent=1))
        arrays = {f"w{i:03d}": w for i, w in enumerate(model.get_weights())}
        arrays.update({f"x{i}": a for i, a in enumerate(xs)})
        np.savez(
            out / f"json_{name}.npz",
            predict=np.asarray(model.predict(x, verbose=0)),
            versions=np.array(f"keras {keras.__version__}"),
            **arrays,
        )
        # the reverse: kcompile's JSON of the same model, read by Keras
        ours = build(kcompile)
        ours.set_weights(model.get_weights())
        loaded = keras.models.model_from_json(ours.to_json())
        loaded.set_weights(model.get_weights())
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6
        )
        print(name, "written; kcompile's JSON loads in Keras")


if __name__ == "__main__":
    main()
