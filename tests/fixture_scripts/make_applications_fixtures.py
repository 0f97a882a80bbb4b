"""Keras 3's own answers for ``tests/test_applications.py``: run where Keras is installed,

    KERAS_BACKEND=jax python tests/fixture_scripts/make_applications_fixtures.py arrays
    KERAS_BACKEND=numpy python tests/fixture_scripts/make_applications_fixtures.py table

(made with Keras 3.15.1; the table on Keras's numpy backend, which builds the large models
in seconds where JAX compiles each weight's initializer, and builds the same layers).
Writes ``keras_fixtures/applications.json.gz``: for each
case of ``applications_cases.BUILDS``, the model's parameter counts, layer names, output
shape and its weight-holding layers as Keras 2 files list them; and
``keras_fixtures/applications.npz``: each ``PARITY`` model's outputs given the weights of
``applications_cases.weight_value`` (loaded from a Keras 2 ``.h5`` file through Keras's
own ``load_weights``), and what ``preprocess_input`` and ``decode_predictions`` return.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile

import numpy as np

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import applications_cases as cases  # noqa: E402  (found through TESTS)

HERE = os.path.join(TESTS, "keras_fixtures")


def builds(keras) -> dict:
    out = {}
    for case, (arch, kwargs) in cases.BUILDS.items():
        keras.backend.clear_session()
        model = getattr(keras.applications, arch)(**kwargs)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        out[case] = {
            "params": int(model.count_params()),
            "trainable_params": trainable,
            "name": model.name,
            "layers": [layer.name for layer in model.layers],
            "output_shape": list(model.output.shape),
            "weights": [
                [name, [list(s) for _, s in ws]] for name, ws in cases.legacy_layers(model)
            ],
        }
        print(case, out[case]["params"], len(out[case]["layers"]), flush=True)
    return out


def parity(keras, arrays: dict) -> None:
    folder = tempfile.mkdtemp()
    for case, (arch, kwargs, shape) in cases.PARITY.items():
        keras.backend.clear_session()
        model = getattr(keras.applications, arch)(weights=None, **kwargs)
        path = os.path.join(folder, f"{case}.h5")
        cases.write_legacy_h5(path, cases.legacy_layers(model))
        model.load_weights(path)
        x = cases.image_batch(shape)
        arrays[f"parity/{case}"] = np.asarray(model.predict(x, verbose=0))
        print(case, arrays[f"parity/{case}"].shape, flush=True)


def preprocessing(keras, arrays: dict) -> None:
    x = cases.image_batch((2, 5, 4, 3), seed=1)
    for module in cases.PREPROCESS_MODULES:
        fn = getattr(keras.applications, module).preprocess_input
        arrays[f"preprocess/{module}"] = np.asarray(fn(x.copy()))
    for mode in ("caffe", "tf", "torch"):
        fn = keras.applications.imagenet_utils.preprocess_input
        arrays[f"preprocess_mode/{mode}"] = np.asarray(fn(x.copy(), mode=mode))
        arrays[f"preprocess_mode3d/{mode}"] = np.asarray(fn(x[0].copy(), mode=mode))
    from keras.src.applications import imagenet_utils

    imagenet_utils.CLASS_INDEX = cases.class_index()
    preds = np.random.default_rng(3).uniform(size=(3, 1000)).astype(np.float32)
    decoded = keras.applications.imagenet_utils.decode_predictions(preds, top=4)
    arrays["decode/preds"] = preds
    arrays["decode/ids"] = np.array([[d[0] for d in row] for row in decoded])
    arrays["decode/names"] = np.array([[d[1] for d in row] for row in decoded])
    arrays["decode/scores"] = np.array([[d[2] for d in row] for row in decoded])


def main(part: str) -> None:
    import keras

    if part == "arrays":
        arrays: dict = {}
        preprocessing(keras, arrays)
        parity(keras, arrays)
        np.savez_compressed(os.path.join(HERE, "applications.npz"), **arrays)
        return
    modules = {
        m: sorted(n for n in dir(getattr(keras.applications, m)) if not n.startswith("_"))
        for m in cases.PREPROCESS_MODULES
    }
    top = sorted(n for n in dir(keras.applications) if not n.startswith("_"))
    table = {
        "keras_version": keras.__version__,
        "names": top,
        "modules": modules,
        "builds": builds(keras),
    }
    # gzip: the layer lists of 56 models are 1 MB of JSON, 0.1 MB packed.
    with gzip.open(os.path.join(HERE, "applications.json.gz"), "wt") as f:
        json.dump(table, f, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1])
