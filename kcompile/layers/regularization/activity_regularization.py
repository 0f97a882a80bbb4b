"""Keras's ``ActivityRegularization``: adds its penalty to the loss."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer


class ActivityRegularization(Layer):
    """Identity that adds l1·sum|x| + l2·sum(x²) of its input to the loss."""

    propagates_mask = True

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any) -> None:
        from kcompile import regularizers

        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = float(l1), float(l2)

    def call(self, ctx, x):
        return x

    def get_config(self):
        config = {**super().get_config(), "l1": self.l1, "l2": self.l2}
        config.pop("activity_regularizer", None)
        return config
