"""Keras's correlation metrics: the running mean of each sample's Pearson or
concordance correlation coefficient along an axis."""

from __future__ import annotations

from kcompile import ops
from kcompile.metrics.reduction_metrics import _mean_of

EPSILON = 1e-7  # keras.config.epsilon()


def _aligned(y_true, y_pred):
    from kcompile.losses.ops_losses import _aligned as aligned

    return aligned(y_true, ops.cast(y_pred, "float32"))


def pearson_correlation(y_true, y_pred, axis=-1):
    """Keras's: the Pearson correlation coefficient of each sample along ``axis``."""
    y_true, y_pred = _aligned(y_true, y_pred)
    y_true_norm = y_true - ops.mean(y_true, axis=axis, keepdims=True)
    y_pred_norm = y_pred - ops.mean(y_pred, axis=axis, keepdims=True)
    y_true_norm = y_true_norm / ops.std(y_true_norm, axis=axis, keepdims=True)
    y_pred_norm = y_pred_norm / ops.std(y_pred_norm, axis=axis, keepdims=True)
    return ops.mean(y_true_norm * y_pred_norm, axis=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Keras's: the concordance correlation coefficient of each sample along ``axis``
    (with Keras's covariance term, centred on the prediction's mean)."""
    y_true, y_pred = _aligned(y_true, y_pred)
    y_true_mean = ops.mean(y_true, axis=axis, keepdims=True)
    y_pred_mean = ops.mean(y_pred, axis=axis, keepdims=True)
    y_true_var = ops.var(y_true - y_true_mean, axis=axis, keepdims=True)
    y_pred_var = ops.var(y_pred - y_pred_mean, axis=axis, keepdims=True)
    covar = (y_true - y_pred_mean) * (y_pred - y_pred_mean)
    norm = y_true_var + y_pred_var + ops.square(y_true_mean - y_pred_mean)
    return ops.mean(2.0 * covar / (norm + EPSILON), axis=axis)


PearsonCorrelation = _mean_of(
    "PearsonCorrelation", pearson_correlation, "pearson_correlation", "up", axis=-1
)
ConcordanceCorrelation = _mean_of(
    "ConcordanceCorrelation", concordance_correlation, "concordance_correlation", "up", axis=-1
)
