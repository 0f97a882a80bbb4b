"""Keras's SGD: gradient descent, with momentum or Nesterov momentum."""

from __future__ import annotations

from typing import Any

from kcompile.optimizers.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def slot_names(self):
        return ("momentum",) if self.momentum != 0 else ()

    def update_step(self, g, w, slots, lr, local_step):
        if not self.momentum:
            return w - g * lr, {}
        m = -g * lr + slots["momentum"] * self.momentum
        if self.nesterov:
            return w + (-g * lr + m * self.momentum), {"momentum": m}
        return w + m, {"momentum": m}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
