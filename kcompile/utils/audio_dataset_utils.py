"""``keras.utils.audio_dataset_from_directory`` (Keras's
``keras/src/utils/audio_dataset_utils.py``): the ``.wav`` files of class subfolders as
float32 (batch, samples, channels) batches, in a kcompile ``Dataset``.

Keras decodes with ``tf.audio.decode_wav``: 16-bit PCM scaled by 1/32768, cut or
zero-padded to ``output_sequence_length``, and a batch of unequal lengths zero-padded
to its longest (``padded_batch``). Here the standard library's ``wave`` module reads the
same 16-bit PCM files; other sample widths, resampling (``sampling_rate``, which Keras
does with tensorflow-io) and ragged batches (kcompile has no ragged tensors) are
refused.
"""

from __future__ import annotations

import wave
from typing import Any

import numpy as np

from kcompile.utils import dataset_utils

ALLOWED_FORMATS = (".wav",)


def read_wav(path: str, output_sequence_length: int | None = None) -> np.ndarray:
    """A 16-bit PCM WAV file as float32 [samples, channels] in [-1, 1)."""
    with wave.open(path, "rb") as f:
        width, channels, count = f.getsampwidth(), f.getnchannels(), f.getnframes()
        if width != 2 or f.getcomptype() != "NONE":
            raise NotImplementedError(
                f"{path}: a WAV file of {8 * width}-bit samples ({f.getcomptype()}); kcompile "
                "reads 16-bit PCM, as tf.audio.decode_wav does"
            )
        frames = f.readframes(count)
    audio = np.frombuffer(frames, "<i2").reshape(-1, channels).astype(np.float32) / 32768.0
    if output_sequence_length is not None:
        audio = _fit(audio, output_sequence_length)
    return audio


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    if len(audio) >= length:
        return audio[:length]
    return np.pad(audio, ((0, length - len(audio)), (0, 0)))


def _padded_stack(rows: list) -> Any:
    """tf.data's ``padded_batch``: each sample zero-padded to the batch's longest."""
    if isinstance(rows[0], tuple):
        audio = _padded_stack([r[0] for r in rows])
        return (audio, *dataset_utils.stack([r[1:] for r in rows]))
    longest = max(len(r) for r in rows)
    return np.stack([_fit(r, longest) for r in rows])


def audio_dataset_from_directory(
    directory: str,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: list[str] | None = None,
    batch_size: int | None = 32,
    sampling_rate: int | None = None,
    output_sequence_length: int | None = None,
    ragged: bool = False,
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    follow_links: bool = False,
    verbose: bool = True,
):
    """Audio from ``directory`` (one subfolder per class with ``labels="inferred"``),
    with labels as ``image_dataset_from_directory`` gives them."""
    if ragged and output_sequence_length is not None:
        raise ValueError("Cannot set both `ragged` and `output_sequence_length`")
    if sampling_rate is not None:
        if not isinstance(sampling_rate, int):
            raise ValueError(
                f"`sampling_rate` should have an integer value. Received: "
                f"sampling_rate={sampling_rate}"
            )
        if sampling_rate <= 0:
            raise ValueError(
                f"`sampling_rate` should be higher than 0. Received: sampling_rate={sampling_rate}"
            )
        raise NotImplementedError(
            "keras.utils.audio_dataset_from_directory: sampling_rate (resampling, which Keras "
            "does with tensorflow-io) is not supported by kcompile; resample the files first"
        )
    if ragged:
        raise NotImplementedError(
            "keras.utils.audio_dataset_from_directory: ragged=True is not supported (kcompile "
            "has no ragged tensors); give output_sequence_length or let batches be padded"
        )
    stacker = _padded_stack if output_sequence_length is None else None
    return dataset_utils.from_directory(
        directory, labels=labels, label_mode=label_mode, class_names=class_names,
        formats=ALLOWED_FORMATS, what="audio", batch_size=batch_size,
        load=lambda p: read_wav(p, output_sequence_length), shuffle=shuffle, seed=seed,
        validation_split=validation_split, subset=subset, follow_links=follow_links,
        verbose=verbose, stacker=stacker,
    )  # fmt: skip


__all__ = ["audio_dataset_from_directory"]
