"""Data that arrives in batches: ``keras.utils.PyDataset`` (indexed batches) and Python
generators or iterators yielding ``x``, ``(x, y)`` or ``(x, y, sample_weight)`` (``x``
an array, a list, or a dict of named inputs). Each batch is one step, called as the
on-batch methods call it; a PyDataset's batch order is shuffled per epoch when
``shuffle`` is set, and its ``on_epoch_end`` runs after each epoch."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from kcompile.backend import session as backend


class PyDataset:
    """Keras's ``keras.utils.PyDataset``: subclasses define ``__len__`` (batches per
    epoch) and ``__getitem__(index)`` (one batch); ``on_epoch_end`` is optional. The
    ``workers``/``use_multiprocessing``/``max_queue_size`` arguments are accepted; kcompile
    reads batches in the calling thread."""

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        self.workers, self.use_multiprocessing = workers, use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    @property
    def num_batches(self) -> int | None:
        return len(self)

    def on_epoch_begin(self) -> None:
        pass

    def on_epoch_end(self) -> None:
        pass


def is_batch_source(data: Any) -> bool:
    """A PyDataset, a generator or an iterator (not arrays, lists or dicts of arrays)."""
    if isinstance(data, PyDataset):
        return True
    return isinstance(data, Iterator)


class BatchSource:
    def __init__(self, data: Any, steps_per_epoch: int | None, shuffle: bool, what: str):
        self.data, self.shuffle, self.what = data, shuffle, what
        self.indexed = isinstance(data, PyDataset)
        if self.indexed:
            count = len(data)
            self.steps = count if steps_per_epoch is None else min(count, int(steps_per_epoch))
        else:
            self.steps = None if steps_per_epoch is None else int(steps_per_epoch)
        self._pending: list = []
        self.exhausted = False

    def peek(self):
        """The first batch (kept for the first epoch): it builds an unbuilt model."""
        if self.indexed:
            return self.data[0]
        if not self._pending:
            try:
                self._pending.append(next(self.data))
            except StopIteration:
                raise ValueError(f"{self.what}: the generator yields no batches") from None
        return self._pending[0]

    def epoch(self):
        """The batches of one epoch."""
        if self.indexed:
            order = list(range(len(self.data)))[: self.steps]
            if self.shuffle:
                random.Random(backend.draw_seed()).shuffle(order)
            self.data.on_epoch_begin()
            for index in order:
                yield self.data[index]
            return
        count = 0
        while self.steps is None or count < self.steps:
            if self._pending:
                batch = self._pending.pop(0)
            else:
                try:
                    batch = next(self.data)
                except StopIteration:
                    if count and self.steps is None:
                        self.steps = count  # the first epoch read it all: later ones want as many
                        return
                    self.exhausted = True
                    warnings.warn(
                        f"{self.what}: your input ran out of data; interrupting training",
                        stacklevel=3,
                    )
                    return
            count += 1
            yield batch

    def epoch_finished(self) -> None:
        if self.indexed:
            self.data.on_epoch_end()


def unpack(batch: Any, what: str) -> tuple[Any, Any, Any]:
    """(x, y or None, sample_weight or None) of one batch."""
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        x, y, w = (*batch, None, None)[:3]
        return x, y, w
    if isinstance(batch, list | np.ndarray | dict):
        return batch, None, None
    raise ValueError(
        f"{what}: a batch must be x, (x, y) or (x, y, sample_weight), got {type(batch).__name__}"
    )
