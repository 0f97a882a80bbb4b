"""Keras's RMSprop, plain or centered, with optional momentum."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def slot_names(self):
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def update_step(self, g, w, slots, lr, local_step):
        rho = self.rho
        v = rho * slots["velocity"] + (1.0 - rho) * B.square(g)
        new = {"velocity": v}
        if self.centered:
            avg = new["average_gradient"] = rho * slots["average_gradient"] + (1.0 - rho) * g
            denominator = v - B.square(avg) + self.epsilon
        else:
            # Keras 3: epsilon goes inside the square root.
            denominator = v + self.epsilon
        increment = (lr * g) / B.sqrt(denominator)
        if self.momentum > 0:
            m = new["momentum"] = self.momentum * slots["momentum"] + increment
            return w - m, new
        return w - increment, new

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
