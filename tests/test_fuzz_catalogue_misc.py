"""The fuzzer's entries of ``catalogue_misc``: for many seeds and input shapes, the
arguments drawn build the layer, and its ``out_shape`` is the layer's own output shape."""

from __future__ import annotations

import random

import pytest

import kcompile as keras
from kcompile import layers
from kcompile.tools.fuzz.catalogue_misc import KINDS

SHAPES = [(5,), (1,), (3, 4), (6, 1), (2, 3, 4), (4, 4, 1)]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_drawn_arguments_build_the_layer_with_the_shape_the_entry_says(kind):
    checked = 0
    for seed in range(12):
        for shape in SHAPES:
            if len(shape) not in kind.ranks:
                continue
            rng = random.Random(seed * 31 + len(shape))
            args = kind.draw(rng, shape)
            layer = getattr(layers, kind.name)(**args)
            out = layer(keras.Input(shape))
            assert tuple(out.shape[1:]) == kind.shape(args, shape), (args, shape)
            keras_reverses = args.get("equation", "").startswith("...") and len(shape) > 2
            if not keras_reverses:  # Keras's formula lists 2+ elided axes reversed
                assert tuple(layer.compute_output_shape((None, *shape))[1:]) == out.shape[1:]
            checked += 1
    assert checked >= 12
