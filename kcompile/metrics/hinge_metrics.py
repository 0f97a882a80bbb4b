"""Keras's hinge metrics: the running mean of the hinge losses."""

from kcompile import losses
from kcompile.metrics.reduction_metrics import _mean_of

Hinge = _mean_of("Hinge", losses.hinge, "hinge")
SquaredHinge = _mean_of("SquaredHinge", losses.squared_hinge, "squared_hinge")
CategoricalHinge = _mean_of("CategoricalHinge", losses.categorical_hinge, "categorical_hinge")
