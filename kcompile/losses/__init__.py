"""``keras.losses``: Keras's losses, written as IR or with ``keras.ops``."""

from typing import Any as _Any

from kcompile.backend.session import snake_case as _snake_case
from kcompile.losses.loss import Loss
from kcompile.losses.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    FunctionLoss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    categorical_crossentropy,
    mae,
    mean_absolute_error,
    mean_squared_error,
    mse,
    sparse_categorical_crossentropy,
)
from kcompile.losses.ops_losses import (
    BinaryFocalCrossentropy,
    CategoricalFocalCrossentropy,
    CategoricalHinge,
    CosineSimilarity,
    Hinge,
    Huber,
    KLDivergence,
    LogCosh,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Poisson,
    SquaredHinge,
    binary_focal_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    cosine_similarity,
    hinge,
    huber,
    kl_divergence,
    kld,
    log_cosh,
    mape,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    msle,
    poisson,
    squared_hinge,
)

# Keras's names of the built-in losses (``get`` also takes a class's snake_case name).
_ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "cce": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "huber": Huber,
    "logcosh": LogCosh,
    "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    **{
        cls.default_name: cls
        for cls in (
            Huber,
            LogCosh,
            KLDivergence,
            Poisson,
            CosineSimilarity,
            Hinge,
            SquaredHinge,
            CategoricalHinge,
            MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError,
            CategoricalFocalCrossentropy,
            BinaryFocalCrossentropy,
        )
    },
}


def get(identifier: _Any) -> Loss:
    """A loss from a Loss (as is), a Loss class, a name, a functional form, or a user's
    function of (y_true, y_pred) written with ``keras.ops``."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = identifier if identifier in _ALIASES else _snake_case(identifier)
        if key in _ALIASES:
            return _ALIASES[key]()
    if hasattr(identifier, "loss_class"):
        return identifier.loss_class()
    if callable(identifier):
        return FunctionLoss(identifier)
    raise ValueError(f"unknown loss {identifier!r}; known losses: {', '.join(sorted(_ALIASES))}")


__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalHinge",
    "CosineSimilarity",
    "FunctionLoss",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Loss",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
    "cosine_similarity",
    "get",
    "hinge",
    "huber",
    "kl_divergence",
    "kld",
    "log_cosh",
    "mae",
    "mape",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "mse",
    "msle",
    "poisson",
    "sparse_categorical_crossentropy",
    "squared_hinge",
]
