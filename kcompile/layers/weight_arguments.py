"""A weight's constructor arguments as Keras's layers take and write them: for a weight
``w`` (``kernel``, ``bias``, ``gamma``...), ``w_initializer``, ``w_regularizer`` and
``w_constraint``, made objects in ``__init__`` (``initializers.get`` and the others, as
Keras's layers do) and written in the config in Keras's serialized form, so that
``from_config`` and ``clone_model`` make the same weights with the same penalties."""

from __future__ import annotations

from typing import Any

from kcompile import constraints, initializers, regularizers
from kcompile.utils.config_serialization import serialize_optional

_GETTERS = {
    "initializer": lambda v: None if v is None else initializers.get(v),
    "regularizer": regularizers.get,
    "constraint": constraints.get,
}


def set_weight_arguments(layer: Any, **arguments: Any) -> None:
    """``layer.<weight>_<kind> = <kind>s.get(value)`` for each ``<weight>_<kind>=value``."""
    for key, value in arguments.items():
        kind = key.rsplit("_", 1)[-1]
        setattr(layer, key, _GETTERS[kind](value))


def weight_config(layer: Any, *weights: str) -> dict[str, Any]:
    """The initializer, regularizer and constraint of each of ``weights`` in Keras's
    config form (an initializer always, the others None when unset)."""
    config: dict[str, Any] = {}
    for weight in weights:
        config[f"{weight}_initializer"] = initializer_config(
            getattr(layer, f"{weight}_initializer")
        )
        for kind, module in (("regularizer", regularizers), ("constraint", constraints)):
            config[f"{weight}_{kind}"] = serialize_optional(
                module, getattr(layer, f"{weight}_{kind}", None)
            )
    return config


def initializer_config(value: Any) -> Any:
    """An initializer (or its name) as Keras's config holds it."""
    return None if value is None else initializers.serialize(initializers.get(value))


def activity_config(layer: Any) -> dict[str, Any]:
    """``activity_regularizer`` as the layers that write it (Dense, the convolutions,
    the recurrent layers...) write it."""
    return {"activity_regularizer": serialize_optional(regularizers, layer.activity_regularizer)}


def scale_weight(layer: Any, weight: str, shape: tuple) -> Any:
    """A normalization's ``gamma`` or ``beta`` of ``shape``, with its initializer,
    regularizer and constraint (``gamma_initializer``...)."""
    return layer.add_weight(
        shape,
        getattr(layer, f"{weight}_initializer"),
        name=weight,
        regularizer=getattr(layer, f"{weight}_regularizer"),
        constraint=getattr(layer, f"{weight}_constraint"),
    )
