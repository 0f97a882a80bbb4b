"""Keras optimizers: exact update rules and defaults, written as IR.

The learning rate and the iteration count are inputs of the train step, so a
schedule or callback can change the rate without recompiling. Each rule below
follows the order of operations of Keras 3's ``update_step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.variables import Variable, stable_array
from kcompile.ir import DType, TensorType, Value
from kcompile.ir import build as B
from kcompile.optimizers.schedules import learning_rate_schedule as schedules


class Optimizer:
    default_name = "optimizer"

    def __init__(
        self,
        learning_rate: float = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        if loss_scale_factor:
            raise NotImplementedError(
                f"{type(self).__name__}: loss_scale_factor is not supported (kcompile computes "
                "in float32)"
            )
        if gradient_accumulation_steps is not None and not (
            isinstance(gradient_accumulation_steps, int) and gradient_accumulation_steps >= 2
        ):
            raise ValueError(
                "gradient_accumulation_steps must be an integer >= 2, got "
                f"{gradient_accumulation_steps!r}"
            )
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.use_ema, self.ema_momentum = bool(use_ema), float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.schedule = None
        if isinstance(learning_rate, dict) and "class_name" in learning_rate:
            learning_rate = schedules.deserialize(learning_rate)
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self.schedule, learning_rate = learning_rate, float(learning_rate(0))
        elif not isinstance(learning_rate, int | float | np.floating):
            raise TypeError(
                f"{type(self).__name__}: learning_rate must be a number or a "
                f"keras.optimizers.schedules.LearningRateSchedule, got {learning_rate!r}"
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
        """The rate of the next step (a schedule's value at the current iteration)."""
        if self.schedule is not None:
            return float(self.schedule(self.iterations))
        return self._learning_rate_value

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self.schedule is not None:
            raise TypeError(
                f"{type(self).__name__}: the learning rate comes from a schedule "
                f"({type(self.schedule).__name__}) and cannot be set"
            )
        self._learning_rate_value = float(value)
        self._learning_rate[...] = value

    def step_learning_rate(self, graph, iterations: Value) -> Value:
        """The rate inside the train step: the schedule traced at the iteration count
        (before this step's increment, as Keras's), else the bound ``learning_rate``."""
        if self.schedule is None:
            return graph.add_input("learning_rate", TensorType(DType.f32, ()), "opt")
        from kcompile.backend.symbolic import TracedTensor

        with graph.layer_scope(f"{self.name}/learning_rate"):
            rate = self.schedule(TracedTensor(iterations))
        value = getattr(rate, "value", None)
        if value is None:
            raise TypeError(
                f"schedule {type(self.schedule).__name__} returned {rate!r} for a traced step, "
                "not a tensor: write __call__(step) with keras.ops"
            )
        return B.cast(value, DType.f32)

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

    def all_slots(self) -> tuple[str, ...]:
        """The update rule's slots, then the weights' moving average (``use_ema``) and the
        gradient sum (``gradient_accumulation_steps``)."""
        extra = ("average",) if self.use_ema else ()
        if self.gradient_accumulation_steps:
            extra += ("gradient_accumulator",)
        return (*self.slot_names(), *extra)

    def slot_path(self, var: Variable, slot: str) -> str:
        return f"{self.name}/{var.path}/{slot}"

    def slot_shape(self, var: Variable, slot: str) -> tuple:
        """A slot's shape: the variable's (Nadam's running product is a scalar)."""
        return var.shape

    def slot_initial(self, slot: str) -> float:
        """A slot's starting value (Adagrad's and Ftrl's accumulators start above 0)."""
        return 0.0

    def build(self, variables: list[Variable]) -> None:
        for var in variables:
            for slot in self.all_slots():
                path = self.slot_path(var, slot)
                if path not in self.slots:
                    start = np.full(self.slot_shape(var, slot), self.slot_initial(slot))
                    self.slots[path] = stable_array(start, np.float32)
        self.built = True

    @property
    def variables(self) -> list[np.ndarray]:
        return [self._iterations, self._learning_rate, *self.slots.values()]

    # --- the update as IR -----------------------------------------------------

    def apply(
        self, params: list[tuple[Variable, Value, Value]], slot_value, lr: Value, iterations: Value
    ) -> dict[str, Value]:
        """Updates for every (variable, value, gradient): new values by path, and the
        incremented ``iterations``. With ``gradient_accumulation_steps`` N, Keras's rule:
        the gradients add up in a slot, and every Nth step updates with their mean (the
        update rules and the moving average count updates, iterations // N; a learning
        rate schedule counts steps)."""
        graph = iterations.graph
        made: dict[str, Value] = {}

        def slot(path: str) -> Value:
            if path not in made:
                made[path] = slot_value(path)
            return made[path]

        def i32(value: int) -> Value:
            return B.const(graph, value, DType.i32)

        with graph.layer_scope(self.name):
            next_iterations = iterations + i32(1)
            steps = self.gradient_accumulation_steps
            counted, due = iterations, None
            if steps:
                counted = B.div(iterations, i32(steps))  # updates made so far
                due = B.eq(
                    next_iterations - B.div(next_iterations, i32(steps)) * i32(steps), i32(0)
                )
                sums = [
                    g + slot(self.slot_path(var, "gradient_accumulator")) for var, _, g in params
                ]
                grads = self.clip([total * (1.0 / steps) for total in sums])
            else:
                grads = self.clip([g for _, _, g in params])
            local_step = B.cast(counted + i32(1), DType.f32)
        updates: dict[str, Value] = {"iterations": next_iterations}
        for i, ((var, w, _), g) in enumerate(zip(params, grads)):
            with w.graph.layer_scope(f"{self.name}/{var.path}"):
                old_w = w
                if self.weight_decay:
                    w = w - w * self.weight_decay * lr
                slots = {s: slot(self.slot_path(var, s)) for s in self.all_slots()}
                new_w, new_slots = self.update_step(g, w, slots, lr, local_step)
                if due is not None:  # between updates nothing moves but the gradient sum
                    new_w = B.select(due, new_w, old_w)
                    new_slots = {k: B.select(due, v, slots[k]) for k, v in new_slots.items()}
                    new_slots["gradient_accumulator"] = B.select(due, 0.0, sums[i])
                if self.use_ema:
                    new_w, new_slots["average"] = self._moving_average(
                        new_w, slots["average"], counted
                    )
            updates[var.path] = new_w
            for s, v in new_slots.items():
                updates[self.slot_path(var, s)] = v
        return updates

    def _moving_average(self, w: Value, average: Value, iterations: Value):
        """Keras's EMA of a weight after its update (the first step copies it), and the
        weight, replaced by its average every ``ema_overwrite_frequency`` steps."""
        first = B.cast(B.eq(iterations, B.const(iterations.graph, 0, DType.i32)), DType.f32)
        momentum = (1.0 - first) * self.ema_momentum
        average = momentum * average + (1.0 - momentum) * w
        if self.ema_overwrite_frequency:
            step = iterations + B.const(iterations.graph, 1, DType.i32)
            every = B.const(iterations.graph, int(self.ema_overwrite_frequency), DType.i32)
            due = B.eq(step - B.div(step, every) * every, B.const(iterations.graph, 0, DType.i32))
            w = B.select(due, average, w)
        return w, average

    def finalize_variable_values(self, variables: list[Variable]) -> None:
        """Keras's end of fit: with ``use_ema``, the weights become their moving averages."""
        if not (self.use_ema and self.built):
            return
        for var in variables:
            path = self.slot_path(var, "average")
            if path in self.slots and self.iterations > 0:
                var.assign(self.slots[path])

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
            "learning_rate": self.learning_rate
            if self.schedule is None
            else schedules.serialize(self.schedule),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
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


class Adagrad(Optimizer):
    default_name = "adagrad"

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def slot_names(self):
        return ("accumulator",)

    def slot_initial(self, slot):
        return self.initial_accumulator_value

    def update_step(self, g, w, slots, lr, local_step):
        accumulator = slots["accumulator"] + B.square(g)
        return w - (lr * g) / B.sqrt(accumulator + self.epsilon), {"accumulator": accumulator}

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class Adadelta(Optimizer):
    default_name = "adadelta"

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


class Adamax(Optimizer):
    default_name = "adamax"

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
        return ("momentum", "norm")

    def update_step(self, g, w, slots, lr, local_step):
        b1_power = B.power(B.const(w.graph, self.beta_1), local_step)
        m = slots["momentum"] + (g - slots["momentum"]) * (1 - self.beta_1)
        u = B.maximum(self.beta_2 * slots["norm"], B.abs(g))
        return w - (lr * m) / ((1 - b1_power) * (u + self.epsilon)), {"momentum": m, "norm": u}

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class Nadam(Adamax):
    """Keras's Nadam; its running product of the momentum schedule (one scalar in Keras)
    is kept as a scalar slot per variable, each updated alike."""

    default_name = "nadam"

    def slot_names(self):
        return ("momentum", "velocity", "u_product")

    def slot_shape(self, var, slot):
        return () if slot == "u_product" else var.shape

    def slot_initial(self, slot):
        return 1.0 if slot == "u_product" else 0.0

    def update_step(self, g, w, slots, lr, local_step):
        graph = w.graph
        decay = B.const(graph, 0.96)
        u_t = self.beta_1 * (1.0 - 0.5 * B.power(decay, local_step))
        u_t_1 = self.beta_1 * (1.0 - 0.5 * B.power(decay, local_step + 1.0))
        u_product_t = slots["u_product"] * u_t  # updated before the step, as Keras's
        u_product_t_1 = u_product_t * u_t_1
        b2_power = B.power(B.const(graph, self.beta_2), local_step)
        m = slots["momentum"] + (g - slots["momentum"]) * (1 - self.beta_1)
        v = slots["velocity"] + (B.square(g) - slots["velocity"]) * (1 - self.beta_2)
        m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
        v_hat = v / (1 - b2_power)
        new = {"momentum": m, "velocity": v, "u_product": u_product_t}
        return w - (m_hat * lr) / (B.sqrt(v_hat) + self.epsilon), new


class Ftrl(Optimizer):
    default_name = "ftrl"

    def __init__(
        self,
        learning_rate: float = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate, **kwargs)
        checks = {
            "initial_accumulator_value": initial_accumulator_value,
            "l1_regularization_strength": l1_regularization_strength,
            "l2_regularization_strength": l2_regularization_strength,
            "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
        }
        for what, value in checks.items():
            if value < 0:
                raise ValueError(f"Ftrl: {what} needs to be positive or zero, got {value}")
        if learning_rate_power > 0:
            raise ValueError(f"Ftrl: learning_rate_power must be <= 0, got {learning_rate_power}")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1 = l1_regularization_strength
        self.l2 = l2_regularization_strength
        self.l2_shrinkage = l2_shrinkage_regularization_strength
        self.beta = beta

    def slot_names(self):
        return ("accumulator", "linear")

    def slot_initial(self, slot):
        return self.initial_accumulator_value if slot == "accumulator" else 0.0

    def update_step(self, g, w, slots, lr, local_step):
        power = -self.learning_rate_power
        l2 = self.l2 + self.beta / (2.0 * lr)
        accum = slots["accumulator"]
        grad = g + 2 * self.l2_shrinkage * w
        new_accum = accum + B.square(g)
        linear = slots["linear"] + (
            grad - ((B.power(new_accum, power) - B.power(accum, power)) / lr) * w
        )
        quadratic = B.power(new_accum, power) / lr + 2 * l2
        clipped = B.minimum(B.maximum(linear, -self.l1), self.l1)
        return (clipped - linear) / quadratic, {"accumulator": new_accum, "linear": linear}

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1,
            "l2_regularization_strength": self.l2,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage,
            "beta": self.beta,
        }


class Lion(Optimizer):
    default_name = "lion"

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


_ALL = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "adamax": Adamax,
    "nadam": Nadam,
    "ftrl": Ftrl,
    "lion": Lion,
}


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
