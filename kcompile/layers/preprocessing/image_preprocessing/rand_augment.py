"""Keras's ``RandAugment``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.auto_contrast import AutoContrast
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.equalization import Equalization
from kcompile.layers.preprocessing.image_preprocessing.random_brightness import RandomBrightness
from kcompile.layers.preprocessing.image_preprocessing.random_color_degeneration import (
    RandomColorDegeneration,
)
from kcompile.layers.preprocessing.image_preprocessing.random_contrast import RandomContrast
from kcompile.layers.preprocessing.image_preprocessing.random_posterization import (
    RandomPosterization,
)
from kcompile.layers.preprocessing.image_preprocessing.random_rotation import RandomRotation
from kcompile.layers.preprocessing.image_preprocessing.random_sharpness import RandomSharpness
from kcompile.layers.preprocessing.image_preprocessing.random_shear import RandomShear
from kcompile.layers.preprocessing.image_preprocessing.random_translation import RandomTranslation
from kcompile.layers.preprocessing.image_preprocessing.solarization import Solarization

AUGMENT_LAYERS = (
    "random_shear",
    "random_translation",
    "random_rotation",
    "random_brightness",
    "random_color_degeneration",
    "random_contrast",
    "random_sharpness",
    "random_posterization",
    "solarization",
    "auto_contrast",
    "equalization",
)


class RandAugment(BaseImagePreprocessingLayer):
    """In training, ``num_ops`` times, one of Keras's eleven augmentations (shear,
    translation, rotation, brightness, colour degeneration, contrast, sharpness,
    posterization, solarization, auto contrast, equalization), the same one for the
    whole batch, chosen at random per call as Keras's ``randint``; each augmentation
    layer draws its parameters once per call (so an augmentation chosen twice repeats
    them, as Keras's), with strength ``factor``. As Keras's, every candidate is computed
    and one is selected."""

    def __init__(
        self,
        value_range: Any = (0, 255),
        num_ops: int = 2,
        factor: Any = 0.5,
        interpolation: str = "bilinear",
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range, self.num_ops = value_range, int(num_ops)
        self.factor = factor_range(f"RandAugment '{self.name}'", factor, (0.0, 1.0), "factor")
        self.interpolation = interpolation
        f, common = self.factor, {"seed": seed}
        coloured = {**common, "value_range": value_range}
        self.random_shear = RandomShear(f, f, interpolation=interpolation, **common)
        self.random_translation = RandomTranslation(f, f, interpolation=interpolation, **common)
        self.random_rotation = RandomRotation(f, interpolation=interpolation, **common)
        self.random_brightness = RandomBrightness(f, **coloured)
        self.random_color_degeneration = RandomColorDegeneration(f, **coloured)
        self.random_contrast = RandomContrast(f, **coloured)
        self.random_sharpness = RandomSharpness(f, **coloured)
        self.random_posterization = RandomPosterization(max(1, int(8 * f[1])), **coloured)
        self.solarization = Solarization(f, f, **coloured)
        self.auto_contrast = AutoContrast(value_range=value_range)
        self.equalization = Equalization(value_range=value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        for name in AUGMENT_LAYERS:  # a new call on data draws anew in every part
            getattr(self, name)._data_calls = self._data_calls
        choices = B.floor(
            self.uniform(ctx, x, 0, 0.0, float(len(AUGMENT_LAYERS)), (1, self.num_ops))
        )
        for slot in range(self.num_ops):
            chosen = B.slice_(choices, [0, slot], [1, slot + 1])
            x = self.augment(ctx, x, B.reshape(chosen, (1, 1, 1, 1)))
        return x

    def augment(self, ctx, x: Value, chosen: Value) -> Value:
        """The augmentation numbered ``chosen`` ([1, 1, 1, 1]) applied to the batch."""
        out = x
        for index, name in enumerate(AUGMENT_LAYERS):
            candidate = getattr(self, name).call(ctx, x)
            pick = B.broadcast_to(B.eq(chosen, float(index)), x.shape)
            out = B.select(pick, candidate, out)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "num_ops": self.num_ops,
            "factor": self.factor,
            "interpolation": self.interpolation,
        }
