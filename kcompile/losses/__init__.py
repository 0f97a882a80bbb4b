"""``keras.losses``: Keras's losses, written as IR or with ``keras.ops``."""

from typing import Any as _Any

from kcompile.backend.session import snake_case as _snake_case
from kcompile.losses.circle import Circle, circle
from kcompile.losses.ctc import CTC, ctc
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
    CategoricalGeneralizedCrossEntropy,
    CategoricalHinge,
    CosineSimilarity,
    Dice,
    Hinge,
    Huber,
    KLDivergence,
    LogCosh,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Poisson,
    SquaredHinge,
    Tversky,
    binary_focal_crossentropy,
    categorical_focal_crossentropy,
    categorical_generalized_cross_entropy,
    categorical_hinge,
    cosine_similarity,
    dice,
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
    tversky,
)
from kcompile.losses.refused import refusing as _refusing

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
            Dice,
            Tversky,
            CategoricalGeneralizedCrossEntropy,
            Circle,
            CTC,
        )
    },
}


# Every loss class, by class name, for configs ({"class_name": ..., "config": ...}).
_BY_CLASS_NAME = {
    cls.__name__: cls
    for cls in (
        Loss,
        Circle,
        MeanSquaredError,
        MeanAbsoluteError,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
        *_ALIASES.values(),
    )
}


def get(identifier: _Any) -> Loss:
    """A loss from a Loss (as is), a Loss class, a name, a config dict
    ({"class_name": ..., "config": ...}, as Keras's ``serialize`` writes), a functional
    form, or a user's function of (y_true, y_pred) written with ``keras.ops``."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        key = identifier if identifier in _ALIASES else _snake_case(identifier)
        if key in _ALIASES:
            return _ALIASES[key]()
    if hasattr(identifier, "loss_class"):
        return identifier.loss_class()
    if callable(identifier):
        return FunctionLoss(identifier)
    raise ValueError(f"unknown loss {identifier!r}; known losses: {', '.join(sorted(_ALIASES))}")


def serialize(loss: _Any) -> _Any:
    """Keras's form of a loss: {"module", "class_name", "config", "registered_name"} for
    a Loss object; a built-in loss function by its name."""
    if isinstance(loss, Loss):
        return {
            "module": "keras.losses",
            "class_name": type(loss).__name__,
            "config": loss.get_config(),
            "registered_name": None,
        }
    if callable(loss) and getattr(loss, "__name__", None):
        return loss.__name__
    raise ValueError(f"keras.losses.serialize: cannot serialize {loss!r}")


def deserialize(config: _Any, custom_objects: dict | None = None) -> Loss:
    """A loss from ``serialize``'s form (a class's config dict or a name)."""
    if isinstance(config, str):
        return get(config)
    if not (isinstance(config, dict) and "class_name" in config):
        raise ValueError(f"keras.losses.deserialize: expected a config dict, got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _BY_CLASS_NAME.get(name)
    if cls is None:
        raise ValueError(f"unknown loss class {name!r}; known: {', '.join(sorted(_BY_CLASS_NAME))}")
    options = {k: v for k, v in config.get("config", {}).items() if k != "dtype"}
    if hasattr(cls, "from_config"):
        return cls.from_config(options)
    return cls(**options)


__getattr__ = _refusing(
    "keras.losses",
    {},
)


__all__ = [
    "CTC",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy",
    "CategoricalHinge",
    "Circle",
    "CosineSimilarity",
    "Dice",
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
    "Tversky",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
    "categorical_hinge",
    "circle",
    "cosine_similarity",
    "ctc",
    "deserialize",
    "dice",
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
    "serialize",
    "sparse_categorical_crossentropy",
    "squared_hinge",
    "tversky",
]
