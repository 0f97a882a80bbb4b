"""The fuzzer's entries of ``catalogue_mixing``: for many seeds and image shapes, the
arguments drawn build the layer, its ``out_shape`` is the layer's own output shape, and
the layer so built mixes a batch of those images (on data, where the batch is known)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.tools.fuzz.catalogue_mixing import KINDS

SHAPES = [(3, 3, 1), (5, 4, 3), (8, 6, 2), (4, 7, 1)]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_drawn_arguments_build_the_layer_with_the_shape_the_entry_says(kind):
    drawn = []
    for seed in range(12):
        for shape in SHAPES:
            rng = random.Random(seed * 31 + sum(shape))
            args = kind.draw(rng, shape)
            want = kind.shape(args, shape)
            layer = getattr(layers, kind.name)(**args)
            assert tuple(layer(keras.Input(shape)).shape[1:]) == want, (args, shape)
            assert tuple(layer.compute_output_shape((None, *shape))[1:]) == want
            drawn.append(args)
    assert len({str(sorted(a.items())) for a in drawn}) >= 8  # the draws vary


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_drawn_layers_mix_a_batch(kind):
    data = np.random.default_rng(0).normal(size=(6, 5, 4, 3)).astype("float32")
    changed = 0
    for seed in range(4):
        args = kind.draw(random.Random(seed), data.shape[1:])
        out = getattr(layers, kind.name)(**args)(data)
        assert out.shape == data.shape and np.isfinite(out).all()
        changed += not np.array_equal(out, data)
    assert changed >= 2
