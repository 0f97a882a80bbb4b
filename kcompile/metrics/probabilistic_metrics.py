"""Keras's probabilistic metrics: the running mean of the Kullback-Leibler divergence
and of the Poisson loss."""

from kcompile import losses
from kcompile.metrics.reduction_metrics import _mean_of

KLDivergence = _mean_of("KLDivergence", losses.kl_divergence, "kl_divergence")
Poisson = _mean_of("Poisson", losses.poisson, "poisson")
