"""Keras's Adam, with its AMSGrad variant."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Adam(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def slot_names(self):
        return (
            ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")
        )

    def update_step(self, g, w, slots, lr, local_step):
        b1_power = B.power(B.const(w.graph, self.beta_1, w.dtype), local_step)
        b2_power = B.power(B.const(w.graph, self.beta_2, w.dtype), local_step)
        alpha = lr * B.sqrt(1.0 - b2_power) / (1.0 - b1_power)
        m = slots["momentum"] + (g - slots["momentum"]) * (1.0 - self.beta_1)
        v = slots["velocity"] + (B.square(g) - slots["velocity"]) * (1.0 - self.beta_2)
        new = {"momentum": m, "velocity": v}
        if self.amsgrad:
            v = new["velocity_hat"] = B.maximum(slots["velocity_hat"], v)
        # Keras adds epsilon to the uncorrected sqrt(v).
        return w - (m * alpha) / (B.sqrt(v) + self.epsilon), new

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }
