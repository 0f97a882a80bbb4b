"""``keras.ops.stft``'s transform (centred frames, reflected at the ends, windowed, the
non-negative frequencies) with its large tables made in the graph from small ones.

``ops.stft`` holds the frame indices (frames × fft_length) and the windowed DFT matrices
(2 × fft_length × (fft_length // 2 + 1)) as constants: at MelSpectrogram's default
fft_length of 2048 that is over four million numbers, which take tens of seconds to put
into a graph and to compile. Here every table is computed by the step from vectors of
fft_length or fewer entries: an index ``j·k mod n`` into one period of the cosine and
sine, times the window; a frame's sample ``t·stride + j``, reflected. The values are the
same float32 cosines and sines, read from a table instead of rounded from a product.
"""

from __future__ import annotations

import numpy as np

from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import DType, Graph, Value
from kcompile.ir import build as B
from kcompile.ops import numpy as N
from kcompile.ops.fft import _window


def _ints(graph: Graph, values: np.ndarray, shape: tuple) -> Value:
    return B.const_array(graph, np.asarray(values, np.int64).tolist(), DType.i32, shape)


def _mod(a: Value, n: int) -> Value:
    """a mod n of non-negative int32 ``a`` (int32 division truncates)."""
    return a - B.div(a, B.const(a.graph, n, DType.i32)) * B.const(a.graph, n, DType.i32)


def _frame_indices(graph: Graph, size: int, frames: int, stride: int, length: int, shift: int):
    """[frames, length] indices into ``size`` samples: frame t's sample j is
    ``t·stride + j - shift``, reflected at the ends as numpy's ``pad(mode="reflect")``."""
    starts = _ints(graph, np.arange(frames) * stride, (frames, 1))
    offsets = _ints(graph, np.arange(length) - shift, (1, length))
    position = B.abs(starts + offsets)
    period = 2 * (size - 1) if size > 1 else 1
    folded = _mod(position, period)
    mirrored = B.const(graph, period, DType.i32) - folded
    return B.select(B.ge(folded, B.const(graph, size, DType.i32)), mirrored, folded)


def _dft(graph: Graph, n: int, window: np.ndarray) -> tuple[Value, Value]:
    """The windowed real-input DFT matrices [n, n // 2 + 1]: cos(2πjk/n)·w[j] and
    -sin(2πjk/n)·w[j], from an index ``j·k mod n`` into one period of each."""
    bins = n // 2 + 1
    phase = _mod(_ints(graph, np.arange(n), (n, 1)) * _ints(graph, np.arange(bins), (1, bins)), n)
    angles = 2.0 * np.pi * np.arange(n) / n
    weight = B.const_array(graph, np.asarray(window, np.float32).tolist(), DType.f32, (n, 1))

    def table(values: np.ndarray) -> Value:
        period = B.const_array(graph, values.astype(np.float32).tolist(), DType.f32, (n,))
        return B.take(period, phase) * weight

    return table(np.cos(angles)), table(-np.sin(angles))


def stft(signal, sequence_length: int, sequence_stride: int, fft_length: int, window):
    """``keras.ops.stft(signal, ..., center=True)``: ``(real, imag)`` of shape
    ``(..., frames, fft_length // 2 + 1)`` for a traced float32 ``signal`` of
    ``(..., samples)``."""
    if fft_length < sequence_length:
        raise ValueError(
            "`fft_length` must equal or larger than `sequence_length`. Received: "
            f"sequence_length={sequence_length}, fft_length={fft_length}"
        )
    size = signal.shape[-1]
    if size is None:
        raise ValueError("MelSpectrogram: the number of samples must be known (static)")
    half = fft_length // 2
    frames = (size + 2 * half - fft_length) // sequence_stride + 1
    if frames < 1:
        raise ValueError(f"MelSpectrogram: {size} samples make no frame of fft_length={fft_length}")
    graph = signal.value.graph
    indices = _frame_indices(graph, size, frames, sequence_stride, fft_length, half)
    gathered = N.take(signal, TracedTensor(indices), axis=-1)  # [..., frames, fft_length]
    win = _window(window, sequence_length, fft_length, "stft")
    cos, sin = (TracedTensor(m) for m in _dft(graph, fft_length, win))
    return N.matmul(gathered, cos), N.matmul(gathered, sin)
