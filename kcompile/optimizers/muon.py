"""Keras's Muon (Jordan et al., 2024; Liu et al., 2025, "Muon is Scalable"): each
matrix's Nesterov momentum is orthogonalized by Newton-Schulz iterations, the update
scaled by sqrt(max(rows, columns)) · ``rms_rate``; the other variables (not 2-D, an
embedding's, or whose path matches ``exclude_layers``) take AdamW's step, with
``adam_weight_decay`` and the rate times ``adam_lr_ratio``.

Which rule a variable takes is decided from the variable when the optimizer is built,
and the update rule sees it in the slots: a Muon variable's ``velocity`` slot is a
scalar that is never read or written (Keras keeps no velocity for it), an AdamW
variable's has its shape. Weight decay is per rule, so it is applied here rather than
by the base class, in Keras's order (before the step, at the step's rate).
"""

from __future__ import annotations

import re
from typing import Any

from kcompile.backend.variables import Variable
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.optimizers.optimizer import Optimizer


class Muon(Optimizer):
    def __init__(
        self,
        learning_rate: float = 0.001,
        adam_beta_1: float = 0.9,
        adam_beta_2: float = 0.999,
        adam_weight_decay: float | None = 0.004,
        epsilon: float = 1e-7,
        weight_decay: float | None = 0.004,
        exclude_layers: list[str] | None = None,
        exclude_embeddings: bool = True,
        muon_a: float = 3.4445,
        muon_b: float = -4.7750,
        muon_c: float = 2.0315,
        adam_lr_ratio: float = 1,
        momentum: float = 0.95,
        ns_steps: int = 5,
        nesterov: bool = True,
        rms_rate: float | None = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, weight_decay=None, **kwargs)
        self.muon_weight_decay = weight_decay
        self.adam_beta_1, self.adam_beta_2 = adam_beta_1, adam_beta_2
        self.adam_weight_decay, self.epsilon = adam_weight_decay, epsilon
        self.exclude_layers = list(exclude_layers or [])
        self.exclude_embeddings = exclude_embeddings
        self.muon_a, self.muon_b, self.muon_c = muon_a, muon_b, muon_c
        self.adam_lr_ratio, self.momentum = adam_lr_ratio, momentum
        self.ns_steps, self.nesterov, self.rms_rate = ns_steps, nesterov, rms_rate

    def should_use_adamw(self, variable: Variable) -> bool:
        """Keras's routing: AdamW for variables that are not 2-D, embeddings' (when
        ``exclude_embeddings``) and paths matching an ``exclude_layers`` pattern."""
        if len(variable.shape) != 2:
            return True
        if self.exclude_embeddings and "embedding" in variable.path.lower():
            return True
        return any(re.search(keyword, variable.path) for keyword in self.exclude_layers)

    def slot_names(self):
        return ("momentum", "velocity")

    def slot_shape(self, var: Variable, slot: str) -> tuple:
        if slot == "velocity" and not self.should_use_adamw(var):
            return ()  # a Muon variable keeps no velocity
        return var.shape

    def update_step(self, g, w, slots, lr, local_step):
        adamw = len(w.shape) != 2 or slots["velocity"].shape == w.shape
        decay = self.adam_weight_decay if adamw else self.muon_weight_decay
        if decay:  # Keras's decay uses the step's rate, before adam_lr_ratio
            w = w - w * decay * lr
        if adamw:
            return self._adamw_step(g, w, slots, lr * self.adam_lr_ratio, local_step)
        m = slots["momentum"] + (g + slots["momentum"] * (self.momentum - 1.0))
        direction = g + m * self.momentum if self.nesterov else m
        update = lr * self._orthogonalize(direction)
        if self.rms_rate is not None:
            update = update * (max(w.shape[0], w.shape[1]) ** 0.5 * self.rms_rate)
        return w - update, {"momentum": m, "velocity": slots["velocity"]}

    def _adamw_step(self, g, w, slots, lr, local_step):
        b1_power = B.power(B.const(w.graph, self.adam_beta_1, w.dtype), local_step)
        b2_power = B.power(B.const(w.graph, self.adam_beta_2, w.dtype), local_step)
        alpha = lr * B.sqrt(1.0 - b2_power) / (1.0 - b1_power)
        m = slots["momentum"] + (g - slots["momentum"]) * (1.0 - self.adam_beta_1)
        v = slots["velocity"] + (B.square(g) - slots["velocity"]) * (1.0 - self.adam_beta_2)
        return w - (m * alpha) / (B.sqrt(v) + self.epsilon), {"momentum": m, "velocity": v}

    def _orthogonalize(self, x: Value) -> Value:
        """Keras's ``zeropower_via_newtonschulz5``: x scaled to Frobenius norm ≤ 1, then
        ``ns_steps`` quintic iterations x ← a·x + (b·A + c·A·A)·x, A = x·xᵀ, on the wide
        orientation of the matrix."""
        tall = x.shape[0] > x.shape[1]
        if tall:
            x = B.transpose(x, (1, 0))
        x = x / (B.sqrt(B.reduce_sum(B.square(x))) + 1e-7)
        a, b, c = self.muon_a, self.muon_b, self.muon_c
        for _ in range(self.ns_steps):
            gram = B.matmul(x, x, transpose_b=True)
            poly = gram * b + B.matmul(gram, gram) * c
            x = x * a + B.matmul(poly, x)
        return B.transpose(x, (1, 0)) if tall else x

    def get_config(self):
        return {
            **super().get_config(),
            "weight_decay": self.muon_weight_decay,
            "adam_beta_1": self.adam_beta_1,
            "adam_beta_2": self.adam_beta_2,
            "epsilon": self.epsilon,
            "exclude_layers": self.exclude_layers,
            "muon_a": self.muon_a,
            "muon_b": self.muon_b,
            "muon_c": self.muon_c,
            "adam_lr_ratio": self.adam_lr_ratio,
            "momentum": self.momentum,
            "ns_steps": self.ns_steps,
            "nesterov": self.nesterov,
            "exclude_embeddings": self.exclude_embeddings,
            "adam_weight_decay": self.adam_weight_decay,
            "rms_rate": self.rms_rate,
        }
