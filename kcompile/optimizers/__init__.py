"""``keras.optimizers``: Keras's optimizers, their update rules written as IR."""

from typing import Any as _Any

from kcompile.optimizers.adadelta import Adadelta
from kcompile.optimizers.adagrad import Adagrad
from kcompile.optimizers.adam import Adam
from kcompile.optimizers.adamax import Adamax
from kcompile.optimizers.adamw import AdamW
from kcompile.optimizers.ftrl import Ftrl
from kcompile.optimizers.lion import Lion
from kcompile.optimizers.nadam import Nadam
from kcompile.optimizers.optimizer import Optimizer
from kcompile.optimizers.rmsprop import RMSprop
from kcompile.optimizers.sgd import SGD

_ALL = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "adamax": Adamax,
    "nadam": Nadam,
    "ftrl": Ftrl,
    "lion": Lion,
}


def get(identifier: _Any) -> Optimizer:
    """An optimizer from an Optimizer (as is), an Optimizer class or a name ("adam")."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _ALL:
        return _ALL[identifier.lower()]()
    raise ValueError(
        f"unknown optimizer {identifier!r}; known optimizers: {', '.join(sorted(_ALL))}"
    )


__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lion",
    "Nadam",
    "Optimizer",
    "RMSprop",
    "get",
]
