"""Keras's Fourier transforms (``keras.ops.fft``, ``fft2``, ``ifft2``, ``rfft``,
``irfft``, ``stft``, ``istft``) as compositions of matrix products with constant
cosine and sine matrices.

kcompile has no complex dtype, and Keras's API needs none: a complex tensor is passed
and returned as a ``(real, imag)`` pair of float32 tensors. A transform of length n is a
product with an n×n (or n×(n//2+1)) constant, so it runs on concrete arrays, traces into
a compiled step and differentiates like any matrix product; it costs O(n²) per
transform rather than an FFT's O(n log n), which suits the short lengths of models
(frames of a few hundred samples). Framing (``stft``) is one gather with constant
indices, reflection padding included, and overlap-add (``istft``) a few pads.
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.ops import composite as C
from kcompile.ops import numpy as N


def _pair(x, name: str):
    if not isinstance(x, tuple | list) or len(x) != 2:
        raise ValueError(
            f"keras.ops.{name}: input `x` should be a tuple of two tensors - real and "
            f"imaginary. Received: x={x!r}"
        )
    real, imag = x
    if _dims(real) != _dims(imag):
        raise ValueError(
            f"keras.ops.{name}: both the real and imaginary parts should have the same "
            f"shape. Received: x[0].shape = {_dims(real)}, x[1].shape = {_dims(imag)}"
        )
    return N.cast(real, "float32"), N.cast(imag, "float32")


def _dims(x) -> tuple:
    """The static shape (None for the batch of a traced tensor)."""
    return tuple(getattr(x, "shape", None) or np.shape(x))


def _static(x, axis: int, name: str) -> int:
    size = _dims(x)[axis]
    if size is None:
        raise ValueError(f"keras.ops.{name}: the transformed axis must have a static size")
    return int(size)


def _angles(rows: int, cols: int, n: int) -> np.ndarray:
    """2π·(j·k mod n)/n for j < rows, k < cols, in float64 (exact before the cosine)."""
    j = np.arange(rows)[:, None]
    k = np.arange(cols)[None, :]
    return 2.0 * np.pi * ((j * k) % n) / n


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _last_axis(real, imag, inverse: bool):
    """The complex DFT of (real, imag) along the last axis (inverse: scaled by 1/n)."""
    n = _static(real, -1, "ifft2" if inverse else "fft")
    theta = _angles(n, n, n)
    cos, sin = _f32(np.cos(theta) / (n if inverse else 1)), np.sin(theta) / (n if inverse else 1)
    sin = _f32(sin if inverse else -sin)  # e^{∓iθ}: (a + ib)(c + is)
    out_real = N.subtract(N.matmul(real, cos), N.matmul(imag, sin))
    out_imag = N.add(N.matmul(real, sin), N.matmul(imag, cos))
    return out_real, out_imag


def _two_axes(x, inverse: bool, name: str):
    real, imag = _pair(x, name)
    if len(_dims(real)) < 2:
        raise ValueError(f"keras.ops.{name}: input must have rank >= 2, got {_dims(real)}")
    real, imag = _last_axis(real, imag, inverse)
    real, imag = C.swapaxes(real, -1, -2), C.swapaxes(imag, -1, -2)
    real, imag = _last_axis(real, imag, inverse)
    return C.swapaxes(real, -1, -2), C.swapaxes(imag, -1, -2)


def fft(x):
    """The discrete Fourier transform along the last axis of ``x = (real, imag)``;
    returns ``(real, imag)``."""
    return _last_axis(*_pair(x, "fft"), inverse=False)


def fft2(x):
    """The 2-D discrete Fourier transform over the last two axes of ``(real, imag)``."""
    return _two_axes(x, False, "fft2")


def ifft2(x):
    """The inverse 2-D discrete Fourier transform (scaled by 1/(m·n), as numpy's)."""
    return _two_axes(x, True, "ifft2")


def _fit_length(x, length: int, have: int):
    """``x`` cut or zero-padded along its last axis to ``length``."""
    if length < have:
        return x[..., :length]
    if length > have:
        rank = len(_dims(x))
        return N.pad(x, [(0, 0)] * (rank - 1) + [(0, length - have)])
    return x


def _rfft_matrices(n: int, window: np.ndarray | None = None):
    theta = _angles(n, n // 2 + 1, n)
    weight = np.ones((n, 1)) if window is None else np.asarray(window, np.float64)[:, None]
    return _f32(np.cos(theta) * weight), _f32(-np.sin(theta) * weight)


def rfft(x, fft_length=None):
    """The real-input DFT along the last axis: ``(real, imag)`` of the ``n // 2 + 1``
    non-negative frequencies, ``x`` cut or zero-padded to ``fft_length`` first."""
    x = N.cast(x, "float32")
    have = _static(x, -1, "rfft")
    n = have if fft_length is None else int(fft_length)
    x = _fit_length(x, n, have)
    cos, sin = _rfft_matrices(n)
    return N.matmul(x, cos), N.matmul(x, sin)


def _irfft_matrices(n: int, bins: int):
    """Rows for the ``bins`` given frequencies of a length-n real signal: numpy's
    Hermitian inverse (the DC term and an even n's Nyquist term once, the others twice,
    their imaginary parts of DC and Nyquist ignored)."""
    used = min(bins, n // 2 + 1)
    weight = np.full((used, 1), 2.0)
    weight[0] = 1.0
    if n % 2 == 0 and used == n // 2 + 1:
        weight[-1] = 1.0
    theta = _angles(used, n, n)
    cos, sin = np.cos(theta) * weight / n, -np.sin(theta) * weight / n
    if used < bins:  # frequencies past n // 2 are not read
        pad = np.zeros((bins - used, n))
        cos, sin = np.vstack([cos, pad]), np.vstack([sin, pad])
    return _f32(cos), _f32(sin)


def irfft(x, fft_length=None):
    """The inverse of ``rfft``: a real signal of length ``fft_length`` (default
    ``2 * (bins - 1)``) from the ``(real, imag)`` non-negative frequencies."""
    real, imag = _pair(x, "irfft")
    bins = _static(real, -1, "irfft")
    n = 2 * (bins - 1) if fft_length is None else int(fft_length)
    cos, sin = _irfft_matrices(n, bins)
    return N.add(N.matmul(real, cos), N.matmul(imag, sin))


def _window(window, sequence_length: int, fft_length: int, name: str) -> np.ndarray:
    """The window of ``sequence_length`` samples centred in ``fft_length`` (Keras's;
    the named windows are scipy's periodic ``get_window`` ones)."""
    if window is None:
        return np.ones(fft_length)
    if isinstance(window, str):
        if window not in ("hann", "hamming"):
            raise ValueError(
                'If a string is passed to `window`, it must be one of `"hann"`, '
                f'`"hamming"`. Received: window={window}'
            )
        phase = np.cos(2.0 * np.pi * np.arange(sequence_length) / sequence_length)
        win = 0.5 - 0.5 * phase if window == "hann" else 0.54 - 0.46 * phase
    else:
        win = np.asarray(window, np.float64)
        if win.shape != (sequence_length,):
            raise ValueError(
                f"keras.ops.{name}: the shape of `window` must be equal to [sequence_length]."
                f" Received: window shape={win.shape}"
            )
    left = (fft_length - sequence_length) // 2
    return np.pad(win, (left, fft_length - sequence_length - left))


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    period = 2 * (size - 1) if size > 1 else 1
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """Keras's short-time Fourier transform along the last axis: ``(real, imag)`` of
    shape ``(..., frames, fft_length // 2 + 1)`` (frames of ``fft_length`` samples every
    ``sequence_stride``, after reflection padding by ``fft_length // 2`` when
    ``center``)."""
    if fft_length < sequence_length:
        raise ValueError(
            "`fft_length` must equal or larger than `sequence_length`. Received: "
            f"sequence_length={sequence_length}, fft_length={fft_length}"
        )
    win = _window(window, sequence_length, fft_length, "stft")
    x = N.cast(x, "float32")
    size = _static(x, -1, "stft")
    half = fft_length // 2 if center else 0
    padded = size + 2 * half
    frames = (padded - fft_length) // sequence_stride + 1
    if frames < 1:
        raise ValueError(
            f"keras.ops.stft: the input has {size} samples, fewer than one frame of "
            f"fft_length={fft_length}"
        )
    positions = np.arange(frames)[:, None] * sequence_stride + np.arange(fft_length)[None, :]
    gathered = N.take(x, _reflect(positions - half, size).astype(np.int32), axis=-1)
    cos, sin = _rfft_matrices(fft_length, win)
    return N.matmul(gathered, cos), N.matmul(gathered, sin)


def _overlap_add(frames, stride: int, n: int):
    """Σ_t of frame t placed at t·stride, for ``frames`` of shape (..., F, n): the frames
    t ≡ j (mod r), r = ⌈n / stride⌉, do not overlap, so each such group is one reshape
    and one pad."""
    shape = _dims(frames)
    count, lead = shape[-2], tuple(-1 if d is None else d for d in shape[:-2])
    r = math.ceil(n / stride)
    frames = N.pad(frames, [(0, 0)] * len(lead) + [(0, 0), (0, r * stride - n)])
    total = (count - 1) * stride + n
    width = max(j * stride + len(range(j, count, r)) * r * stride for j in range(r))
    out = None
    for j in range(min(r, count)):
        picked = N.take(frames, np.arange(j, count, r, dtype=np.int32), axis=-2)
        length = len(range(j, count, r)) * r * stride
        group = N.reshape(picked, (*lead, length))
        pads = [(0, 0)] * len(lead) + [(j * stride, width - j * stride - length)]
        group = N.pad(group, pads)
        out = group if out is None else N.add(out, group)
    return out[..., :total]


def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann", center=True):
    """Keras's inverse of ``stft``: overlap-add of the windowed inverse transforms,
    divided by the overlap-added squared window (where above 1e-10), then trimmed
    (by ``fft_length // 2`` at each end when ``center``, or to ``length``)."""
    real, imag = _pair(x, "istft")
    shape = _dims(real)
    if len(shape) < 2:
        raise ValueError(f"Input `x` must have at least 2 dimensions. Received shape: {shape}")
    count = shape[-2]
    win = _window(window, sequence_length, fft_length, "istft")
    cos, sin = _irfft_matrices(fft_length, shape[-1])
    signal = N.add(N.matmul(real, cos * win), N.matmul(imag, sin * win))
    summed = _overlap_add(signal, sequence_stride, fft_length)
    total = (count - 1) * sequence_stride + fft_length
    norm = np.zeros(total)
    for t in range(count):
        norm[t * sequence_stride : t * sequence_stride + fft_length] += win * win
    scale = np.where(norm > 1e-10, norm, 1.0)
    if window is None:  # Keras divides by the stride instead of the window's sum
        scale = scale * sequence_stride / fft_length
    start = fft_length // 2 if center else 0
    if length is not None:
        end = start + int(length)
    elif center:
        end = total - fft_length // 2
    else:
        end = total
    end = min(end, total)
    return N.divide(summed, _f32(scale))[..., start:end]


__all__ = ["fft", "fft2", "ifft2", "irfft", "istft", "rfft", "stft"]
