"""Keras's probabilistic metrics: the running mean of the Kullback-Leibler divergence,
of the Poisson loss and of the cross-entropies."""

from kcompile import losses
from kcompile.metrics.reduction_metrics import _mean_of

KLDivergence = _mean_of("KLDivergence", losses.kl_divergence, "kl_divergence")
Poisson = _mean_of("Poisson", losses.poisson, "poisson")
BinaryCrossentropy = _mean_of(
    "BinaryCrossentropy",
    losses.binary_crossentropy,
    "binary_crossentropy",
    from_logits=False,
    label_smoothing=0,
)
CategoricalCrossentropy = _mean_of(
    "CategoricalCrossentropy",
    losses.categorical_crossentropy,
    "categorical_crossentropy",
    from_logits=False,
    label_smoothing=0,
    axis=-1,
)
SparseCategoricalCrossentropy = _mean_of(
    "SparseCategoricalCrossentropy",
    losses.sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy",
    from_logits=False,
    ignore_class=None,
    axis=-1,
)
