"""The fuzzer's entries for the batch-mixing augmentations, ``MixUp`` and ``CutMix``, on
images ([height, width, channels]); their output has the input's shape. Drawn among
``catalogue.UNARY``: in a model they mix in the training step (its batch symbolic, the
order of the batch taken by ``gather_batch``) and pass the images unchanged in inference.
"""

from __future__ import annotations

import random

from kcompile.tools.fuzz.kind import LayerKind, Shape, pick, same


def _mix_up(rng: random.Random, shape: Shape) -> dict:
    return {"alpha": pick(rng, (0.2, 0.5, 1.0, 2.0)), "seed": rng.randint(0, 99)}


def _cut_mix(rng: random.Random, shape: Shape) -> dict:
    low = pick(rng, (0.0, 0.2, 0.5))
    factor = pick(rng, (1.0, 0.5, [low, pick(rng, (0.6, 0.9, 1.0))]))
    args = {"factor": factor, "seed": rng.randint(0, 99)}
    if rng.random() < 0.2:  # the image's axes read as (channels, height, width)
        args["data_format"] = "channels_first"
    return args


KINDS: tuple[LayerKind, ...] = (
    LayerKind("MixUp", (3,), _mix_up, same, 0.1),
    LayerKind("CutMix", (3,), _cut_mix, same, 0.1),
)
