"""Keras's Lion: the sign of an interpolated momentum."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Lion(Optimizer):
    def __init__(
        self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.99, **kwargs
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        if not 0 < beta_1 <= 1:
            raise ValueError(f"Lion: beta_1 must be in (0, 1], got {beta_1}")
        self.beta_1, self.beta_2 = beta_1, beta_2

    def slot_names(self):
        return ("momentum",)

    def update_step(self, g, w, slots, lr, local_step):
        m = slots["momentum"]
        step = B.sign(m * self.beta_1 + g * (1.0 - self.beta_1))
        return w - lr * step, {"momentum": m * self.beta_2 + g * (1.0 - self.beta_2)}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
