"""int8 convolutions, beyond Keras: ``model.quantize("int8", convolutions=True)``.

Keras 3 quantizes Dense, EinsumDense and Embedding only and leaves convolutions in float.
kcompile can quantize ``Conv1D`` and ``Conv2D`` too, when asked, the way Keras quantizes a
Dense (``kcompile.quantizers``):

- the kernel once, per output channel: ``scale = 127 / (max|w| + 1e-7)`` over every axis
  but the filters, ``clip(round(w * scale), -127, 127)`` as int8 (Keras's
  ``abs_max_quantize``), and a frozen ``kernel_scale`` of one value per filter;
- the inputs on the fly, one scale per sample (abs-max over every axis but the batch).
  Not one per pixel: a window of the convolution spans several pixels, and an integer
  sum over a window is a sum of products in one scale only if the window's pixels share
  it; per sample, the rescale after the integer convolution is one division per output;
- the int8 x int8 ``conv2d`` gives exact int32 sums (``passes.int8_products`` runs them
  as exact f32 convolutions up to ``EXACT_I8_DEPTH`` = window x channels deep, which is
  why deeper layers are refused here, before anything changes);
- the input's gradient is that of the float convolution with the dequantized kernel
  (``gradient_via``), as Keras's custom gradient of a quantized Dense.

The IR's ``conv2d`` has strides, dilation and padding but no groups: a grouped
convolution is refused; every other convolution layer stays float, with Keras's warning.

``Int8Convolution`` holds the layer's side (``quantize``, ``quantized_build``, the call);
Conv2D, and Conv1D through it, inherit it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kcompile import quantizers
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.layer import TraceContext
from kcompile.passes.int8_products import EXACT_I8_DEPTH

# The axes of an image [N, H, W, C] a sample's inputs scale is taken over.
SAMPLE_AXES = (1, 2, 3)


def quantizable(layer: Any) -> bool:
    """Whether ``layer`` is a Conv1D or Conv2D itself (not a subclass: a subclass may
    change the call, so it stays float, as Keras leaves subclasses of Dense): its class
    itself, not a base, says ``QUANTIZES_TO_INT8`` (no import of those modules, which
    import this one)."""
    return vars(type(layer)).get("QUANTIZES_TO_INT8", False)


def window_depth(kernel_shape: tuple[int, ...]) -> int:
    """The terms of each output's sum: window x input channels."""
    return math.prod(kernel_shape[:-1])


def refusal(layer: Any, kernel_shape: tuple[int, ...]) -> str | None:
    """Why the built ``layer`` with a kernel of ``kernel_shape`` cannot be quantized to
    int8, or None when it can."""
    where = f"{type(layer).__name__} '{layer.name}'"
    if layer.groups != 1:
        return (
            f"{where}: groups={layer.groups}: kcompile quantizes convolutions with "
            "groups=1 only (the IR's integer conv2d has no groups)"
        )
    depth = window_depth(kernel_shape)
    if depth > EXACT_I8_DEPTH:
        return (
            f"{where}: its window is {depth} deep (kernel {tuple(kernel_shape)}: window x "
            f"input channels); kcompile's int8 convolutions sum at most {EXACT_I8_DEPTH} "
            "products exactly, so this layer cannot be quantized"
        )
    return None


def refuse(layer: Any, kernel_shape: tuple[int, ...]) -> None:
    """QuantizationNotSupported with ``refusal``'s reason, if there is one."""
    reason = refusal(layer, kernel_shape)
    if reason is not None:
        raise quantizers.QuantizationNotSupported(reason)


def check_config(layer: Any, config: Any) -> None:
    """``config`` refused unless it is Keras's default ``Int8QuantizationConfig`` (the
    arithmetic above): a QuantizationNotSupported, which a model's ``quantize`` raises
    rather than turning it into a warning and leaving the layer float."""
    try:
        quantizers.layer_config(layer, config)
    except NotImplementedError as e:
        raise quantizers.QuantizationNotSupported(str(e)) from None


def quantize_kernel(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 kernel, scale per filter [F]): Keras's abs-max over every axis but the
    last, in the kernel's float dtype."""
    values, scale = quantizers.abs_max_quantize(
        kernel, axis=tuple(range(kernel.ndim - 1)), to_numpy=True
    )
    return values, scale.reshape(-1)


def int8_convolution(image: Value, kernel: Value, kernel_scale: Value, convolve: Any) -> Value:
    """``convolve(image, kernel)`` with ``image`` [N, H, W, C] quantized per sample and
    the int8 ``kernel`` [KH, KW, C, F]: the exact int32 sums, in the image's dtype,
    divided by ``kernel_scale * inputs_scale``; the gradient that of the float
    convolution with ``kernel / kernel_scale``."""
    quantized, inputs_scale = quantizers.quantize_in_graph(image, SAMPLE_AXES)
    y = B.cast(convolve(quantized, kernel), image.dtype)
    y = B.div(y, B.mul(kernel_scale, inputs_scale))
    proxy = convolve(image, quantizers.dequantized(kernel, kernel_scale, image.dtype))
    return B.gradient_via(y, proxy)


class Int8Convolution:
    """A Conv2D's (or Conv1D's) int8 quantization: Keras's ``quantize`` entry point,
    which does nothing but Keras's checks and Keras's NotImplementedError unless
    ``convolutions=True``.

    A mixin rather than methods of Conv2D itself: ``kcompile.quantizers`` takes a class
    that defines ``quantize`` itself for one of the layers Keras quantizes (and refuses it
    under a mode kcompile does not compile for it, int4, rather than leave it float);
    Conv2D is not one, so plain ``quantize("int4")`` leaves it float as Keras does."""

    @property
    def int8_quantized(self) -> bool:
        """Whether the kernel is int8: under an int8 policy and quantized (a quantized
        policy set on the layer without ``convolutions=True`` is refused by ``quantize``
        after it is set, as in Keras, and leaves the float kernel, which the float call
        keeps using)."""
        return self.quantization_mode == "int8" and self._is_quantized

    def int8_convolve(self, ctx: TraceContext, image: Value, pads: tuple[int, ...]) -> Value:
        """The convolution of ``image`` [N, H, W, C] by the int8 kernel, before bias and
        activation."""
        kernel = ctx.weight(self.kernel)  # int8
        if kernel.rank == 3:  # (Conv1D's [K, C, F]: a window of height 1)
            kernel = B.reshape(kernel, (1, *kernel.shape))
        return int8_convolution(
            image,
            kernel,
            ctx.weight(self.kernel_scale),
            lambda a, k: self.convolve(a, k, pads),
        )

    def quantize(
        self,
        mode: Any = None,
        type_check: bool = True,
        config: Any = None,
        convolutions: bool = False,
    ) -> None:
        """Keras's checks, then Keras's NotImplementedError (a model's ``quantize`` warns
        and leaves the layer float) unless ``convolutions=True``, kcompile's opt-in: then
        an int8 kernel and a ``kernel_scale`` per filter, the policy
        ``int8_from_<policy>``."""
        mode = quantizers.resolve_mode(mode, config)
        quantizers.check_quantize_args(self, mode)
        if not convolutions or (type_check and not quantizable(self)):
            raise quantizers.not_implemented(self)
        if mode != "int8":
            raise quantizers.QuantizationNotSupported(
                f"{type(self).__name__} '{self.name}': convolutions=True quantizes "
                f"convolutions to int8 only, got mode={mode!r}"
            )
        old = self.kernel
        refuse(self, old.shape)
        check_config(self, config)  # (Keras's defaults only; not written in the config)
        values, scale = quantize_kernel(old.numpy())
        self._forget_variable(old)
        self.quantized_build(old.shape, mode)
        self.kernel.assign(values)
        self.kernel_scale.assign(scale)
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = quantizers.quantized_policy(self, mode)

    def quantized_build(self, kernel_shape: Any, mode: Any, config: Any = None) -> None:
        """An int8 kernel and a float scale per filter, both frozen (as a quantized
        Dense's)."""
        if mode != "int8":
            quantizers.refuse_mode(mode, f"{type(self).__name__} '{self.name}'")
            raise quantizers.not_implemented(self, "quantized_build")
        refuse(self, tuple(kernel_shape))
        self.kernel = self.add_weight(
            tuple(kernel_shape), "zeros", dtype="int8", trainable=False, name="kernel"
        )
        self.kernel_scale = self.add_weight(
            (self.filters,), "ones", trainable=False, name="kernel_scale"
        )
        self._is_quantized = True

    def _keras_saved_order(self):
        # A quantized layer's variables saved as a quantized Dense's are (kernel, bias,
        # kernel_scale), whichever order quantize or build made them in.
        if not self.int8_quantized:
            return None
        return [v for v in (self.kernel, self.bias, self.kernel_scale) if v is not None]
