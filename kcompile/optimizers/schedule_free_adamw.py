"""Keras's ScheduleFreeAdamW (Defazio et al., 2024, "The Road Less Scheduled"): AdamW
without a learning-rate schedule. The ``momentum`` slot holds the fast sequence z
(starting at the weights), and the weights hold y, the interpolation of z and the
running average x, which is recovered from y and z each step; as in Keras, the model
trains and evaluates at y.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.variables import Variable
from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class ScheduleFreeAdamW(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.0025,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        warmup_steps: int = 0,
        weight_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.warmup_steps = warmup_steps

    def slot_names(self):
        return ("momentum", "velocity")

    def build(self, variables: list[Variable]) -> None:
        """Keras's: z starts as a copy of each weight (as it is when training starts)."""
        new = [v for v in variables if self.slot_path(v, "momentum") not in self.slots]
        super().build(variables)
        for var in new:
            self.slots[self.slot_path(var, "momentum")][...] = np.asarray(var.value)

    def update_step(self, g, w, slots, lr, local_step):
        beta_1, beta_2 = self.beta_1, self.beta_2
        if self.warmup_steps > 0:
            lr = lr * B.minimum(local_step * (1.0 / self.warmup_steps), 1.0)
        z_old = slots["momentum"]
        v = slots["velocity"] + (B.square(g) - slots["velocity"]) * (1.0 - beta_2)
        bias_correction = 1.0 - B.power(B.const(w.graph, beta_2, w.dtype), local_step)
        denominator = B.sqrt(v / bias_correction) + self.epsilon
        z = z_old - (lr * g) / denominator
        weight = 1.0 / local_step
        x_old = (w - z_old * (1.0 - beta_1)) / beta_1
        x = x_old * (1.0 - weight) + z * weight
        return z * (1.0 - beta_1) + x * beta_1, {"momentum": z, "velocity": v}

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "warmup_steps": self.warmup_steps,
        }
