"""The base of Keras's random image augmentation layers (``RandomFlip``,
``RandomRotation``, ...), channels last.

As Keras's: active in training only (identity, cast to float32, in evaluation and
prediction), and ``training`` defaults to True when the layer is called on data
(``layer(images)`` augments, as Keras's ``call(data, training=True)``). A single image
(rank 3) is taken as a batch of one. The random numbers come from the step's
counter-based generator (``random_uniform`` keyed by the layer's seed and the optimizer's
step counter), one draw per image, so training is reproducible for a seed and compiled
code draws what the reference interpreter draws; the streams are not JAX's. Each call on
data draws anew, as Keras's seed generator does. Dictionaries of images, labels and
bounding boxes are not supported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor, keras_shape
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.layer_seed import layer_seed


def factor_range(layer: str, factor: Any, bounds: tuple[float, float], name: str) -> tuple:
    """Keras's ``_set_factor``: a number f gives (max(-f, low), f), a pair is sorted."""
    error = (
        f"{layer}: the `{name}` argument should be a number (or a list of two numbers) in "
        f"the range [{bounds[0]}, {bounds[1]}]. Received: {name}={factor}"
    )
    if isinstance(factor, tuple | list):
        if len(factor) != 2 or factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(error)
        lower, upper = sorted(float(f) for f in factor)
        return lower, upper
    if isinstance(factor, int | float) and not isinstance(factor, bool):
        if not bounds[0] <= factor <= bounds[1]:
            raise ValueError(error)
        return max(-abs(float(factor)), bounds[0]), abs(float(factor))
    raise ValueError(error)


def check_data_format(layer: str, data_format: Any) -> None:
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(
            f"{layer}: data_format={data_format!r}; kcompile's image layers take channels_last"
        )


class BaseImagePreprocessingLayer(Layer):
    """Random augmentation of (batch, height, width, channels) images in training."""

    def __init__(self, seed: int | None = None, data_format: Any = None, **kwargs: Any) -> None:
        if kwargs.pop("bounding_box_format", None) is not None:
            raise NotImplementedError(
                f"{type(self).__name__}: bounding boxes are not supported by kcompile yet"
            )
        super().__init__(**kwargs)
        check_data_format(f"{type(self).__name__} '{self.name}'", data_format)
        self.data_format = "channels_last"
        self._given_seed = seed
        self.seed = layer_seed(seed)
        self._data_calls = 0

    # --- calling on data ----------------------------------------------------

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, dict):
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': dictionaries of images, labels and "
                "bounding boxes are not supported by kcompile yet; pass the images"
            )
        if isinstance(inputs, KerasTensor | TracedTensor) or current_context() is not None:
            return super().__call__(inputs, *args, **kwargs)
        kwargs.setdefault("training", True)  # Keras's call(data, training=True)
        array = np.asarray(getattr(inputs, "value", inputs))
        self._data_calls += 1
        if array.ndim == 3:
            return super().__call__(array[None], *args, **kwargs)[0]
        return super().__call__(array, *args, **kwargs)

    # --- for the layers -----------------------------------------------------

    def images(self, x: Value) -> Value:
        """The input as float32 images, checked to be rank 4."""
        if x.rank != 4:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects images of shape (batch, height, "
                f"width, channels), got {keras_shape(x.shape)}"
            )
        return B.cast(x, DType.f32) if x.dtype is not DType.f32 else x

    def draw_seed(self, k: int) -> int:
        """The seed of this layer's ``k``-th draw (each call on data draws anew)."""
        return (self.seed * 1_000_003 + 7919 * self._data_calls + k) % (2**31 - 1)

    def uniform(
        self, ctx, x: Value, k: int, low: float, high: float, shape: tuple | None = None
    ) -> Value:
        """Uniform numbers in [low, high), one per image ([N, 1]) unless ``shape``."""
        shape = (x.shape[0], 1) if shape is None else shape
        u = B.random_uniform(ctx.step_counter(), shape, self.draw_seed(k))
        return u * (high - low) + low if (low, high) != (0.0, 1.0) else u

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self._given_seed, "data_format": "channels_last"}
