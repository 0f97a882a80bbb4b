"""Keras 3.15's numbers for the layers of ``misc_layer_cases.py`` (EinsumDense,
GroupQueryAttention, AdditiveAttention, RMSNormalization, SpectralNormalization, ELU,
PReLU, Identity, AlphaDropout, ReversibleEmbedding, Pipeline, CategoryEncoding,
Discretization) in ``keras_fixtures/misc_layers.npz``, and TensorFlow's hashes behind
``Hashing`` and ``HashedCrossing`` in ``keras_fixtures/hashing.json``.

Run the first in an environment with Keras (the JAX backend), not kcompile's::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/make_misc_layer_fixtures.py

Keras's Hashing and HashedCrossing need TensorFlow; make the second with Keras 3.15.1
and TensorFlow installed (tensorflow-cpu 2.21.0 made the stored file)::

    KERAS_BACKEND=tensorflow python tests/make_misc_layer_fixtures.py --hashing
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from misc_layer_cases import ADAPT_CASES, CASES, build_layer, call_layer, make_inputs  # noqa: E402


def keras_cases() -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    out: dict[str, np.ndarray] = {"keras_version": np.array(keras.__version__)}
    for i, (name, spec) in enumerate(CASES.items()):
        rng = np.random.default_rng(100 + i)
        layer = build_layer(keras.layers, spec)
        arrays = make_inputs(rng, spec)
        probe = dict(
            spec, kwargs={k: v for k, v in spec.get("kwargs", {}).items() if k != "training"}
        )
        call_layer(layer, probe, arrays)  # builds it
        weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.weights]
        layer.set_weights(weights)
        result = call_layer(layer, spec, arrays)
        results = result if isinstance(result, tuple | list) else [result]
        for j, a in enumerate(arrays):
            out[f"{name}/x{j}"] = a
        for j, w in enumerate(weights):
            out[f"{name}/w{j}"] = w
            out[f"{name}/wname{j}"] = np.array(layer.weights[j].path)
        for j, r in enumerate(results):
            out[f"{name}/y{j}"] = np.asarray(r)
        if name.startswith("spectral") and spec.get("kwargs", {}).get("training"):
            out[f"{name}/vector_u"] = np.asarray(layer.vector_u)
        if spec.get("call") is None and "reverse" not in spec.get("kwargs", {}):
            try:
                shape = layer.compute_output_shape((None, *arrays[0].shape[1:]))
            except NotImplementedError:  # Keras's Pipeline has none
                continue
            out[f"{name}/shape"] = np.array([-1 if d is None else d for d in shape])
    for name, spec in ADAPT_CASES.items():
        rng = np.random.default_rng(7)
        data = rng.normal(size=spec["shape"]).astype("float32")
        layer = keras.layers.Discretization(num_bins=spec["num_bins"], epsilon=spec["epsilon"])
        # adapt() itself asks for TensorFlow (its tf.data check); this is its array path
        layer.reset_state()
        for batch in list(data) if name == "adapt_batches" else [data]:
            layer.update_state(batch)
        layer.finalize_state()
        out[f"{name}/data"] = data
        out[f"{name}/boundaries"] = np.array(layer.bin_boundaries, "float64")
    # One SGD step of a model with SpectralNormalization: what persists (the kernel's
    # update through the normalization, vector_u) and what the next prediction gives.
    rng = np.random.default_rng(11)
    inputs = keras.Input((5,))
    wrapped = keras.layers.SpectralNormalization(keras.layers.Dense(3))
    model = keras.Model(inputs, wrapped(inputs))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    start = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in model.weights]
    model.set_weights(start)
    x, y = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 3)).astype("float32")
    out["spectral_fit/x"], out["spectral_fit/y"] = x, y
    out["spectral_fit/loss"] = np.array(model.train_on_batch(x, y))
    for j, (w, after) in enumerate(zip(start, model.get_weights())):
        out[f"spectral_fit/w{j}"], out[f"spectral_fit/after{j}"] = w, after
    out["spectral_fit/predict"] = model.predict(x, verbose=0)
    np.savez_compressed(HERE / "keras_fixtures" / "misc_layers.npz", **out)


def hashing_cases() -> None:
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(3)
    strings = [bytes(rng.integers(0, 256, n).astype(np.uint8)) for n in range(0, 140)]
    strings += [bytes(rng.integers(0, 256, n).astype(np.uint8)) for n in (255, 256, 257, 1000)]
    big = 2**63 - 1
    out: dict = {"keras_version": keras.__version__, "tensorflow_version": tf.__version__}
    out["strings_hex"] = [s.hex() for s in strings]
    out["fingerprint_mod"] = tf.strings.to_hash_bucket_fast(strings, big).numpy().tolist()
    out["siphash_key"] = [12345, 9876543210]
    out["siphash_mod"] = (
        tf.strings.to_hash_bucket_strong(strings, big, key=out["siphash_key"]).numpy().tolist()
    )
    words = ["", "a", "cat", "dog", "hello world", "ünïcødé", "x" * 70, "12", "-3"]
    ints = [0, 1, -1, 12, -3, 2**40, -(2**40), 7, 99]
    floats = [0.0, 1.9, -1.9, 12.5, -3.2, 1e10, -7.99, 2.0, 99.0]
    layers = {
        "words_10": (dict(num_bins=10), [words]),
        "words_2_mask": (dict(num_bins=5, mask_value="cat"), [words]),
        "words_salt": (dict(num_bins=17, salt=133), [words]),
        "words_salt_pair": (dict(num_bins=17, salt=[5, 1234567890123]), [words]),
        "ints": (dict(num_bins=7), [[[v] for v in ints]]),
        "ints_mask": (dict(num_bins=7, mask_value=7), [[[v] for v in ints]]),
        "floats": (dict(num_bins=1000), [floats]),
        "floats_out_of_range": (dict(num_bins=1000), [[1e20, -1e20, 2.5e18]]),
        "bools": (dict(num_bins=10), [[True, False, True]]),
        "multi_hot": (dict(num_bins=6, output_mode="multi_hot"), [[words[:3], words[3:6]]]),
        "count": (dict(num_bins=6, output_mode="count"), [[words[:3], words[3:6]]]),
        "one_hot": (dict(num_bins=6, output_mode="one_hot"), [[[w] for w in words]]),
    }
    out["hashing"] = {}
    for name, (args, (data,)) in layers.items():
        layer = keras.layers.Hashing(**args)
        result = layer(tf.constant(data))
        out["hashing"][name] = {"args": args, "input": data, "output": np.asarray(result).tolist()}
    crosses = {
        "words_ints": (dict(num_bins=1000), [words, ints]),
        "ints_ints": (dict(num_bins=97), [ints, ints[::-1]]),
        "three": (dict(num_bins=50), [words, ints, words[::-1]]),
        "column": (
            dict(num_bins=11, output_mode="one_hot"),
            [[[w] for w in words], [[v] for v in ints]],
        ),
    }
    out["crossing"] = {}
    for name, (args, data) in crosses.items():
        layer = keras.layers.HashedCrossing(**args)
        tensors = [
            tf.constant(d, dtype=tf.int64 if not isinstance(np.ravel(d)[0], str) else None)
            for d in data
        ]
        result = layer(tensors)
        out["crossing"][name] = {
            "args": args,
            "inputs": data,
            "output": np.asarray(result).tolist(),
        }
    (HERE / "keras_fixtures" / "hashing.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    if "--hashing" in sys.argv:
        hashing_cases()
    else:
        keras_cases()
