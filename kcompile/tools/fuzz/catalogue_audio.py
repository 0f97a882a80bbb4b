"""The fuzzer's entries for the audio layers: ``STFTSpectrogram`` on sequences
([time, channels], or [channels, time] with ``channels_first``) and ``MelSpectrogram``
on vectors ([samples]).

The decibel scale's floor (``min_power``) is drawn well above float32's rounding of a
spectrum near 1: a bin that is zero in the float64 oracle and rounding noise natively
would otherwise differ by tens of decibels, a difference of precision, not of code.
For the same reason ``STFTSpectrogram``'s ``"angle"`` mode is not drawn (below).
"""

from __future__ import annotations

import math
import random

from kcompile.tools.fuzz.kind import Invalid, LayerKind, Shape, pick, window_out

# Not "angle": the phase of a bin near zero (a constant frame's, say) is decided by
# rounding noise, so its gradient in float32 and in the float64 oracle differ by design.
_MODES = ("log", "magnitude", "psd", "real", "imag", "stft")


def _stft(rng: random.Random, shape: Shape) -> dict:
    window = pick(rng, ("hann", "hamming", None))
    periodic = rng.random() < 0.5
    # A symmetric Hann window of 2 samples is all zeros: its density scale divides by 0.
    frame_length = rng.randint(3 if window == "hann" and not periodic else 2, 8)
    args = {
        "mode": pick(rng, _MODES),
        "frame_length": frame_length,
        "window": window,
        "periodic": periodic,
        "scaling": pick(rng, ("density", "spectrum", None)),
        "padding": pick(rng, ("valid", "same")),
        "expand_dims": rng.random() < 0.3,
    }
    if rng.random() < 0.6:
        args["frame_step"] = rng.randint(1, frame_length)
    if rng.random() < 0.4:
        args["fft_length"] = 2 ** math.ceil(math.log2(frame_length)) * pick(rng, (1, 2))
    if rng.random() < 0.2:
        args["data_format"] = "channels_first"
    return args


def _stft_shape(args: dict, s: Shape) -> Shape:
    channels_first = args.get("data_format") == "channels_first"
    channels, time = (s[0], s[1]) if channels_first else (s[1], s[0])
    length = args["frame_length"]
    step = args.get("frame_step") or length // 2
    frames = window_out(time, length, step, args["padding"])
    bins = ((args.get("fft_length") or 2 ** math.ceil(math.log2(length))) // 2 + 1) * (
        2 if args["mode"] == "stft" else 1
    )
    if args["expand_dims"]:
        return (channels, frames, bins) if channels_first else (frames, bins, channels)
    return (channels * bins, frames) if channels_first else (frames, channels * bins)


def _mel(rng: random.Random, shape: Shape) -> dict:
    fft_length = pick(rng, (4, 8, 16))
    args = {
        "fft_length": fft_length,
        "sequence_stride": rng.randint(1, 4),
        "window": pick(rng, ("hann", "hamming", None)),
        "sampling_rate": pick(rng, (8000, 16000)),
        "num_mel_bins": rng.randint(2, 8),
        "power_to_db": rng.random() < 0.6,
        "mag_exp": pick(rng, (1.0, 2.0)),
        "min_power": pick(rng, (1e-3, 1e-2)),
        "top_db": pick(rng, (20.0, 40.0)),
        "ref_power": pick(rng, (1.0, 2.0)),
    }
    if rng.random() < 0.3:
        args["sequence_length"] = rng.randint(2, fft_length)
    return args


def _mel_shape(args: dict, s: Shape) -> Shape:
    fft_length = args["fft_length"]
    padded = s[0] + 2 * (fft_length // 2)
    if padded < fft_length:
        raise Invalid(f"{s[0]} samples make no frame of {fft_length}")
    return (args["num_mel_bins"], (padded - fft_length) // args["sequence_stride"] + 1)


KINDS: tuple[LayerKind, ...] = (
    LayerKind("STFTSpectrogram", (2,), _stft, _stft_shape, 0.5),
    LayerKind("MelSpectrogram", (1,), _mel, _mel_shape, 0.4),
)
