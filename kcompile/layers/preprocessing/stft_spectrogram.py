"""Keras's ``STFTSpectrogram``: the short-time Fourier transform of each channel of a
signal as a strided convolution with two kernels (the real and imaginary parts of the
windowed DFT, Keras's ``STFT`` initializer), trainable like any convolution's, then the
mode's function of them (log magnitude, magnitude, power spectral density, the real or
imaginary part, the phase, or both parts).

Keras convolves each channel separately (the batch and channel axes merged); here a
signal [N, C, T] is an image [N, C, T, 1] convolved with a kernel of height 1, which
gives every channel its frames without merging the symbolic batch. The two kernels are
one convolution's filters (real then imaginary), so the frames are read once.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from kcompile import backend, initializers
from kcompile.layers.input_spec import InputSpec
from kcompile.layers.layer import Layer
from kcompile.ops import convolution as conv_ops
from kcompile.ops import numpy as N
from kcompile.ops import trigonometric

MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")


def _check_arguments(mode, frame_length, frame_step, fft_length, scaling, padding, window):
    """Keras's checks of the constructor's arguments, with its messages."""
    if frame_step is not None and (frame_step > frame_length or frame_step < 1):
        raise ValueError(
            "`frame_step` should be a positive integer not greater than `frame_length`. "
            f"Received frame_step={frame_step}, frame_length={frame_length}"
        )
    if fft_length is not None and fft_length < frame_length:
        raise ValueError(
            "`fft_length` should be not less than `frame_length`. "
            f"Received fft_length={fft_length}, frame_length={frame_length}"
        )
    if fft_length is not None and (fft_length & -fft_length) != fft_length:
        warnings.warn(
            f"`fft_length` is recommended to be a power of two. Received fft_length={fft_length}",
            stacklevel=3,
        )
    if mode not in MODES:
        raise ValueError(
            f"Output mode is invalid, it must be one of {', '.join(MODES)}. Received: mode={mode}"
        )
    if scaling is not None and scaling not in ("density", "spectrum"):
        raise ValueError(
            "Scaling is invalid, it must be `None`, 'density' or 'spectrum'. "
            f"Received scaling={scaling}"
        )
    if padding not in ("valid", "same"):
        raise ValueError(f"Padding is invalid, it should be 'valid', 'same'. Received: {padding}")
    if isinstance(window, str):
        initializers.STFT("real", window)(shape=(3, 1, 2))  # an unknown window fails here


def _psd_weights(bins: int) -> np.ndarray:
    """Keras's one-sided power spectral density, ``power + pad(power[1:-1])``: every
    bin but the first and the last counted twice."""
    weights = np.ones(bins, np.float32)
    weights[1 : bins - 1] = 2.0
    return weights


class STFTSpectrogram(Layer):
    """The spectrogram of each channel of a [batch, time, channels] signal
    (``channels_first``: [batch, channels, time]); see Keras's ``STFTSpectrogram``."""

    def __init__(
        self,
        mode: str = "log",
        frame_length: int = 256,
        frame_step: int | None = None,
        fft_length: int | None = None,
        window: Any = "hann",
        periodic: bool = False,
        scaling: str | None = "density",
        padding: str = "valid",
        expand_dims: bool = False,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        _check_arguments(mode, frame_length, frame_step, fft_length, scaling, padding, window)
        super().__init__(**kwargs)
        self.mode = mode
        self.frame_length = frame_length
        self.frame_step = frame_step
        self._frame_step = frame_step or frame_length // 2
        self.fft_length = fft_length
        self._fft_length = fft_length or 2 ** math.ceil(math.log2(frame_length))
        self.window = window
        self.periodic = periodic
        self.scaling = scaling
        self.padding = padding
        self.expand_dims = expand_dims
        self.data_format = _data_format(data_format)
        self.input_spec = InputSpec(ndim=3)

    @property
    def _bins(self) -> int:
        return self._fft_length // 2 + 1

    def build(self, input_shape):
        shape = (self.frame_length, 1, self._bins)
        for side in ("real", "imag"):
            if self.mode != ("imag" if side == "real" else "real"):
                kernel = self.add_weight(
                    shape=shape,
                    initializer=initializers.STFT(side, self.window, self.scaling, self.periodic),
                    name=f"{side}_kernel",
                )
                setattr(self, f"{side}_kernel", kernel)

    def _kernels(self) -> list:
        return [
            getattr(self, f"{s}_kernel") for s in ("real", "imag") if hasattr(self, f"{s}_kernel")
        ]

    def _transform(self, inputs) -> list:
        """The transforms [N, C, frames, bins] of each kernel (real first)."""
        signal = inputs if self.data_format == "channels_first" else N.transpose(inputs, (0, 2, 1))
        image = N.expand_dims(signal, -1)  # [N, C, T, 1]: each channel a row of the image
        kernels = self._kernels()
        kernel = kernels[0] if len(kernels) == 1 else N.concatenate(kernels, axis=-1)
        kernel = N.expand_dims(kernel, 0)  # [1, frame_length, 1, k·bins]
        out = conv_ops.conv(image, kernel, strides=(1, self._frame_step), padding=self.padding)
        if len(kernels) == 1:
            return [out]
        return [out[..., : self._bins], out[..., self._bins :]]

    def _arranged(self, outputs):
        """[N, C, frames, F] in Keras's output layout."""
        _, channels, frames, bins = outputs.shape
        if self.data_format == "channels_last":
            if self.expand_dims:
                return N.transpose(outputs, (0, 2, 3, 1))  # [N, frames, F, C]
            merged = N.transpose(outputs, (0, 2, 1, 3))  # [N, frames, C, F]
            return N.reshape(merged, (-1, frames, channels * bins))
        if self.expand_dims:
            return outputs  # [N, C, frames, F]
        return N.reshape(N.transpose(outputs, (0, 1, 3, 2)), (-1, channels * bins, frames))

    def call(self, inputs):
        dtype = str(inputs.dtype)
        if dtype not in ("float16", "bfloat16", "float32", "float64"):
            raise TypeError(
                "Invalid input type. Expected `float16`, `float32` or `float64`. "
                f"Received: input type={dtype}"
            )
        parts = self._transform(inputs)
        if self.mode in ("real", "imag"):
            return self._arranged(parts[0])
        real, imag = parts
        if self.mode == "angle":  # (in float32: ops.arctan2 takes no narrower floats)
            angle = trigonometric.arctan2(N.cast(imag, "float32"), N.cast(real, "float32"))
            return self._arranged(N.cast(angle, real.dtype))
        if self.mode == "stft":
            return self._arranged(N.concatenate([real, imag], axis=-1))
        power = N.add(N.square(real), N.square(imag))
        if self.mode == "psd":
            return self._arranged(N.multiply(power, _psd_weights(self._bins)))
        eps = backend.epsilon()
        magnitude = self._arranged(N.sqrt(N.maximum(power, eps)))
        if self.mode == "magnitude":
            return magnitude
        return N.log(N.maximum(magnitude, eps))

    def compute_output_shape(self, input_shape):
        """Keras's: the convolution's output shape, or with ``expand_dims`` the
        frequency bins and channels as two axes."""
        batch = input_shape[0]
        if self.data_format == "channels_last":
            time, channels = input_shape[1], input_shape[2]
        else:
            channels, time = input_shape[1], input_shape[2]
        bins = self._bins * (2 if self.mode == "stft" else 1)
        frames = _frames(time, self.frame_length, self._frame_step, self.padding)
        if self.expand_dims:
            if self.data_format == "channels_last":
                return (batch, frames, bins, channels)
            return (batch, channels, frames, bins)
        width = None if channels is None else bins * channels
        if self.data_format == "channels_last":
            return (batch, frames, width)
        return (batch, width, frames)

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_length": self.fft_length,
            "window": self.window,
            "periodic": self.periodic,
            "scaling": self.scaling,
            "padding": self.padding,
            "data_format": self.data_format,
            "expand_dims": self.expand_dims,
        }


def _data_format(data_format: str | None) -> str:
    """Keras's ``standardize_data_format``: None is the configured image data format."""
    value = (data_format or backend.image_data_format()).lower()
    if value not in ("channels_first", "channels_last"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return value


def _frames(time: int | None, frame_length: int, step: int, padding: str) -> int | None:
    """The number of frames of a convolution over ``time`` samples (None: unknown)."""
    if time is None:
        return None
    if padding == "same":
        return (time + step - 1) // step
    return (time - frame_length) // step + 1
