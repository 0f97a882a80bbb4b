"""Keras's ``Lambda``: a function of ``keras.ops`` calls used as a layer."""

from __future__ import annotations

import inspect
from typing import Any

from kcompile.layers.layer import Layer


class Lambda(Layer):
    """Keras's ``Lambda(function)``: ``function(inputs, **arguments)`` written with
    ``keras.ops``, traced like a custom layer's ``call``."""

    def __init__(
        self,
        function: Any,
        output_shape: Any = None,
        mask: Any = None,
        arguments: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda needs a function, got {function!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = mask  # Keras: the output's mask (or how to compute it); else none
        self.supports_masking = mask is not None
        try:
            self._takes_mask = "mask" in inspect.signature(function).parameters
        except (TypeError, ValueError):  # a builtin without a signature
            self._takes_mask = False

    def call(self, inputs, mask=None, training=None):
        extra = {"mask": mask} if self._takes_mask else {}
        return self.function(inputs, **self.arguments, **extra)

    def compute_mask(self, inputs, previous_mask):
        return self.mask(inputs, previous_mask) if callable(self.mask) else self.mask

    def get_config(self):
        raise NotImplementedError(
            f"layer '{self.name}': a Lambda's function cannot be serialized (as in Keras, "
            "which refuses to load it by default); rebuild the model in code"
        )
