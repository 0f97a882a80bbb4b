"""Keras's Nadam: Adam with Nesterov momentum."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.optimizers.adamax import Adamax


class Nadam(Adamax):
    """Keras's Nadam; its running product of the momentum schedule (one scalar in Keras)
    is kept as a scalar slot per variable, each updated alike."""

    def slot_names(self):
        return ("momentum", "velocity", "u_product")

    def slot_shape(self, var, slot):
        return () if slot == "u_product" else var.shape

    def slot_initial(self, slot):
        return 1.0 if slot == "u_product" else 0.0

    def update_step(self, g, w, slots, lr, local_step):
        graph = w.graph
        decay = B.const(graph, 0.96, w.dtype)
        u_t = self.beta_1 * (1.0 - 0.5 * B.power(decay, local_step))
        u_t_1 = self.beta_1 * (1.0 - 0.5 * B.power(decay, local_step + 1.0))
        u_product_t = slots["u_product"] * u_t  # updated before the step, as Keras's
        u_product_t_1 = u_product_t * u_t_1
        b2_power = B.power(B.const(graph, self.beta_2, w.dtype), local_step)
        m = slots["momentum"] + (g - slots["momentum"]) * (1 - self.beta_1)
        v = slots["velocity"] + (B.square(g) - slots["velocity"]) * (1 - self.beta_2)
        m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
        v_hat = v / (1 - b2_power)
        new = {"momentum": m, "velocity": v, "u_product": u_product_t}
        return w - (m_hat * lr) / (B.sqrt(v_hat) + self.epsilon), new
