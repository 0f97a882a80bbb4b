"""Keras's Adadelta."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Adadelta(Optimizer):
    def __init__(
        self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7, **kwargs
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def slot_names(self):
        return ("accumulated_grad", "accumulated_delta_var")

    def update_step(self, g, w, slots, lr, local_step):
        rho = self.rho

        def rms(x):
            return B.sqrt(x + self.epsilon)

        grads = rho * slots["accumulated_grad"] + (1 - rho) * B.square(g)
        delta = -(rms(slots["accumulated_delta_var"]) * g) / rms(grads)
        deltas = rho * slots["accumulated_delta_var"] + (1 - rho) * B.square(delta)
        return w + lr * delta, {"accumulated_grad": grads, "accumulated_delta_var": deltas}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
