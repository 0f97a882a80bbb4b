"""Keras's Adafactor: second moments factored into row and column means for variables
of rank 2 and more (the last two axes), a step relative to the variable's RMS."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


def _rms(x):
    return B.sqrt(B.mean(B.square(x)))


class Adafactor(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        relative_step: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_2_decay, self.epsilon_1, self.epsilon_2 = beta_2_decay, epsilon_1, epsilon_2
        self.clip_threshold, self.relative_step = clip_threshold, relative_step

    def slot_names(self):
        return ("r", "c", "velocity")

    def slot_shape(self, var, slot):
        """Keras's: r drops the last axis, c the one before it; both are placeholder
        scalars for variables of rank below 2."""
        shape = tuple(var.shape)
        if slot == "velocity":
            return shape
        if len(shape) < 2:
            return ()
        return shape[:-1] if slot == "r" else (*shape[:-2], shape[-1])

    def update_step(self, g, w, slots, lr, local_step):
        # Keras's rho is min(lr, 1/sqrt(t)) whether or not relative_step caps lr first.
        rho = B.minimum(lr, 1.0 / B.sqrt(local_step))
        alpha = B.maximum(B.const(w.graph, self.epsilon_2, w.dtype), _rms(w)) * rho
        regulated = B.square(g) + self.epsilon_1
        beta_2 = 1.0 - B.power(local_step, B.const(w.graph, self.beta_2_decay, w.dtype))
        new = dict(slots)
        if w.rank >= 2:
            r = beta_2 * slots["r"] + (1.0 - beta_2) * B.mean(regulated, -1)
            c = beta_2 * slots["c"] + (1.0 - beta_2) * B.mean(regulated, -2)
            row = r / B.mean(r, -1, keepdims=True)
            v = B.reshape(row, (*row.shape, 1)) * B.reshape(c, (*c.shape[:-1], 1, c.shape[-1]))
            new.update(r=r, c=c, velocity=v)
        else:
            v = new["velocity"] = beta_2 * slots["velocity"] + (1.0 - beta_2) * regulated
        u = g / B.sqrt(v)
        u_hat = u / B.maximum(B.const(w.graph, 1.0, w.dtype), _rms(u) / self.clip_threshold)
        return w - alpha * u_hat, new

    def get_config(self):
        return {
            **super().get_config(),
            "beta_2_decay": self.beta_2_decay,
            "epsilon_1": self.epsilon_1,
            "epsilon_2": self.epsilon_2,
            "clip_threshold": self.clip_threshold,
            "relative_step": self.relative_step,
        }
