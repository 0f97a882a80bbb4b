"""Keras optimizers: exact update rules and defaults, written as IR.

The learning rate and the iteration count are inputs of the train step, so a
schedule or callback can change the rate without recompiling. Each rule below
follows the order of operations of Keras 3's ``update_step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.variables import Variable, stable_array


class Optimizer:
    default_name = "optimizer"

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        if not isinstance(learning_rate, int | float):
            raise NotImplementedError(
                f"{type(self).__name__}: learning_rate must be a number; schedules are not "
                "supported yet (use the LearningRateScheduler callback)"
            )
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm may be set")
        self.name = name or self.default_name
        # Scalars the train step reads and (for iterations) updates in place.
        self._learning_rate = stable_array(np.float32(learning_rate), np.float32)
        self._learning_rate_value = float(learning_rate)
        self._iterations = stable_array(np.int32(0), np.int32)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.slots: dict[str, np.ndarray] = {}
        self.built = False

    @property
    def learning_rate(self) -> float:
        return self._learning_rate_value

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate_value = float(value)
        self._learning_rate[...] = value

    @property
    def iterations(self) -> int:
        return int(self._iterations)

    @iterations.setter
    def iterations(self, value: int) -> None:
        self._iterations[...] = value

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every array the train step binds: slots, ``iterations``, ``learning_rate``."""
        return {**self.slots, "iterations": self._iterations, "learning_rate": self._learning_rate}

    # --- state --------------------------------------------------------------

    def slot_names(self) -> tuple[str, ...]:
        return ()

    def slot_path(self, var: Variable, slot: str) -> str:
        return f"{self.name}/{var.path}/{slot}"

    def build(self, variables: list[Variable]) -> None:
        for var in variables:
            for slot in self.slot_names():
                path = self.slot_path(var, slot)
                if path not in self.slots:
                    self.slots[path] = stable_array(np.zeros(var.shape), np.float32)
        self.built = True

    @property
    def variables(self) -> list[np.ndarray]:
        return [self._iterations, self._learning_rate, *self.slots.values()]

    # --- the update as IR -----------------------------------------------------

    def apply(
        self, params: list[tuple[Variable, Value, Value]], slot_value, lr: Value, iterations: Value
    ) -> dict[str, Value]:
        """Updates for every (variable, value, gradient): new values by path, and the
        incremented ``iterations``."""
        with iterations.graph.layer_scope(self.name):
            grads = self.clip([g for _, _, g in params])
            next_iterations = iterations + B.const(iterations.graph, 1, DType.i32)
            local_step = B.cast(next_iterations, DType.f32)
        updates: dict[str, Value] = {"iterations": next_iterations}
        for (var, w, _), g in zip(params, grads):
            with w.graph.layer_scope(f"{self.name}/{var.path}"):
                if self.weight_decay:
                    w = w - w * self.weight_decay * lr
                slots = {s: slot_value(self.slot_path(var, s)) for s in self.slot_names()}
                new_w, new_slots = self.update_step(g, w, slots, lr, local_step)
            updates[var.path] = new_w
            for s, v in new_slots.items():
                updates[self.slot_path(var, s)] = v
        return updates

    def clip(self, grads: list[Value]) -> list[Value]:
        if self.clipnorm and self.clipnorm > 0:
            return [
                g * self.clipnorm / B.maximum(B.sqrt(B.reduce_sum(B.square(g))), self.clipnorm)
                for g in grads
            ]
        if self.global_clipnorm and self.global_clipnorm > 0:
            total = B.reduce_sum(B.square(grads[0]))
            for g in grads[1:]:
                total = total + B.reduce_sum(B.square(g))
            norm = B.sqrt(total)
            c = self.global_clipnorm
            scale = c * B.minimum(1.0 / norm, 1.0 / c)
            return [g * scale for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            v = self.clipvalue
            return [B.minimum(B.maximum(g, -v), v) for g in grads]
        return grads

    def update_step(
        self, g: Value, w: Value, slots: dict[str, Value], lr: Value, local_step: Value
    ) -> tuple[Value, dict[str, Value]]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }


class SGD(Optimizer):
    default_name = "SGD"  # as Keras names it

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


class Adam(Optimizer):
    default_name = "adam"  # as Keras names it

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
        b1_power = B.power(B.const(w.graph, self.beta_1), local_step)
        b2_power = B.power(B.const(w.graph, self.beta_2), local_step)
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


class AdamW(Adam):
    default_name = "adamw"  # as Keras names it

    def __init__(
        self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    default_name = "rmsprop"  # as Keras names it

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


_ALL = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier: Any) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str) and identifier.lower() in _ALL:
        return _ALL[identifier.lower()]()
    raise ValueError(
        f"unknown optimizer {identifier!r}; known optimizers: {', '.join(sorted(_ALL))}"
    )
