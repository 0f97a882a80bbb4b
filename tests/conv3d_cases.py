"""What the tests of the 3-D convolution family, the adaptive poolings and the ConvLSTMs
share: Keras's numbers (``keras_fixtures/conv3d_family.npz``, made by
``fixture_scripts/make_conv3d_fixtures.py`` with Keras 3.15.1 and JAX) checked on one
compiled model per test file, natively and on the reference interpreter, and an N-d
convolution in numpy written from its definition."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np

import kcompile as keras
from tests.fixture_scripts.make_conv3d_fixtures import fixture_call

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "conv3d_family.npz")
# Keras writes initializers as dicts where kcompile keeps the name it was given, and a
# seed kcompile draws where Keras leaves None: both read back the same.
_NOT_COMPARED = {"name", "dtype", "seed"}


def fixture(name: str) -> dict[str, np.ndarray]:
    return {k.split("/", 1)[1]: FIXTURES[k] for k in FIXTURES.files if k.startswith(name + "/")}


def check_keras_cases(names: list[str]) -> None:
    """The cases' layers in one model: its outputs natively and on the reference
    interpreter equal Keras's; each layer's config holds Keras's entries with Keras's
    values and makes the layer again."""
    inputs, outputs, feeds, expected, layers = [], [], [], [], []
    for name in names:
        given = fixture(name)
        layer, i, o, f = fixture_call(keras, name, given)
        inputs += i
        outputs += o
        feeds += f
        expected += [given[f"y{k}"] for k in range(len(o))]
        layers.append((layer, json.loads(str(given["config"]))))
    model = keras.Model(inputs, outputs)
    found = []
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        got = model.predict(feeds, verbose=0)
        found.append(got if isinstance(got, list) else [got])
    for k, want in enumerate(expected):
        np.testing.assert_allclose(found[0][k], found[1][k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(found[0][k], want, rtol=1e-5, atol=2e-6, err_msg=str(k))
    for layer, keras_config in layers:
        check_config(layer, keras_config)


def check_config(layer, keras_config: dict) -> None:
    mine = json.loads(json.dumps(layer.get_config(), default=str))
    for key, value in keras_config.items():
        if key in _NOT_COMPARED or key.endswith("_initializer"):
            continue
        assert key in mine, f"{type(layer).__name__}: config lacks {key!r}"
        assert mine[key] == value, (key, mine[key], value)
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


def conv_numpy(x, kernel, strides, padding, dilation):
    """A convolution over the spatial axes of x[N, *S, C] with kernel[*K, C, F], from its
    definition: out[o] = sum over taps t of x[o*s + t*d - pad_low] @ kernel[t]."""
    spatial, taps = x.shape[1:-1], kernel.shape[:-2]
    pads, outs = [], []
    for size, k, s, d in zip(spatial, taps, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "same":
            out = math.ceil(size / s)
            total = max((out - 1) * s + span - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            out = (size - span) // s + 1
            pads.append((0, 0))
        outs.append(out)
    xp = np.pad(x.astype(np.float64), ((0, 0), *pads, (0, 0)))
    y = np.zeros((x.shape[0], *outs, kernel.shape[-1]))
    for t in itertools.product(*(range(k) for k in taps)):
        index = tuple(
            slice(ti * d, ti * d + s * (o - 1) + 1, s)
            for ti, d, s, o in zip(t, dilation, strides, outs)
        )
        y += xp[(slice(None), *index)] @ kernel[t]
    return y
