"""Makes ``tests/keras_fixtures/audio_layers.npz`` with real Keras (3.15.1, JAX backend):
``STFTSpectrogram`` and ``MelSpectrogram`` in several configurations, each with its
input, Keras's output, ``compute_output_shape`` and ``get_config`` (as JSON); one SGD
step of a small model whose STFT kernels train (the loss and every weight after it); and
a model holding both layers saved as ``audio_layers.keras``, with its predictions.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_audio_layer_fixtures.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

SCRIPT = "tests/fixture_scripts/make_audio_layer_fixtures.py"
SAVED = Path(__file__).resolve().parents[1] / "keras_fixtures" / "audio_layers.keras"

# name -> (arguments, input shape); inputs are uniform in [-1, 1).
STFT_CASES = {
    "log_defaults": ({"frame_length": 32}, (2, 160, 2)),
    "magnitude_hamming_same": (
        {
            "mode": "magnitude",
            "frame_length": 24,
            "frame_step": 10,
            "fft_length": 32,
            "window": "hamming",
            "periodic": True,
            "scaling": "spectrum",
            "padding": "same",
            "expand_dims": True,
        },
        (2, 101, 2),
    ),
    "psd_channels_first": (
        {
            "mode": "psd",
            "frame_length": 16,
            "frame_step": 8,
            "window": None,
            "scaling": None,
            "data_format": "channels_first",
        },
        (2, 3, 90),
    ),
    "real_custom_window": (
        {
            "mode": "real",
            "frame_length": 8,
            "frame_step": 3,
            "fft_length": 16,
            "window": [0.1, 0.4, 0.8, 1.0, 1.0, 0.8, 0.4, 0.1],
            "expand_dims": True,
            "data_format": "channels_first",
        },
        (2, 1, 50),
    ),
    "imag_same": (
        {"mode": "imag", "frame_length": 20, "frame_step": 7, "padding": "same"},
        (2, 64, 1),
    ),
    "angle": ({"mode": "angle", "frame_length": 16, "frame_step": 16}, (2, 80, 2)),
    "stft_pair": ({"mode": "stft", "frame_length": 16, "fft_length": 16}, (2, 48, 1)),
}

MEL_CASES = {
    "batched": (
        {"fft_length": 64, "sequence_stride": 16, "sampling_rate": 8000, "num_mel_bins": 16},
        (2, 400),
    ),
    "magnitude_hamming": (
        {
            "fft_length": 64,
            "sequence_stride": 20,
            "sequence_length": 48,
            "window": "hamming",
            "sampling_rate": 16000,
            "num_mel_bins": 12,
            "min_freq": 50.0,
            "max_freq": 6000.0,
            "power_to_db": False,
            "mag_exp": 1.0,
        },
        (2, 333),
    ),
    "unbatched_db": (
        {
            "fft_length": 32,
            "sequence_stride": 8,
            "window": None,
            "sampling_rate": 4000,
            "num_mel_bins": 10,
            "top_db": 40.0,
            "ref_power": 2.0,
            "min_power": 1e-6,
            "mag_exp": 1.5,
        },
        (200,),
    ),
}

CONFIG_ONLY = {"stft_default": ("STFTSpectrogram", {}), "mel_default": ("MelSpectrogram", {})}

# A model whose STFT kernels are trained: Input -> STFTSpectrogram -> Flatten -> Dense(1).
TRAIN_STFT = {"mode": "magnitude", "frame_length": 16, "frame_step": 8}
TRAIN_SHAPE = (4, 64, 1)


def _train(keras, rng, out: dict) -> None:
    inputs = keras.Input(TRAIN_SHAPE[1:])
    hidden = keras.layers.STFTSpectrogram(**TRAIN_STFT)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    weights = model.get_weights()
    weights[2] = rng.uniform(-0.1, 0.1, size=weights[2].shape).astype("float32")
    model.set_weights(weights)
    for i, w in enumerate(model.get_weights()):
        out[f"train/w{i}"] = w
    x = rng.uniform(-1.0, 1.0, size=TRAIN_SHAPE).astype("float32")
    y = rng.normal(size=(TRAIN_SHAPE[0], 1)).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    out["train/x"], out["train/y"] = x, y
    out["train/loss"] = np.float32(model.train_on_batch(x, y))
    for i, w in enumerate(model.get_weights()):
        out[f"train/after{i}"] = w


def _saved(keras, out: dict) -> None:
    """A model holding both layers (and a Dense on them), saved as ``audio_layers.keras``,
    and its predictions on the batched Mel case's input."""
    inputs = keras.Input((400,))
    mel = keras.layers.MelSpectrogram(**MEL_CASES["batched"][0])(inputs)
    signal = keras.layers.Reshape((400, 1))(inputs)
    stft = keras.layers.STFTSpectrogram(mode="psd", frame_length=16)(signal)
    merged = keras.layers.Concatenate()([keras.layers.Flatten()(mel), keras.layers.Flatten()(stft)])
    model = keras.Model(inputs, keras.layers.Dense(2)(merged))
    model.save(SAVED)
    out["saved/y"] = np.asarray(model.predict(out["batched/x"], verbose=0))


def main() -> None:
    import keras

    rng = np.random.default_rng(11)
    out: dict = {"keras_version": np.array(keras.__version__), "script": np.array(SCRIPT)}
    configs, shapes = {}, {}
    cases = [("STFTSpectrogram", k, *v) for k, v in STFT_CASES.items()]
    cases += [("MelSpectrogram", k, *v) for k, v in MEL_CASES.items()]
    for cls, name, args, shape in cases:
        layer = getattr(keras.layers, cls)(**args)
        x = rng.uniform(-1.0, 1.0, size=shape).astype("float32")
        out[f"{name}/x"] = x
        out[f"{name}/y"] = np.asarray(layer(x))
        configs[name] = layer.get_config()
        shapes[name] = [list(layer.compute_output_shape(s)) for s in (shape, _unknown(shape, args))]
    for name, (cls, args) in CONFIG_ONLY.items():
        configs[name] = getattr(keras.layers, cls)(**args).get_config()
    _train(keras, rng, out)
    _saved(keras, out)
    out["configs"] = np.array(json.dumps(configs, sort_keys=True))
    out["output_shapes"] = np.array(json.dumps(shapes))
    path = Path(__file__).resolve().parents[1] / "keras_fixtures" / "audio_layers.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def _unknown(shape: tuple, args: dict) -> tuple:
    """The shape with its batch and its samples axis unknown."""
    if len(shape) < 3:
        return (None,) * len(shape)
    if args.get("data_format") == "channels_first":
        return (None, shape[1], None)
    return (None, None, shape[2])


if __name__ == "__main__":
    main()
