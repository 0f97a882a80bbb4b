"""Keras's ``Optimizer`` base: state (slots, iterations, the learning rate or its
schedule), gradient clipping, weight decay, the moving average (``use_ema``) and gradient
accumulation, around each optimizer's ``update_step`` written as IR.

The learning rate and the iteration count are inputs of the train step, so a
schedule or callback can change the rate without recompiling. Each optimizer's rule
follows the order of operations of Keras 3's ``update_step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import ir_dtype
from kcompile.backend.session import auto_name
from kcompile.backend.variables import Variable, rounded, stable_array
from kcompile.ir import DType, TensorType, Value
from kcompile.ir import build as B
from kcompile.optimizers.schedules import learning_rate_schedule as schedules


class Optimizer:
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
        self.loss_scale_factor = None if loss_scale_factor is None else float(loss_scale_factor)
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
        self.name = name or auto_name(type(self))
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
            return float(self.schedule(self.step_count))
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
        """Updates applied, as Keras's ``iterations``: with ``gradient_accumulation_steps``
        N, the steps taken // N (``step_count`` is the steps themselves)."""
        steps = self.step_count
        return (
            steps // self.gradient_accumulation_steps if self.gradient_accumulation_steps else steps
        )

    @iterations.setter
    def iterations(self, value: int) -> None:
        self.step_count = value * (self.gradient_accumulation_steps or 1)

    @property
    def step_count(self) -> int:
        """Steps taken (Keras's ``_iterations`` variable: what files hold and learning
        rate schedules read)."""
        return int(self._iterations)

    @step_count.setter
    def step_count(self, value: int) -> None:
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
        built = getattr(self, "_built_variables", [])
        self._built_variables = built + [v for v in variables if v not in built]
        for var in variables:
            for slot in self.all_slots():
                path = self.slot_path(var, slot)
                if path not in self.slots:
                    start = np.full(self.slot_shape(var, slot), self.slot_initial(slot))
                    # Keras makes a weight's slots in its dtype (bfloat16 for a bf16 weight).
                    self.slots[path] = stable_array(rounded(start, var.dtype), np.float32)
        self.built = True

    @property
    def variables(self) -> list[np.ndarray]:
        return [self._iterations, self._learning_rate, *self.slots.values()]

    # --- Keras's update calls, inside a model's own train_step ------------------------

    def apply(self, grads: list, trainable_variables: list | None = None) -> None:
        """Keras's: update ``trainable_variables`` (by default those the optimizer was
        built with) with ``grads``, inside a traced ``train_step``."""
        _step_context(self, "apply").apply_optimizer(self, list(grads), trainable_variables)

    def apply_gradients(self, grads_and_vars) -> None:
        """Keras's: ``apply`` of (gradient, variable) pairs."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def stateless_apply(self, optimizer_variables: list, grads: list, trainable_variables: list):
        """JAX's form of ``apply`` inside a traced ``train_step(self, state, data)``:
        (new trainable values, new ``optimizer_variables``)."""
        ctx = _step_context(self, "stateless_apply")
        return ctx.stateless_apply(self, optimizer_variables, grads, trainable_variables)

    # --- the update as IR -----------------------------------------------------

    def apply_ir(
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
                    g + slot(self.slot_path(var, "gradient_accumulator"))
                    for (var, _, _), g in zip(params, self.unscale([g for _, _, g in params]))
                ]
                grads = self.clip([total * (1.0 / steps) for total in sums])
            else:
                grads = self.clip(self.unscale([g for _, _, g in params]))
            local_step = B.cast(counted + i32(1), DType.f32)
        updates: dict[str, Value] = {"iterations": next_iterations}
        for i, ((var, w, _), g) in enumerate(zip(params, grads)):
            with w.graph.layer_scope(f"{self.name}/{var.path}"):
                # Keras's rules compute in the variable's dtype: a bfloat16 weight's
                # gradient, slots, rate and step count are cast to bfloat16 and every op
                # of its update rounds (held in float32 arrays, which take them exactly).
                dtype = ir_dtype(var.dtype)
                w, g, w_lr, w_step = (B.cast(x, dtype) for x in (w, g, lr, local_step))
                old_w = w
                if self.weight_decay:
                    w = w - w * self.weight_decay * w_lr
                slots = {s: B.cast(slot(self.slot_path(var, s)), dtype) for s in self.all_slots()}
                new_w, new_slots = self.update_step(g, w, slots, w_lr, w_step)
                if due is not None:  # between updates nothing moves but the gradient sum
                    new_w = B.select(due, new_w, old_w)
                    new_slots = {k: B.select(due, v, slots[k]) for k, v in new_slots.items()}
                    new_slots["gradient_accumulator"] = B.select(due, 0.0, sums[i])
                if self.use_ema:
                    new_w, new_slots["average"] = self._moving_average(
                        new_w, slots["average"], counted
                    )
                if var.constraint is not None:  # Keras's: after the update, every step
                    new_w = B.cast(_constrained(var, new_w), dtype)
            updates[var.path] = B.cast(new_w, DType.f32)
            for s, v in new_slots.items():
                updates[self.slot_path(var, s)] = B.cast(B.cast(v, dtype), DType.f32)
        return updates

    def _moving_average(self, w: Value, average: Value, iterations: Value):
        """Keras's EMA of a weight after its update (the first step copies it), and the
        weight, replaced by its average every ``ema_overwrite_frequency`` steps."""
        first = B.cast(B.eq(iterations, B.const(iterations.graph, 0, DType.i32)), w.dtype)
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
            if path in self.slots and self.step_count > 0:
                var.assign(self.slots[path])

    # --- loss scaling (Keras's ``loss_scale_factor``) ------------------------------------

    def scale_loss(self, loss: Any) -> Any:
        """Keras's: the loss times ``loss_scale_factor`` (the gradients of the scaled loss
        are divided by it again before the update), else the loss."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    def scale_loss_ir(self, loss: Value, state_value) -> Value:
        """``scale_loss`` inside the train step; ``state_value(path)`` reads an optimizer
        array of the step (a loss scale kept as state)."""
        return self.scale_loss(loss)

    def unscale(self, grads: list[Value]) -> list[Value]:
        """The gradients of the scaled loss divided by the scale, as Keras's ``apply``
        does first."""
        if self.loss_scale_factor is None:
            return grads
        return [B.div(g, self.loss_scale_factor) for g in grads]

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

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None):
        """Keras's: the optimizer ``get_config`` describes."""
        return cls(**config)

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
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }


def _constrained(var: Variable, value: Value) -> Value:
    """``var.constraint`` (written with keras.ops) of its updated value, traced."""
    from kcompile.backend.symbolic import TracedTensor

    out = var.constraint(TracedTensor(value))
    if not isinstance(out, TracedTensor) or out.shape != TracedTensor(value).shape:
        raise ValueError(
            f"the constraint of variable {var.path} must return a tensor of its shape "
            f"{var.shape}, got {out!r}"
        )
    return B.cast(out.value, DType.f32)


def _step_context(optimizer: Optimizer, method: str):
    from kcompile.backend.symbolic import current_context

    ctx = current_context()
    if not getattr(ctx, "records_metrics", False):
        raise NotImplementedError(
            f"{optimizer.name}.{method}(...) updates weights inside a model's train_step, "
            "which fit() traces and compiles; kcompile does not run an optimizer on arrays "
            "outside one (write the loop as a train_step and call fit or train_on_batch)"
        )
    return ctx


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Keras's form of an optimizer: {"module", "class_name", "config", "registered_name"}."""
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"keras.optimizers.serialize: expected an Optimizer, got {optimizer!r}")
    return {
        "module": "keras.optimizers",
        "class_name": type(optimizer).__name__,
        "config": optimizer.get_config(),
        "registered_name": None,
    }


def deserialize(config: Any, custom_objects: dict | None = None) -> Optimizer:
    """An optimizer from ``serialize``'s form: its class found by name among the
    Optimizer classes (kcompile's, and a user's subclasses), or in ``custom_objects``."""
    if not (isinstance(config, dict) and "class_name" in config):
        raise ValueError(f"keras.optimizers.deserialize: expected a config dict, got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _optimizer_classes().get(name)
    if cls is None:
        known = ", ".join(sorted(n for n in _optimizer_classes() if not n.startswith("_")))
        raise ValueError(f"unknown optimizer class {name!r}; known: {known}")
    return cls.from_config(dict(config.get("config", {})), custom_objects)


def _optimizer_classes() -> dict[str, type[Optimizer]]:
    found: dict[str, type[Optimizer]] = {}
    todo = [Optimizer]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found
