"""Keras's Lamb: Adam's bias-corrected step, scaled by the trust ratio of the variable's
norm to the step's norm (per variable)."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Lamb(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def slot_names(self):
        return ("momentum", "velocity")

    def update_step(self, g, w, slots, lr, local_step):
        b1_power = B.power(B.const(w.graph, self.beta_1, w.dtype), local_step)
        b2_power = B.power(B.const(w.graph, self.beta_2, w.dtype), local_step)
        m = slots["momentum"] + (g - slots["momentum"]) * (1.0 - self.beta_1)
        v = slots["velocity"] + (B.square(g) - slots["velocity"]) * (1.0 - self.beta_2)
        update = (m / (1.0 - b1_power)) / (B.sqrt(v / (1.0 - b2_power)) + self.epsilon)
        w_norm = B.sqrt(B.reduce_sum(B.square(w)))
        g_norm = B.sqrt(B.reduce_sum(B.square(update)))
        one = B.const(w.graph, 1.0, w.dtype)
        ratio = B.select(B.gt(w_norm, 0.0), B.select(B.gt(g_norm, 0.0), w_norm / g_norm, one), one)
        return w - ratio * lr * update, {"momentum": m, "velocity": v}

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
