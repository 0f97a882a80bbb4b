"""What the ``keras.utils.*_dataset_from_*`` functions share (Keras's
``keras/src/utils/dataset_utils.py``): listing a folder's files with their labels,
Keras's validation split, label encodings, and ``Dataset``, the batches they return.

Keras returns a ``tf.data.Dataset``; kcompile has no TensorFlow, so ``Dataset`` is a
``keras.utils.PyDataset`` (what ``fit``, ``evaluate`` and ``predict`` take) of numpy
batches read on demand, with the ``tf.data`` methods Keras's examples call on these
datasets: iteration, ``len``, ``take``, ``skip``, ``map``, ``batch``, ``unbatch``,
``cache``, ``prefetch``, ``as_numpy_iterator``, ``cardinality``, and the
``class_names`` and ``file_paths`` attributes.

Order: Keras shuffles the file list (or the windows' start positions) with
``np.random.RandomState(seed)``, which is done here exactly, so ``file_paths``, the
validation split and each batch's contents are Keras's; Keras then also passes the
elements through a ``tf.data`` shuffle buffer, whose order is TensorFlow's own random
stream. kcompile does not imitate that stream: ``fit`` shuffles the order of the
batches each epoch instead (``shuffle=True``, as for any PyDataset).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from kcompile.trainers.batches import PyDataset


class Dataset(PyDataset):
    """Items (batches, or single elements when ``batch_size=None``) ``item(0)`` ..
    ``item(count - 1)``, each a numpy array or a tuple of them, read when asked for."""

    def __init__(self, count: int, item: Callable[[int], Any]) -> None:
        super().__init__()
        self._count = int(count)
        self._item = item
        self.class_names: list[str] | None = None
        self.file_paths: list[str] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> Any:
        if not -self._count <= index < self._count:
            raise IndexError(f"Dataset index {index} out of range ({self._count} items)")
        return self._item(index % self._count)

    def __iter__(self) -> Iterator[Any]:
        for i in range(self._count):
            yield self._item(i)

    def _derived(self, count: int, item: Callable[[int], Any]) -> Dataset:
        out = Dataset(count, item)
        out.class_names, out.file_paths = self.class_names, self.file_paths
        return out

    def take(self, count: int) -> Dataset:
        """The first ``count`` items (all of them when ``count`` is -1)."""
        count = self._count if count == -1 else min(int(count), self._count)
        return self._derived(count, self._item)

    def skip(self, count: int) -> Dataset:
        """The items after the first ``count``."""
        count = max(0, min(int(count), self._count))
        return self._derived(self._count - count, lambda i: self._item(i + count))

    def map(self, function: Callable, num_parallel_calls: Any = None, **kwargs: Any) -> Dataset:
        """``function`` applied to each item (its parts as arguments, as tf.data's),
        when the item is read."""

        def mapped(i: int) -> Any:
            item = self._item(i)
            return function(*item) if isinstance(item, tuple) else function(item)

        return self._derived(self._count, mapped)

    def batch(self, batch_size: int, drop_remainder: bool = False, **kwargs: Any) -> Dataset:
        """Consecutive items stacked into batches of ``batch_size``."""
        size = int(batch_size)
        count = self._count // size if drop_remainder else math.ceil(self._count / size)

        def stacked(b: int) -> Any:
            rows = [self._item(i) for i in range(b * size, min((b + 1) * size, self._count))]
            return stack(rows)

        return self._derived(count, stacked)

    def unbatch(self) -> Dataset:
        """The rows of every batch, one item each (reads every batch once)."""
        rows = [row for batch in self for row in unstack(batch)]
        return self._derived(len(rows), rows.__getitem__)

    def cache(self, filename: str = "") -> Dataset:
        """Each item kept in memory once read (a ``filename`` is not written)."""
        kept: dict[int, Any] = {}

        def cached(i: int) -> Any:
            if i not in kept:
                kept[i] = self._item(i)
            return kept[i]

        return self._derived(self._count, cached)

    def prefetch(self, buffer_size: Any = None) -> Dataset:
        """The same dataset: items are read when the step asks for them."""
        return self

    def as_numpy_iterator(self) -> Iterator[Any]:
        return iter(self)

    def cardinality(self) -> np.ndarray:
        return np.int64(self._count)

    def __repr__(self) -> str:
        return f"<Dataset of {self._count} items>"


def stack(rows: list) -> Any:
    """Elements (arrays, or tuples or dicts of them: tf.data's structures; a list is an
    array, as tf.data converts it) stacked along a new first axis."""
    if isinstance(rows[0], dict):
        return {key: stack([r[key] for r in rows]) for key in rows[0]}
    if isinstance(rows[0], tuple):
        return tuple(stack([r[k] for r in rows]) for k in range(len(rows[0])))
    return np.stack([np.asarray(r) for r in rows])


def unstack(batch: Any) -> list:
    if isinstance(batch, dict):
        keys = list(batch)
        return [dict(zip(keys, row)) for row in zip(*(unstack(batch[k]) for k in keys))]
    if isinstance(batch, tuple):
        return list(zip(*(unstack(part) for part in batch)))
    return list(np.asarray(batch))


def elements(
    count: int,
    element: Callable[[int], Any],
    batch_size: int | None,
    stacker: Callable[[list], Any] | None = None,
) -> Dataset:
    """A Dataset of ``element(0..count-1)``, in batches of ``batch_size`` (or one by one
    when None), stacked by ``stacker`` (``stack`` by default)."""
    single = Dataset(count, element)
    if batch_size is None:
        return single
    if stacker is None:
        return single.batch(batch_size)
    size = int(batch_size)

    def batch(b: int) -> Any:
        return stacker([element(i) for i in range(b * size, min((b + 1) * size, count))])

    return Dataset(math.ceil(count / size), batch)


# --- folders --------------------------------------------------------------------------


def index_directory(
    directory: str,
    labels: Any,
    formats: tuple[str, ...],
    class_names: Sequence[str] | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    follow_links: bool = False,
    verbose: bool = True,
) -> tuple[list[str], np.ndarray | None, list[str] | None]:
    """Keras's listing: (file paths, integer labels, class names). With
    ``labels="inferred"`` each subfolder (sorted, or in ``class_names``'s order) is a
    class; files are sorted by folder then name, then shuffled with
    ``RandomState(seed)`` when ``shuffle``."""
    if not os.path.isdir(directory):
        raise ValueError(f"The directory {directory!r} does not exist or is not a folder")
    if labels == "inferred":
        subdirs = [
            d
            for d in sorted(os.listdir(directory))
            if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")
        ]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError(
                    "The `class_names` passed did not match the names of the subdirectories "
                    f"of the target directory. Expected: {subdirs} (or a subset of it), but "
                    f"received: class_names={class_names}"
                )
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError(
                    "When `labels=None` (no labels), argument `class_names` cannot be specified."
                )
            raise ValueError(
                "When argument `labels` is specified, argument `class_names` cannot be "
                "specified (the `class_names` will be the sorted list of labels)."
            )
    filenames: list[str] = []
    found_labels: list[int] = []
    for index, subdir in enumerate(subdirs):
        names = _files_under(os.path.join(directory, subdir), follow_links, formats)
        filenames += names
        found_labels += [index] * len(names)
    names_out: list[str] | None = list(subdirs)
    if labels == "inferred":
        label_array: np.ndarray | None = np.asarray(found_labels, dtype=np.int32)
    elif labels is None:
        label_array, names_out = None, None
    else:
        if len(labels) != len(filenames):
            raise ValueError(
                "Expected the lengths of `labels` to match the number of files in the target "
                f"directory. len(labels) is {len(labels)} while we found {len(filenames)} "
                f"files in directory {directory}."
            )
        label_array = np.asarray(labels)
        names_out = [str(label) for label in sorted(set(labels))]
    if verbose:
        if label_array is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(names_out)} classes.")
    paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(paths)
        if label_array is not None:
            np.random.RandomState(seed).shuffle(label_array)
    return paths, label_array, names_out


def _files_under(folder: str, follow_links: bool, formats: tuple[str, ...]) -> list[str]:
    """Keras's ``index_subdirectory``: paths relative to the listed folder's parent
    ("class/name.png"), walked with roots sorted and names sorted within each."""
    base = os.path.basename(folder)
    out = []
    for root, _, files in sorted(os.walk(folder, followlinks=follow_links), key=lambda w: w[0]):
        for name in sorted(files):
            if name.lower().endswith(formats):
                out.append(os.path.join(base, os.path.relpath(os.path.join(root, name), folder)))
    return out


def check_validation_split_arg(validation_split, subset, shuffle, seed) -> None:
    """Keras's checks of ``validation_split`` and ``subset``."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(
            f"`validation_split` must be between 0 and 1, received: {validation_split}"
        )
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(
            f'`subset` must be either "training", "validation" or "both", received: {subset}'
        )
    if validation_split and shuffle and seed is None:
        raise ValueError(
            "If using `validation_split` and shuffling the data, you must provide a `seed` "
            "argument, to make sure that there is no overlap between the training and "
            "validation subset."
        )


def training_or_validation_split(samples, labels, validation_split, subset):
    """Keras's split: the last ``int(validation_split * n)`` samples are validation."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    if subset == "training":
        print(f"Using {len(samples) - num_val} files for training.")
        cut = slice(None, len(samples) - num_val)
    elif subset == "validation":
        print(f"Using {num_val} files for validation.")
        cut = slice(len(samples) - num_val, None)
    else:
        raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')
    return samples[cut], None if labels is None else labels[cut]


def encode_label(label: int, label_mode: str | None, num_classes: int) -> np.ndarray:
    """One label as Keras encodes it: int32 ("int"), float32 [1] ("binary"), one-hot
    float32 ("categorical")."""
    if label_mode == "binary":
        return np.asarray([label], dtype=np.float32)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[int(label)]
    return np.asarray(label, dtype=np.int32)


def check_label_mode(label_mode: str | None, labels: Any, num_classes: int | None) -> None:
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError(
            '`label_mode` argument must be one of "int", "categorical", "binary", or None. '
            f"Received: label_mode={label_mode}"
        )
    if labels is None or label_mode is None:
        return
    if label_mode == "binary" and num_classes != 2:
        raise ValueError(
            'When passing `label_mode="binary"`, there must be exactly 2 class_names. '
            f"Received: {num_classes} classes"
        )


def from_paths(
    paths: list[str],
    labels: np.ndarray | None,
    label_mode: str | None,
    num_classes: int,
    load: Callable[[str], np.ndarray],
    batch_size: int | None,
    stacker: Callable[[list], Any] | None = None,
) -> Dataset:
    """The Dataset of ``load(path)`` (with its encoded label when there are labels)."""

    def element(i: int) -> Any:
        x = load(paths[i])
        if labels is None or label_mode is None:
            return x
        return x, encode_label(labels[i], label_mode, num_classes)

    dataset = elements(len(paths), element, batch_size, stacker)
    dataset.file_paths = list(paths)
    return dataset


def from_directory(
    directory: str,
    *,
    labels: Any,
    label_mode: str | None,
    class_names: Sequence[str] | None,
    formats: tuple[str, ...],
    what: str,
    load: Callable[[str], Any],
    batch_size: int | None,
    shuffle: bool,
    seed: int | None,
    validation_split: float | None,
    subset: str | None,
    follow_links: bool,
    verbose: bool,
    stacker: Callable[[list], Any] | None = None,
) -> Dataset | list[Dataset]:
    """Keras's common body of the ``*_dataset_from_directory`` functions: the checks,
    the listing, the split (``subset="both"`` gives [training, validation]) and the
    Datasets, each with ``class_names`` and ``file_paths``."""
    if labels not in ("inferred", None):
        if not isinstance(labels, list | tuple):
            raise ValueError(
                "`labels` argument should be a list/tuple of integer labels, of the same "
                f"size as the number of {what} files in the target directory. If you wish to "
                "infer the labels from the subdirectory names in the target directory, pass "
                '`labels="inferred"`. If you wish to get a dataset that only contains '
                f"{what} samples (no labels), pass `labels=None`. Received: labels={labels}"
            )
        if class_names:
            raise ValueError(
                'You can only pass `class_names` if `labels="inferred"`. Received: '
                f"labels={labels}, and class_names={class_names}"
            )
    check_label_mode(label_mode, None, None)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    check_validation_split_arg(validation_split, subset, shuffle, seed)
    if seed is None:
        seed = np.random.randint(1e6)
    paths, label_array, names = index_directory(
        directory, labels, formats=formats, class_names=class_names, shuffle=shuffle,
        seed=seed, follow_links=follow_links, verbose=verbose,
    )  # fmt: skip
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(
            'When passing `label_mode="binary"`, there must be exactly 2 class_names. '
            f"Received: class_names={names}"
        )
    num_classes = len(names) if names else 0
    allowed = ", ".join(formats)

    def make(part: str | None) -> Dataset:
        chosen, chosen_labels = (
            training_or_validation_split(paths, label_array, validation_split, part)
            if part
            else (paths, label_array)
        )
        if not chosen:
            kind = f"{part} " if part else ""
            raise ValueError(
                f"No {kind}{what} files found in directory {directory}. Allowed format(s): "
                f"{allowed}"
            )
        out = from_paths(chosen, chosen_labels, label_mode, num_classes, load, batch_size,
                         stacker)  # fmt: skip
        out.class_names = names
        return out

    if subset == "both":
        return [make("training"), make("validation")]
    return make(subset)
