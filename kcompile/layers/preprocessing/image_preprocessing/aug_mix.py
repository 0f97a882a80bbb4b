"""Keras's ``AugMix``."""

from __future__ import annotations

import random
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
from kcompile.layers.preprocessing.image_preprocessing.random_draws import clip, gamma
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
    "random_posterization",
    "solarization",
    "auto_contrast",
    "equalization",
)
AUGMENT_LAYERS_ALL = (
    *AUGMENT_LAYERS,
    "random_brightness",
    "random_color_degeneration",
    "random_contrast",
    "random_sharpness",
)


class AugMix(BaseImagePreprocessingLayer):
    """In training, Keras's AugMix: ``num_chains`` chains of up to ``chain_depth``
    augmentations (each step one of the augmentation layers or none), mixed with
    Dirichlet(alpha) weights, then blended with the images by a Beta(alpha, alpha)
    weight and clipped to ``value_range``. Each step of a chain draws its own
    parameters. As Keras's, the chains' layers are picked with Python's ``random`` when
    the call is traced (so a compiled step keeps them, as Keras's jitted step does; each
    call on data picks anew); the weights are drawn in the step (the gamma draws by
    Marsaglia and Tsang's method over 16 candidates)."""

    def __init__(
        self,
        value_range: Any = (0, 255),
        num_chains: int = 3,
        chain_depth: Any = 3,
        factor: Any = 0.3,
        alpha: float = 1.0,
        all_ops: bool = True,
        interpolation: str = "bilinear",
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range, self.num_chains = value_range, int(num_chains)
        self.chain_depth = chain_depth
        self.factor = factor_range(f"AugMix '{self.name}'", factor, (0.0, 1.0), "factor")
        if not alpha > 0:
            raise ValueError(f"AugMix '{self.name}': alpha must be positive, got {alpha}")
        self.alpha, self.all_ops, self.interpolation = float(alpha), bool(all_ops), interpolation
        self._augment_layers = AUGMENT_LAYERS_ALL if self.all_ops else AUGMENT_LAYERS
        f, common = self.factor, {"seed": seed}
        coloured = {**common, "value_range": value_range}
        self.random_shear = RandomShear(f, f, interpolation=interpolation, **common)
        self.random_translation = RandomTranslation(f, f, interpolation=interpolation, **common)
        self.random_rotation = RandomRotation(f, interpolation=interpolation, **common)
        self.solarization = Solarization(f, f, **coloured)
        self.random_posterization = RandomPosterization(max(1, int(8 * f[1])), **coloured)
        self.auto_contrast = AutoContrast(value_range=value_range)
        self.equalization = Equalization(value_range=value_range)
        if self.all_ops:
            self.random_brightness = RandomBrightness(f, **coloured)
            self.random_color_degeneration = RandomColorDegeneration(f, **coloured)
            self.random_contrast = RandomContrast(f, **coloured)
            self.random_sharpness = RandomSharpness(f, **coloured)

    def chains(self) -> list[list[str]]:
        """The layers of each chain for this call (Keras's ``random.choice`` among the
        layers and None, ``chain_depth`` times)."""
        picker = random.Random(self.draw_seed(0))
        options = [*self._augment_layers, None]
        depth = self.chain_depth
        return [
            [name for name in (picker.choice(options) for _ in range(int(depth))) if name]
            for _ in range(self.num_chains)
        ]

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        weights = gamma(self, ctx, x, 1, self.alpha, self.num_chains)
        weights = weights / B.reduce_sum(weights, (1,), keepdims=True)  # Dirichlet
        pair = gamma(self, ctx, x, 4, self.alpha, 2)
        first = B.slice_(pair, [0, 0], [1, 1])
        blend = first / B.reduce_sum(pair, (1,), keepdims=True)  # Beta(alpha, alpha)
        return self.mix(x, self.run_chains(ctx, x), weights, blend)

    def run_chains(self, ctx, x: Value) -> list[Value]:
        """Each chain's images; every step draws its own parameters."""
        out = []
        step = 0
        for chain in self.chains():
            images = x
            for name in chain:
                layer = getattr(self, name)
                step += 1
                layer._data_calls = self._data_calls * 1000 + step  # a fresh draw per step
                images = layer.call(ctx, images)
            out.append(images)
        return out

    def mix(self, x: Value, chained: list[Value], weights: Value, blend: Value) -> Value:
        """blend·x + (1 − blend)·Σ weights[c]·chained[c], clipped (``weights`` [1, C],
        ``blend`` [1, 1])."""
        mixed = None
        for c, images in enumerate(chained):
            weight = B.reshape(B.slice_(weights, [0, c], [1, c + 1]), (1, 1, 1, 1))
            term = images * weight
            mixed = term if mixed is None else mixed + term
        blend = B.reshape(blend, (1, 1, 1, 1))
        return clip(x * blend + mixed * (1.0 - blend), self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "num_chains": self.num_chains,
            "chain_depth": self.chain_depth,
            "factor": self.factor,
            "alpha": self.alpha,
            "all_ops": self.all_ops,
            "interpolation": self.interpolation,
        }
