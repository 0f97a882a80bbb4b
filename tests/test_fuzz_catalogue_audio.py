"""The fuzzer's entries of ``catalogue_audio``: for many seeds and input shapes, the
arguments drawn build the layer, and its ``out_shape`` is the layer's own output shape."""

from __future__ import annotations

import random

import pytest

import kcompile as keras
from kcompile import layers
from kcompile.tools.fuzz.catalogue_audio import KINDS
from kcompile.tools.fuzz.kind import Invalid

SHAPES = [(5,), (1,), (16,), (3, 4), (6, 1), (8, 2), (2, 7)]


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_drawn_arguments_build_the_layer_with_the_shape_the_entry_says(kind):
    checked = 0
    for seed in range(12):
        for shape in SHAPES:
            if len(shape) not in kind.ranks:
                continue
            rng = random.Random(seed * 31 + len(shape))
            args = kind.draw(rng, shape)
            try:
                want = kind.shape(args, shape)
            except Invalid:
                continue  # (the generator draws again)
            layer = getattr(layers, kind.name)(**args)
            out = layer(keras.Input(shape))
            assert tuple(out.shape[1:]) == want, (args, shape)
            if kind.name == "STFTSpectrogram":  # (Keras's Mel formula may count one more)
                assert tuple(layer.compute_output_shape((None, *shape))[1:]) == want
            checked += 1
    assert checked >= 12
