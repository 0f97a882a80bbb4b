"""Keras's ``MelSpectrogram``: the short-time Fourier transform of a signal (``[...,
samples]``, batched or not), its magnitude raised to ``mag_exp``, warped to the mel
scale by Keras's (HTK's) triangular filter bank, and in decibels when ``power_to_db``.

The transform is ``keras.ops.stft`` (a gather of the frames and a product with the
windowed DFT matrices, constants of the step), the filter bank a matrix computed in
float32 as Keras computes it, so the layer runs eagerly, in a compiled step and in the
reference interpreter alike. As in Keras, ``top_db`` clips below the largest decibel value of the
whole call (all the batch's signals together).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.layers.layer import Layer
from kcompile.ops import composite as C
from kcompile.ops import numpy as N
from kcompile.ops.fft import stft

_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def _hertz_to_mel(frequencies_hertz: Any) -> np.ndarray:
    """Hertz to the mel scale (HTK's ``1127·ln(1 + f/700)``), in float32."""
    f = np.asarray(frequencies_hertz, np.float32)
    return np.float32(_MEL_HIGH_FREQUENCY_Q) * np.log(
        np.float32(1.0) + f / np.float32(_MEL_BREAK_FREQUENCY_HERTZ)
    )


def linear_to_mel_weight_matrix(
    num_mel_bins: int = 20,
    num_spectrogram_bins: int = 129,
    sampling_rate: float = 8000,
    lower_edge_hertz: float = 125.0,
    upper_edge_hertz: float = 3800.0,
) -> np.ndarray:
    """Keras's (TensorFlow's) ``[num_spectrogram_bins, num_mel_bins]`` matrix of
    triangles, linear in mel, each peaking at 1; the DC bin's row is zero."""
    nyquist = np.float32(sampling_rate) / np.float32(2.0)
    linear = np.linspace(0.0, nyquist, num_spectrogram_bins, dtype=np.float32)[1:]
    bins_mel = _hertz_to_mel(linear)[:, None]
    edges = np.linspace(
        _hertz_to_mel(lower_edge_hertz),
        _hertz_to_mel(upper_edge_hertz),
        num_mel_bins + 2,
        dtype=np.float32,
    )
    lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(np.float32(0.0), np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32)


class MelSpectrogram(Layer):
    """The mel spectrogram ``[..., num_mel_bins, frames]`` of signals ``[..., samples]``;
    see Keras's ``MelSpectrogram``."""

    def __init__(
        self,
        fft_length: int = 2048,
        sequence_stride: int = 512,
        sequence_length: int | None = None,
        window: Any = "hann",
        sampling_rate: int = 16000,
        num_mel_bins: int = 128,
        min_freq: float = 20.0,
        max_freq: float | None = None,
        power_to_db: bool = True,
        top_db: float = 80.0,
        mag_exp: float = 2.0,
        min_power: float = 1e-10,
        ref_power: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.fft_length = fft_length
        self.sequence_stride = sequence_stride
        self.sequence_length = sequence_length or fft_length
        if self.fft_length < self.sequence_length:
            raise ValueError(
                "`fft_length` must be greater than or equal to  `sequence_length`. "
                f"Received: `sequence_length`={self.sequence_length}, "
                f"`fft_length`={self.fft_length}."
            )
        self.window = window
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq or int(sampling_rate / 2)
        self.power_to_db = power_to_db
        self.top_db = top_db
        self.mag_exp = mag_exp
        self.min_power = min_power
        self.ref_power = ref_power
        super().__init__(**kwargs)

    def call(self, inputs):
        signal = N.cast(inputs, "float32")
        outputs = self._melscale(self._spectrogram(signal))
        if self.power_to_db:
            outputs = self._dbscale(outputs)
        outputs = C.swapaxes(outputs, -1, -2)  # (..., num_mel_bins, frames)
        return N.cast(outputs, self.compute_dtype)

    def _spectrogram(self, signal):
        real, imag = stft(
            signal,
            sequence_length=self.sequence_length,
            sequence_stride=self.sequence_stride,
            fft_length=self.fft_length,
            window=self.window,
        )
        magnitude = N.sqrt(N.add(N.square(real), N.square(imag)))
        if self.mag_exp == 1:
            return magnitude
        if self.mag_exp == 2:  # (what XLA makes of Keras's power(x, 2.0))
            return N.square(magnitude)
        return N.power(magnitude, float(self.mag_exp))

    def _melscale(self, spectrogram):
        matrix = self.linear_to_mel_weight_matrix(
            num_mel_bins=self.num_mel_bins,
            num_spectrogram_bins=self.fft_length // 2 + 1,
            sampling_rate=self.sampling_rate,
            lower_edge_hertz=self.min_freq,
            upper_edge_hertz=self.max_freq,
        )
        return N.tensordot(spectrogram, matrix, axes=1)

    def _dbscale(self, power):
        floor = np.float32(self.min_power)
        log_spec = N.multiply(C.log10(N.maximum(power, floor)), 10.0)
        ref = np.maximum(np.abs(np.float32(self.ref_power)), floor)
        log_spec = N.subtract(log_spec, float(np.float32(10.0) * np.log10(ref)))
        if self.top_db is None:  # (Keras fails on None; no clipping is what it would mean)
            return log_spec
        return N.maximum(log_spec, N.subtract(N.max(log_spec), float(self.top_db)))

    def _hertz_to_mel(self, frequencies_hertz: Any) -> np.ndarray:
        return _hertz_to_mel(frequencies_hertz)

    def linear_to_mel_weight_matrix(
        self,
        num_mel_bins: int = 20,
        num_spectrogram_bins: int = 129,
        sampling_rate: float = 8000,
        lower_edge_hertz: float = 125.0,
        upper_edge_hertz: float = 3800.0,
        dtype: str = "float32",
    ) -> np.ndarray:
        """Keras's: the ``[num_spectrogram_bins, num_mel_bins]`` mel filter bank."""
        matrix = linear_to_mel_weight_matrix(
            num_mel_bins, num_spectrogram_bins, sampling_rate, lower_edge_hertz, upper_edge_hertz
        )
        return matrix.astype(dtype)

    def compute_output_shape(self, input_shape):
        """Keras's formula, ``(samples + stride + 1) // stride`` frames (one more than
        the transform gives when ``samples + 1`` is a multiple of the stride)."""
        *lead, samples = input_shape
        frames = (
            None
            if samples is None
            else (samples + self.sequence_stride + 1) // self.sequence_stride
        )
        return [*lead, self.num_mel_bins, frames]

    def get_config(self):
        return {
            **super().get_config(),
            "fft_length": self.fft_length,
            "sequence_stride": self.sequence_stride,
            "sequence_length": self.sequence_length,
            "window": self.window,
            "sampling_rate": self.sampling_rate,
            "num_mel_bins": self.num_mel_bins,
            "min_freq": self.min_freq,
            "max_freq": self.max_freq,
            "power_to_db": self.power_to_db,
            "top_db": self.top_db,
            "mag_exp": self.mag_exp,
            "min_power": self.min_power,
            "ref_power": self.ref_power,
        }
