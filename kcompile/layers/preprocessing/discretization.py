"""Keras's ``Discretization``: values to the index of their bin (``digitize``), or its
one-hot, multi-hot or count encoding, in the compiled step; ``adapt`` finds the bin
boundaries from quantiles with Keras's own summaries (ported below, same numbers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from kcompile import ops
from kcompile.layers.layer import Layer
from kcompile.layers.preprocessing.category_encoding import arrays_for_lists, encode_categorical

_MODES = ("int", "one_hot", "multi_hot", "count")


class Discretization(Layer):
    def __init__(
        self,
        bin_boundaries: Any = None,
        num_bins: int | None = None,
        epsilon: float = 0.01,
        output_mode: str = "int",
        sparse: bool = False,
        dtype: Any = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if sparse and output_mode == "int":
            raise ValueError(
                "`sparse=True` may only be used if `output_mode` is `'one_hot'`, "
                f"`'multi_hot'`, or `'count'`. Received: sparse={sparse} and "
                f"output_mode={output_mode}"
            )
        if sparse:
            raise ValueError("`sparse=True` cannot be used with backend kcompile")
        if output_mode not in _MODES:
            raise ValueError(
                "Unknown value for `output_mode` argument of Discretization. Allowed values "
                f"are: {_MODES}. Received: output_mode={output_mode}"
            )
        if num_bins is not None and num_bins < 0:
            raise ValueError(
                f"`num_bins` must be greater than or equal to 0. Received: `num_bins={num_bins}`"
            )
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(
                "Both `num_bins` and `bin_boundaries` should not be set. Received: "
                f"`num_bins={num_bins}` and `bin_boundaries={bin_boundaries}`"
            )
        if num_bins is None and bin_boundaries is None:
            raise ValueError("You need to set either `num_bins` or `bin_boundaries`.")
        self.bin_boundaries = bin_boundaries
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = sparse
        self.summary = None if bin_boundaries else np.array([[], []], dtype="float32")

    @property
    def output_dtype(self) -> str:
        return "float32" if self.output_mode != "int" else "int32"

    # --- adapt (Keras's, on the host) -------------------------------------------------

    def adapt(self, data: Any, steps: int | None = None) -> None:
        if self.num_bins is None:
            raise ValueError(
                "Cannot adapt a Discretization layer that has been initialized with "
                "`bin_boundaries`, use `num_bins` instead."
            )
        self.reset_state()
        if isinstance(data, Iterable) and not isinstance(data, np.ndarray | list | tuple):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        elif isinstance(data, list | tuple) and data and isinstance(data[0], np.ndarray):
            for i, batch in enumerate(data):  # a list of batches
                if steps is not None and i >= steps:
                    break
                self.update_state(batch)
        else:
            self.update_state(data)
        self.finalize_state()

    def update_state(self, data: Any) -> None:
        data = np.array(getattr(data, "value", data)).astype("float32")
        self.summary = merge_summaries(summarize(data, self.epsilon), self.summary, self.epsilon)

    def finalize_state(self) -> None:
        if self.num_bins is None:
            return
        self.bin_boundaries = get_bin_boundaries(self.summary, self.num_bins).tolist()

    def reset_state(self) -> None:
        if self.num_bins is None:
            return
        self.summary = np.array([[], []], dtype="float32")

    # --- the call ------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        args, kwargs = arrays_for_lists(args, kwargs)
        return super().__call__(*args, **kwargs)

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError(
                "You need to either pass the `bin_boundaries` argument at construction time "
                "or call `adapt(dataset)` before you can start using the `Discretization` "
                "layer."
            )
        indices = ops.digitize(inputs, np.asarray(self.bin_boundaries, np.float32))
        if self.output_mode == "int":
            return indices
        return encode_categorical(indices, self.output_mode, len(self.bin_boundaries) + 1)

    def get_config(self) -> dict[str, Any]:
        return {
            "bin_boundaries": self.bin_boundaries,
            "num_bins": self.num_bins,
            "epsilon": self.epsilon,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "name": self.name,
            "dtype": self.dtype,  # (Keras's: the variables' dtype, not the policy)
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Discretization:
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            config = dict(config)
            boundaries = config.pop("bin_boundaries")
            layer = cls(**config)
            layer.bin_boundaries = boundaries
            return layer
        return cls(**config)


def summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    """Keras's: values sorted and sampled at about 1/epsilon points, with weights."""
    values = np.sort(np.reshape(values, [-1]))
    elements = np.size(values)
    num_buckets = 1.0 / epsilon
    increment = elements / num_buckets
    step = max(increment, 1)
    start = step - 1
    boundaries = values[int(start) :: int(step)]
    weights = np.ones_like(boundaries) * step
    return np.stack([boundaries, weights])


def merge_summaries(prev_summary, next_summary, epsilon: float) -> np.ndarray:
    merged = np.concatenate((prev_summary, next_summary), axis=1)
    merged = np.take(merged, np.argsort(merged[0]), axis=1)
    return compress_summary(merged, epsilon)


def get_bin_boundaries(summary: np.ndarray, num_bins: int) -> np.ndarray:
    return compress_summary(summary, 1.0 / num_bins)[0, :-1]


def compress_summary(summary: np.ndarray, epsilon: float) -> np.ndarray:
    """Keras's: the summary re-binned at cumulative-weight fractions epsilon apart."""
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum_weights = summary[1].cumsum()
    cum_weight_percents = cum_weights / cum_weights[-1]
    new_bins = np.interp(percents, cum_weight_percents, summary[0])
    cum_weights = np.interp(percents, cum_weight_percents, cum_weights)
    new_weights = cum_weights - np.concatenate((np.array([0]), cum_weights[:-1]))
    return np.stack((new_bins, new_weights)).astype("float32")
