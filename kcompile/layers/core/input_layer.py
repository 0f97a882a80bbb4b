"""Core layers: Input, Dense, Flatten, Reshape, Activation, Softmax, Dropout."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from kcompile import activations
from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import KerasTensor, keras_shape
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer, TraceContext


class InputLayer(Layer):
    def __init__(
        self,
        shape: Sequence[int] | None = None,
        batch_size: int | None = None,
        dtype: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or backend.unique_name("input_layer"), **kwargs)
        if shape is None:
            raise ValueError("Input needs a shape (without the batch dimension)")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        for d in shape:
            if d is not None and (not isinstance(d, int) or d < 0):
                raise ValueError(
                    f"Input '{self.name}': shape {shape} must hold non-negative integers "
                    "or None (a dimension the data decides)"
                )
        self.dtype = dtype or "float32"
        self.built = True
        self.output_tensor = KerasTensor((batch_size, *shape), self.dtype, name=self.name)
        self.output_tensor._history = (None, 0)
        self.output_tensor._input_layer = self

    def get_config(self):
        return {"name": self.name, "shape": self.output_tensor.shape[1:], "dtype": self.dtype}


def Input(
    shape: Sequence[int] | int | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    sparse: bool | None = None,
    batch_shape: Sequence[int | None] | None = None,
    name: str | None = None,
    tensor: Any = None,
) -> KerasTensor:
    """A symbolic input tensor, as ``keras.Input`` (``shape`` without the batch
    dimension, or ``batch_shape`` with it)."""
    if sparse:
        raise NotImplementedError(f"Input {name or ''}: sparse inputs are not supported")
    if tensor is not None:
        raise NotImplementedError(f"Input {name or ''}: tensor= is not supported")
    if batch_shape is not None:
        if shape is not None:
            raise ValueError("Input takes shape or batch_shape, not both")
        batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output_tensor


class Dense(Layer):
    propagates_mask = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        if not isinstance(units, int) or units <= 0:
            raise ValueError(
                f"Dense '{self.name}': units must be a positive integer, got {units!r}"
            )
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"Dense '{self.name}': the last dimension of the input must be "
                f"known, got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            (input_shape[-1], self.units),
            self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
        )
        self.bias = (
            self.add_weight(
                (self.units,), self.bias_initializer, name="bias", regularizer=self.bias_regularizer
            )
            if self.use_bias
            else None
        )

    def call(self, ctx: TraceContext, x: Value) -> Value:
        y = B.matmul(x, ctx.weight(self.kernel))
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return self.activation(y)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "activation": activations.serialize(self.activation),
        }


class Flatten(Layer):
    def call(self, ctx, x):
        rest = math.prod(d for d in x.shape[1:])
        return B.reshape(x, (x.shape[0], rest))


class Reshape(Layer):
    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(1 for d in self.target_shape if d == -1) > 1:
            raise ValueError(f"Reshape '{self.name}': at most one -1 in {self.target_shape}")

    def call(self, ctx, x):
        size = math.prod(d for d in x.shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        target = list(self.target_shape)
        if -1 in target:
            if known == 0 or size % known:
                raise ValueError(
                    f"Reshape '{self.name}': cannot reshape {x.shape[1:]} to {self.target_shape}"
                )
            target[target.index(-1)] = size // known
        elif known != size:
            raise ValueError(
                f"Reshape '{self.name}': input shape {keras_shape(x.shape)} has {size} "
                f"elements per sample, target shape {self.target_shape} has {known}"
            )
        return B.reshape(x, (x.shape[0], *target))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Activation(Layer):
    propagates_mask = True

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, ctx, x):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Softmax(Layer):
    propagates_mask = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, ctx, x):
        return activations.softmax(x, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class ReLU(Layer):
    propagates_mask = True

    def call(self, ctx, x):
        return activations.relu(x)


class LeakyReLU(Layer):
    propagates_mask = True

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, ctx, x):
        return activations.leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class Masking(Layer):
    """Keras's Masking: a step whose features all equal ``mask_value`` is masked for
    the layers after it, and zeroed."""

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _kept(self, x: Value) -> Value:
        differs = B.cast(B.ne(x, self.mask_value), DType.f32)
        return B.gt(B.reduce_max(differs, -1), 0.0)  # any over the features

    def call(self, ctx, x):
        kept = B.cast(self._kept(x), x.dtype)
        return x * B.reshape(kept, (*kept.shape, 1))

    def compute_mask(self, inputs, previous_mask):
        return self._kept(inputs)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``rate``
    and scale the rest by 1/(1-rate); identity in evaluation and prediction.

    The mask comes from the IR's counter-based random op keyed by this layer's
    seed and the optimizer's step counter, so training is reproducible.
    """

    propagates_mask = True

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None
        self.seed = backend.draw_seed() if seed is None else int(seed)

    def call(self, ctx, x):
        if not ctx.training or self.rate == 0:
            return x
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.rank:
                raise ValueError(
                    f"Dropout '{self.name}': noise_shape {self.noise_shape} does "
                    f"not match the input rank {x.rank}"
                )
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, x.shape))
        u = B.random_uniform(ctx.step_counter(), shape, self.seed)
        keep = B.ge(u, self.rate)
        return B.select(keep, x * (1.0 / (1.0 - self.rate)), 0.0)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "seed": self.seed,
            "noise_shape": self.noise_shape,
        }


class Lambda(Layer):
    """Keras's ``Lambda(function)``: ``function(inputs, **arguments)`` written with
    ``keras.ops``, traced like a custom layer's ``call``."""

    def __init__(
        self,
        function: Any,
        output_shape: Any = None,
        mask: Any = None,
        arguments: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda needs a function, got {function!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = mask  # Keras: the output's mask (or how to compute it); else none
        self.supports_masking = mask is not None
        try:
            self._takes_mask = "mask" in inspect.signature(function).parameters
        except (TypeError, ValueError):  # a builtin without a signature
            self._takes_mask = False

    def call(self, inputs, mask=None, training=None):
        extra = {"mask": mask} if self._takes_mask else {}
        return self.function(inputs, **self.arguments, **extra)

    def compute_mask(self, inputs, previous_mask):
        return self.mask(inputs, previous_mask) if callable(self.mask) else self.mask

    def get_config(self):
        raise NotImplementedError(
            f"layer '{self.name}': a Lambda's function cannot be serialized (as in Keras, "
            "which refuses to load it by default); rebuild the model in code"
        )
