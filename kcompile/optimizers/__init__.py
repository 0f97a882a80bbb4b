"""``keras.optimizers``: Keras's optimizers, their update rules written as IR."""

from typing import Any as _Any

from kcompile.optimizers.adadelta import Adadelta
from kcompile.optimizers.adafactor import Adafactor
from kcompile.optimizers.adagrad import Adagrad
from kcompile.optimizers.adam import Adam
from kcompile.optimizers.adamax import Adamax
from kcompile.optimizers.adamw import AdamW
from kcompile.optimizers.ftrl import Ftrl
from kcompile.optimizers.lamb import Lamb
from kcompile.optimizers.lion import Lion
from kcompile.optimizers.loss_scale_optimizer import LossScaleOptimizer
from kcompile.optimizers.multi_optimizer import MultiOptimizer, OptimizerMap
from kcompile.optimizers.muon import Muon
from kcompile.optimizers.nadam import Nadam
from kcompile.optimizers.optimizer import Optimizer, serialize
from kcompile.optimizers.optimizer import deserialize as _deserialize
from kcompile.optimizers.rmsprop import RMSprop
from kcompile.optimizers.schedule_free_adamw import ScheduleFreeAdamW
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
    "adafactor": Adafactor,
    "lamb": Lamb,
    "muon": Muon,
    "schedulefreeadamw": ScheduleFreeAdamW,
}


def get(identifier: _Any) -> Optimizer:
    """An optimizer from an Optimizer (as is), an Optimizer class, a name ("adam") or a
    config dict ({"class_name": ..., "config": ...}, as Keras's ``serialize`` writes)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _ALL:
        return _ALL[identifier.lower()]()
    raise ValueError(
        f"unknown optimizer {identifier!r}; known optimizers: {', '.join(sorted(_ALL))}"
    )


def deserialize(config: _Any, custom_objects: dict | None = None) -> Optimizer:
    """An optimizer from ``serialize``'s form (a class's config dict) or a name."""
    if isinstance(config, str):
        return get(config)
    if isinstance(config, dict) and config.get("class_name") == "OptimizerMap":
        return OptimizerMap.from_config(dict(config.get("config", {})), custom_objects)
    return _deserialize(config, custom_objects)


__all__ = [
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lamb",
    "Lion",
    "LossScaleOptimizer",
    "MultiOptimizer",
    "Muon",
    "Nadam",
    "Optimizer",
    "OptimizerMap",
    "RMSprop",
    "ScheduleFreeAdamW",
    "deserialize",
    "get",
    "serialize",
]
