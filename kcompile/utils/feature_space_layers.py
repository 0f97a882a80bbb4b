"""The layers a ``keras.utils.FeatureSpace`` makes beside its features' preprocessors:
Keras's ``TFDIdentity`` (a ``float`` feature's preprocessor) and ``TFDConcat``, and
``CrossLookup``, the compiled form of a feature cross.

A cross hashes the integer codes of two features (farmhash's 64-bit ``FingerprintCat64``,
as ``HashedCrossing`` does on the host). In a model those codes are computed in the
compiled step (a Discretization's bins) or handed to it by the host stage (a lookup's
ids), and the step has no 64-bit hashing: so it looks each row's bin up in a table of
every combination of codes, which the crosser fills once on the host. The table has as
many entries as the product of the features' code counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kcompile import layers, ops
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.layers.layer import CallRecord, Layer
from kcompile.layers.preprocessing.index_lookup import IndexLookup

MAX_CROSS_TABLE = 1 << 20  # combinations of codes a compiled cross may look up


class TFDIdentity(layers.Identity):
    """Keras's preprocessor of a ``float`` feature: the values as they are."""


class TFDConcat(Layer):
    """Keras's concatenation of the encoded features (numpy on data, compiled in a model)."""

    def __init__(self, axis: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def __call__(self, xs: list, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(x, KerasTensor) for x in xs):
            return super().__call__(xs, *args, **kwargs)
        return np.concatenate([np.asarray(x) for x in xs], axis=self.axis)

    def call(self, xs):
        return ops.concatenate(xs, axis=self.axis)


class CrossLookup(Layer):
    """A ``HashedCrossing`` of features whose codes the compiled step computes: the step
    looks each row's bin up in the table of every combination of codes (row-major, the
    last feature fastest), made by the crosser on the host when a step is traced."""

    def __init__(self, crosser: Any, preprocessors: list, feature_names: tuple, **kw: Any):
        super().__init__(**kw)
        # Private: the crosser and preprocessors are the FeatureSpace's layers, not this one's.
        self._crosser, self._preprocessors = crosser, list(preprocessors)
        self._feature_names = tuple(feature_names)
        self._tables: dict[tuple, np.ndarray] = {}

    def __call__(self, inputs: list, *args: Any, **kwargs: Any) -> Any:
        if not all(isinstance(t, KerasTensor) for t in inputs):
            raise TypeError(f"layer '{self.name}' (CrossLookup) takes the symbolic features")
        # The node is recorded without tracing call (as a host layer's is), so that a cross
        # too large to tabulate fails the model that compiles it, not the FeatureSpace.
        out = KerasTensor(inputs[0].shape, "int32", name=self.name)
        record = CallRecord(self, list(inputs), [out], None)
        self._calls.append(record)
        out._history = (record, 0)
        self.built = True
        return out

    def sizes(self) -> list[int]:
        """How many codes each crossed feature has."""
        sizes = [code_count(p) for p in self._preprocessors]
        for name, p, size in zip(self._feature_names, self._preprocessors, sizes):
            if size is None:
                raise NotImplementedError(
                    f"cross '{self._crosser.name}' in a model: kcompile looks crosses up in a "
                    "table of every combination of their features' codes, and the "
                    f"preprocessor of feature '{name}' ({type(p).__name__}) does not say how "
                    "many codes it makes. Preprocess the data with the FeatureSpace instead "
                    "(dataset.map(feature_space)) and train on its output"
                )
        if math.prod(sizes) > MAX_CROSS_TABLE:
            raise NotImplementedError(
                f"cross '{self._crosser.name}' in a model: its features have {sizes} codes, "
                f"a table of {math.prod(sizes)} combinations (kcompile tabulates at most "
                f"{MAX_CROSS_TABLE}). Preprocess the data with the FeatureSpace instead "
                "(dataset.map(feature_space)) and train on its output"
            )
        return sizes

    def table(self) -> np.ndarray:
        sizes = tuple(self.sizes())
        if sizes not in self._tables:
            grids = np.meshgrid(*[np.arange(s, dtype=np.int64) for s in sizes], indexing="ij")
            bins = self._crosser.host_call([g.reshape(-1) for g in grids])
            self._tables = {sizes: np.asarray(bins, np.int32)}
        return self._tables[sizes]

    def call(self, inputs):
        table, sizes = self.table(), self.sizes()
        index = None
        for k, x in enumerate(inputs):
            part = ops.cast(x, "int32")
            stride = math.prod(sizes[k + 1 :])
            part = part * stride if stride != 1 else part
            index = part if index is None else index + part
        return ops.take(table, index)


def code_count(preprocessor: Any) -> int | None:
    """How many integer codes a preprocessor makes (None when it does not say)."""
    if isinstance(preprocessor, IndexLookup):
        return preprocessor.vocabulary_size()
    if isinstance(preprocessor, layers.Discretization):
        boundaries = preprocessor.bin_boundaries
        return None if boundaries is None else len(boundaries) + 1
    if isinstance(preprocessor, layers.Hashing | layers.HashedCrossing):
        return preprocessor.num_bins
    return None
