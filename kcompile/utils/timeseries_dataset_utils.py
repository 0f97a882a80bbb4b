"""``keras.utils.timeseries_dataset_from_array``: sliding windows over an array, as
Keras's ``keras/src/utils/timeseries_dataset_utils.py`` makes them (the windows' start
positions, the targets read at each window's start, the seeded shuffle of the start
positions), returned as a kcompile ``Dataset`` of numpy batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.utils.dataset_utils import Dataset, elements


def _check(data, start_index, end_index, sampling_rate, sequence_stride) -> None:
    n = len(data)
    if start_index:
        if start_index < 0:
            raise ValueError(
                f"`start_index` must be 0 or greater. Received: start_index={start_index}"
            )
        if start_index >= n:
            raise ValueError(
                "`start_index` must be lower than the length of the data. Received: "
                f"start_index={start_index}, for data of length {n}"
            )
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(
                "`end_index` must be higher than `start_index`. Received: "
                f"start_index={start_index}, and end_index={end_index} "
            )
        if end_index >= n:
            raise ValueError(
                "`end_index` must be lower than the length of the data. Received: "
                f"end_index={end_index}, for data of length {n}"
            )
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    for name, value in (("sampling_rate", sampling_rate), ("sequence_stride", sequence_stride)):
        if value <= 0:
            raise ValueError(f"`{name}` must be higher than 0. Received: {name}={value}")
        if value >= n:
            raise ValueError(
                f"`{name}` must be lower than the length of the data. Received: "
                f"{name}={value}, for data of length {n}"
            )


def timeseries_dataset_from_array(
    data: Any,
    targets: Any,
    sequence_length: int,
    sequence_stride: int = 1,
    sampling_rate: int = 1,
    batch_size: int | None = 128,
    shuffle: bool = False,
    seed: int | None = None,
    start_index: int | None = None,
    end_index: int | None = None,
    format: str = "tf",
) -> Dataset:
    """Windows ``data[p : p + sequence_length * sampling_rate : sampling_rate]`` for
    start positions p = 0, ``sequence_stride``, ... within ``[start_index, end_index)``,
    each with ``targets[p]`` (both counted from ``start_index``), in batches of
    ``batch_size`` (single windows when None). With ``shuffle`` the start positions are
    permuted by ``np.random.RandomState(seed)``, as Keras's. ``format`` ("tf" or
    "grain") is accepted; the result is kcompile's Dataset either way."""
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    _check(data, start_index, end_index, sampling_rate, sequence_stride)
    start = start_index or 0
    end = len(data) if end_index is None else end_index
    num_seqs = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    positions = np.arange(0, max(num_seqs, 0), sequence_stride)
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(positions)
    window = np.arange(sequence_length) * sampling_rate
    series = np.asarray(data)[start:end]
    labels = None if targets is None else np.asarray(targets)[start:end]

    def element(i: int) -> Any:
        p = positions[i]
        if labels is None:
            return series[p + window]
        return series[p + window], labels[p]

    return elements(len(positions), element, batch_size)


__all__ = ["timeseries_dataset_from_array"]
