"""The fuzzer's entries for the image augmentation layers of Keras 3.15 that issue 26
added (colour, blur, erasing, equalization, perspective and elastic warps). Images are
rank 3 without the batch axis; the colour layers that go through HSV take 3 channels.
RandAugment and AugMix take 3 channels (their colour degeneration does). The data
are normal, so the value ranges are ones that clip little."""

from __future__ import annotations

import random

from kcompile.tools.fuzz.kind import Invalid, LayerKind, Shape, pick, same

_RANGE = ([-5.0, 5.0],)
_INTERPOLATIONS = ("bilinear", "nearest")


def _augment(**choices):
    """A layer's draw: each argument picked from its choices, and a seed."""

    def draw(rng: random.Random, shape: Shape) -> dict:
        return {
            **{key: pick(rng, values) for key, values in choices.items()},
            "seed": rng.randint(0, 99),
        }

    return draw


def _rgb(args: dict, s: Shape) -> Shape:
    if s[-1] != 3:
        raise Invalid("the HSV colour layers take 3 channels")
    return s


def _equalization(rng: random.Random, shape: Shape) -> dict:
    return {"value_range": pick(rng, _RANGE), "bins": pick(rng, (16, 256))}


def _clahe(rng: random.Random, shape: Shape) -> dict:
    """A tile grid no finer than half the image (its symmetric padding fits)."""
    grid = (rng.randint(1, max(1, shape[0] // 2)), rng.randint(1, max(1, shape[1] // 2)))
    return {"value_range": pick(rng, _RANGE), "clip_limit": pick(rng, (0.0, 2.0, 4.0)),
            "tile_grid_size": grid}  # fmt: skip


KINDS: tuple[LayerKind, ...] = (
    LayerKind("RandomHue", (3,), _augment(factor=(0.2, 0.8), value_range=_RANGE), _rgb, 0.1),
    LayerKind(
        "RandomSaturation",
        (3,),
        _augment(factor=(0.3, [0.2, 0.7]), value_range=([0.0, 1.0],)),
        _rgb,
        0.1,
    ),
    LayerKind(
        "RandomColorJitter",
        (3,),
        _augment(
            value_range=_RANGE,
            brightness_factor=(None, 0.1),
            contrast_factor=(None, 0.3),
            saturation_factor=(None, 0.4),
            hue_factor=(None, 0.2),
        ),
        _rgb,
        0.1,
    ),
    LayerKind(
        "RandomSharpness", (3,), _augment(factor=(0.2, [0.1, 0.9]), value_range=_RANGE), same, 0.1
    ),
    LayerKind(
        "RandomPosterization",
        (3,),
        _augment(factor=(4, (3, 3), 8), value_range=_RANGE),
        same,
        0.1,
    ),
    LayerKind(
        "RandomGaussianBlur",
        (3,),
        _augment(
            factor=(0.5, 1.0), kernel_size=(3, (5, 3)), sigma=(1.0, [0.2, 0.8]), value_range=_RANGE
        ),
        same,
        0.1,
    ),
    LayerKind(
        "RandomErasing",
        (3,),
        _augment(factor=(0.5, 1.0), fill_value=(None, 0.5), value_range=_RANGE),
        same,
        0.1,
    ),
    LayerKind("Equalization", (3,), _equalization, same, 0.1),
    LayerKind(
        "RandomPerspective",
        (3,),
        _augment(factor=(0.5, 1.0), scale=(0.3, 1.0), interpolation=_INTERPOLATIONS),
        same,
        0.1,
    ),
    LayerKind(
        "RandomElasticTransform",
        (3,),
        _augment(
            factor=(0.5, 1.0),
            scale=(0.5, [0.2, 1.0]),
            interpolation=_INTERPOLATIONS,
            fill_mode=("reflect", "constant", "wrap", "nearest", "mirror"),
            value_range=_RANGE,
        ),
        same,
        0.1,
    ),
    LayerKind(
        "RandAugment",
        (3,),
        _augment(value_range=_RANGE, num_ops=(1, 2), factor=(0.2, 0.5)),
        _rgb,
        0.03,
    ),
    LayerKind(
        "AugMix",
        (3,),
        _augment(value_range=_RANGE, num_chains=(1, 2), chain_depth=(1, 2), alpha=(0.5, 1.0)),
        _rgb,
        0.03,
    ),
    LayerKind("MaxNumBoundingBoxes", (3,), lambda rng, s: {"max_number": 4}, same, 0.02),
    LayerKind("ContrastLimitedAdaptiveHistogramEqualization", (3,), _clahe, same, 0.05),
)
