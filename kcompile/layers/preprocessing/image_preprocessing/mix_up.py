"""Keras's ``MixUp``, and what it shares with ``CutMix``: both mix each image of a batch
(and its label) with the image the batch's random order puts in its place.

The random order is each image's rank among uniform draws, and the mixing weights are
Beta draws, all from the step's counter-based generator, so compiled code draws what the
reference interpreter draws (the streams are not JAX's). The ranks compare every pair of
images ([n, n]), and the images are taken in that order by ``gather_batch`` (a
``gather_rows`` whose rows are the batch), so the layers train in a compiled step whose
batch size is symbolic (``N``, every ``model.fit``) as they run on data
(``layer({"images": x, "labels": y})``, the use Keras's documentation shows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor, ir_dtype
from kcompile.ir import DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.row_gather import gather_batch
from kcompile.layers.layer import TraceContext
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import (
    first_accepted,
    gamma_candidates,
)

DATA_FORMATS = ("channels_last", "channels_first")
DATA_KEYS = ("images", "labels")
TIE_DRAW = 20  # the draw that breaks ties of an order's ranks: past every layer's draws


def standardize_data_format(layer: str, data_format: Any) -> str:
    """Keras's: None is channels last (kcompile's image data format)."""
    if data_format is None:
        return "channels_last"
    if str(data_format).lower() not in DATA_FORMATS:
        raise ValueError(
            f"{layer}: the `data_format` argument must be one of {set(DATA_FORMATS)}. "
            f"Received: data_format={data_format}"
        )
    return str(data_format).lower()


class BatchMixingLayer(BaseImagePreprocessingLayer):
    """The base of ``MixUp`` and ``CutMix``: called on images, or on a dictionary of
    ``images`` and ``labels`` (one-hot or soft, [batch, classes]) that it mixes alike.
    Subclasses define ``mix_batch(ctx, images, labels)`` for training and ``inference``."""

    def __init__(self, seed: int | None = None, data_format: Any = None, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self.data_format = standardize_data_format(self.described, data_format)

    @property
    def described(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    # --- calls --------------------------------------------------------------------------

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, dict):
            return self.call_on_dict(inputs, *args, **kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, ctx, x):
        if not ctx.training:
            return self.inference(self.checked_rank(x))
        return self.mix_batch(ctx, self.images(x), None)[0]

    def call_on_dict(self, data: dict, training: bool = True) -> dict:
        """Keras's call on ``{"images": ..., "labels": ...}``: both mixed by the same draws
        (a single image and its label are a batch of one)."""
        unknown = sorted(set(data) - set(DATA_KEYS))
        if unknown:
            raise NotImplementedError(
                f"{self.described}: kcompile mixes 'images' and 'labels'; the keys "
                f"{unknown} (bounding boxes, segmentation masks) are not supported yet"
            )
        if "images" not in data:
            raise ValueError(f"{self.described}: the dictionary has no 'images' key")
        if any(isinstance(v, KerasTensor) for v in data.values()):
            raise NotImplementedError(
                f"{self.described}: a dictionary of symbolic tensors is not supported; "
                "call the layer on the images, or on a dictionary of arrays"
            )
        images = np.asarray(getattr(data["images"], "value", data["images"]))
        labels = data.get("labels")
        labels = None if labels is None else np.asarray(getattr(labels, "value", labels))
        single = images.ndim == 3
        if single:
            images = images[None]
            labels = None if labels is None else labels[None]
        self.check_labels(images, labels)
        self._data_calls += 1
        out = self.run_on_data(images, labels, bool(training))
        return {key: value[0] if single else value for key, value in out.items()}

    def run_on_data(self, images: np.ndarray, labels: np.ndarray | None, training: bool) -> dict:
        """The layer's transform of arrays, traced at their batch size and run on the
        reference interpreter (as any layer's call on data)."""
        graph = Graph(f"{self.name}_on_data")
        ctx = TraceContext(graph, training=training)
        dtype = ir_dtype(str(images.dtype)) if images.dtype.kind != "f" else DType.f32
        x = graph.add_input("images", TensorType(dtype, images.shape))
        feeds = {"images": images.astype(dtype.numpy)}
        y = None
        if labels is not None and training:
            y = graph.add_input("labels", TensorType(DType.f32, labels.shape))
            feeds["labels"] = labels.astype(np.float32)
        with graph.layer_scope(self.name):
            if training:
                outs = self.mix_batch(ctx, self.images(x), y)
            else:
                outs = (self.inference(self.checked_rank(x)), None)
        graph.set_outputs([(k, v) for k, v in zip(DATA_KEYS, outs) if v is not None])
        if "iterations" in [v.name for v in graph.inputs]:
            feeds["iterations"] = np.int32(0)
        result = Interpreter(graph).run(feeds)
        if labels is not None and not training:
            result["labels"] = labels  # as Keras's, labels pass unchanged
        return dict(result)

    # --- for the layers -----------------------------------------------------------------

    def checked_rank(self, x: Value) -> Value:
        if x.rank != 4:
            raise ValueError(
                f"{self.described} expects images of shape (batch, height, width, channels)"
                f" or (height, width, channels), got rank {x.rank}"
            )
        return x

    def check_labels(self, images: np.ndarray, labels: np.ndarray | None) -> None:
        if labels is None:
            return
        if labels.ndim != 2 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{self.described}: labels must be one-hot or soft labels of shape "
                f"(batch, classes) for images of batch {images.shape[0]} (or (classes,) for "
                f"a single image), got shape {labels.shape}"
            )

    def batch_order(self, ctx, x: Value, k: int) -> Value:
        """A uniformly random order of the images ([n] i32, n static or ``N``; draws ``k``
        and ``k + TIE_DRAW``): each image's rank among n uniform draws, ties broken by a
        second draw. Both drawn alike at two images (24 bits each: a chance below
        n²·2⁻⁴⁹ per call) would give them the same rank, and one of them two partners."""
        n = x.shape[0]
        u = self.uniform(ctx, x, k, 0.0, 1.0, shape=(n, 1))
        tie = self.uniform(ctx, x, k + TIE_DRAW, 0.0, 1.0, shape=(n, 1))
        row_u, row_tie = B.reshape(u, (1, n)), B.reshape(tie, (1, n))  # [i, j]: image j
        tie_before = B.logical_and(B.eq(row_u, u), B.lt(row_tie, tie))
        before = B.logical_or(B.lt(row_u, u), tie_before)
        return B.cast(B.reduce_sum(B.cast(before, DType.f32), (1,)), DType.i32)

    def beta(self, ctx, x: Value, k: int, alpha: Value, count: int | str) -> Value:
        """[count, 1] Beta(alpha, alpha) draws (draws ``k`` to ``k + 5``), as JAX draws
        them: the two gammas compared in logs, so a tiny alpha gives 0 or 1, not 0/0."""
        first = log_gamma(self, ctx, x, k, alpha, count)
        second = log_gamma(self, ctx, x, k + 3, alpha, count)
        return B.reshape(B.logistic(first - second), (count, 1))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "data_format": self.data_format}

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def log_gamma(layer, ctx, x: Value, k: int, alpha: Value, count: int | str) -> Value:
    """[1, count] logs of Gamma(alpha, 1) draws for a shape ``alpha`` known when the step
    runs ([1, 1], > 0; draws ``k`` to ``k + 2``): Marsaglia and Tsang's method for shape
    alpha + 1 over a fixed number of candidates (the first accepted is kept), plus
    log(U) / alpha (Gamma(alpha) = Gamma(alpha + 1)·U^(1/alpha))."""
    d = alpha + (1.0 - 1.0 / 3.0)
    v, accept = gamma_candidates(layer, ctx, x, k, d, 1.0 / B.sqrt(d * 9.0), count)
    out = first_accepted(B.log(v) + B.log(d), accept, count)
    boost = layer.uniform(ctx, x, k + 2, 0.0, 1.0, (1, count)) + 2.0**-25
    return out + B.log(boost) / alpha


class MixUp(BatchMixingLayer):
    """In training, Keras's MixUp: image i becomes w_i·x_i + (1 − w_i)·x_p(i), and its
    label likewise, with w_i ~ Beta(alpha, alpha) and p a random order of the batch. In
    inference the images pass unchanged (in their dtype, as Keras's). ``alpha`` must be
    positive (Keras's makes NaNs of 0 or less)."""

    def __init__(
        self, alpha: float = 0.2, data_format: Any = None, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise ValueError(f"{self.described}: alpha must be a positive number, got {alpha!r}")
        self.alpha = alpha

    def inference(self, x: Value) -> Value:
        return x

    def draws(self, ctx, x: Value) -> dict[str, Value]:
        """The weights ([n, 1]) and the order ([n]) of one call."""
        n = x.shape[0]
        alpha = B.const(x.graph, float(self.alpha), shape=(1, 1))
        return {"weight": self.beta(ctx, x, 1, alpha, n), "order": self.batch_order(ctx, x, 0)}

    def mix_batch(self, ctx, x: Value, labels: Value | None) -> tuple:
        return self.mix(x, labels, **self.draws(ctx, x))

    def mix(self, x: Value, labels: Value | None, weight: Value, order: Value) -> tuple:
        """Keras's formula for weights ``weight`` [n, 1] and the order ``order`` [n]."""
        w = B.reshape(weight, (x.shape[0], 1, 1, 1))
        images = w * x + (1.0 - w) * gather_batch(x, order)
        if labels is None:
            return images, None
        return images, weight * labels + (1.0 - weight) * gather_batch(labels, order)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha}
