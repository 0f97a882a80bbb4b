"""``keras.optimizers.schedules``: learning rates as functions of the step, written with
``keras.ops`` as Keras's are, so the train step computes the rate from its iteration
count in native code (and a user's ``LearningRateSchedule`` subclass is traced alike);
called with a number, a schedule computes eagerly."""

from __future__ import annotations

import math
from typing import Any

from kcompile import ops

# sin(y) = y·(1 - y²/3! + y⁴/5! - ...), to y¹⁵: below 1e-11 on [-π/2, π/2].
_SIN = [(-1) ** k / math.factorial(2 * k + 1) for k in range(8)]


def cos_pi(fraction):
    """cos(π·fraction) for fraction in [0, 1], as -sin(π·fraction - π/2) by its Taylor
    polynomial (there is no cosine primitive)."""
    y = fraction * math.pi - math.pi / 2
    y2 = y * y
    total = _SIN[-1]
    for c in reversed(_SIN[:-1]):
        total = total * y2 + c
    return -(total * y)


class LearningRateSchedule:
    """Keras's base class: subclasses define ``__call__(self, step)`` with keras.ops."""

    def __call__(self, step):
        raise NotImplementedError(
            f"learning rate schedule {type(self).__name__} must override __call__(self, step)"
        )

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must override get_config()")

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)


def _config(schedule, *names: str) -> dict[str, Any]:
    return {name: getattr(schedule, name) for name in names}


def _step(step):
    return ops.cast(step, "float32")


class _StepDecay(LearningRateSchedule):
    """A rate decaying with step / decay_steps (floored with ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        if decay_steps <= 0:
            raise ValueError(f"{type(self).__name__}: decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase = decay_rate, staircase
        self.name = name or type(self).__name__

    def progress(self, step):
        p = _step(step) / float(self.decay_steps)
        return ops.floor(p) if self.staircase else p

    def get_config(self):
        return _config(
            self, "initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name"
        )


class ExponentialDecay(_StepDecay):
    def __call__(self, step):
        return self.initial_learning_rate * ops.power(float(self.decay_rate), self.progress(step))


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: boundaries must be one shorter than values, got "
                f"{len(boundaries)} and {len(values)}"
            )
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step):
        step = _step(step)
        b, v = self.boundaries, self.values
        result = ops.cast(step <= float(b[0]), "float32") * float(v[0])
        result = result + ops.cast(step > float(b[-1]), "float32") * float(v[-1])
        for low, high, value in zip(b[:-1], b[1:], v[1:-1]):
            inside = ops.logical_and(step > float(low), step <= float(high))
            result = result + ops.cast(inside, "float32") * float(value)
        return result

    def get_config(self):
        return _config(self, "boundaries", "values", "name")


class PolynomialDecay(LearningRateSchedule):
    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name="PolynomialDecay",
    ):
        if decay_steps <= 0:
            raise ValueError(f"PolynomialDecay: decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.end_learning_rate, self.power, self.cycle = end_learning_rate, power, cycle
        self.name = name

    def __call__(self, step):
        step = _step(step)
        steps = float(self.decay_steps)
        if self.cycle:
            multiplier = ops.where(ops.equal(step, 0.0), 1.0, ops.ceil(step / steps))
            decay_steps = steps * multiplier
        else:
            step, decay_steps = ops.minimum(step, steps), steps
        p = step / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return span * ops.power(1.0 - p, float(self.power)) + self.end_learning_rate

    def get_config(self):
        names = ("initial_learning_rate", "decay_steps", "end_learning_rate", "power", "cycle")
        return _config(self, *names, "name")


class InverseTimeDecay(_StepDecay):
    def __call__(self, step):
        return self.initial_learning_rate / (1.0 + float(self.decay_rate) * self.progress(step))


class CosineDecay(LearningRateSchedule):
    """Cosine decay to ``alpha`` of the rate over ``decay_steps``, after an optional linear
    warmup to ``warmup_target`` over ``warmup_steps``."""

    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name="CosineDecay",
        warmup_target=None,
        warmup_steps=0,
    ):
        if decay_steps <= 0:
            raise ValueError(f"CosineDecay: decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps, self.alpha = (
            initial_learning_rate,
            decay_steps,
            alpha,
        )
        self.name, self.warmup_target, self.warmup_steps = name, warmup_target, warmup_steps

    def _decay(self, step, decay_from):
        fraction = step / float(self.decay_steps)
        cosine = 0.5 * (1.0 + cos_pi(fraction))
        return decay_from * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = _step(step)
        if self.warmup_target is None:
            return self._decay(
                ops.minimum(step, float(self.decay_steps)), self.initial_learning_rate
            )
        warmup = float(self.warmup_steps)
        step = ops.minimum(step, float(self.decay_steps) + warmup)
        rising = (self.warmup_target - self.initial_learning_rate) * (
            step / max(warmup, 1e-30)
        ) + self.initial_learning_rate
        falling = self._decay(ops.maximum(step - warmup, 0.0), self.warmup_target)
        return ops.where(step < warmup, rising, falling)

    def get_config(self):
        names = ("initial_learning_rate", "decay_steps", "alpha", "name")
        return _config(self, *names, "warmup_target", "warmup_steps")


class CosineDecayRestarts(LearningRateSchedule):
    def __init__(
        self,
        initial_learning_rate,
        first_decay_steps,
        t_mul=2.0,
        m_mul=1.0,
        alpha=0.0,
        name="SGDRDecay",
    ):
        if first_decay_steps <= 0:
            raise ValueError(
                f"CosineDecayRestarts: first_decay_steps must be > 0, got {first_decay_steps}"
            )
        self.initial_learning_rate, self.first_decay_steps = (
            initial_learning_rate,
            first_decay_steps,
        )
        self._t_mul, self._m_mul, self.alpha, self.name = t_mul, m_mul, alpha, name

    def __call__(self, step):
        fraction = _step(step) / float(self.first_decay_steps)
        t_mul = float(self._t_mul)
        if t_mul == 1.0:
            restart = ops.floor(fraction)
            fraction = fraction - restart
        else:
            restart = ops.floor(ops.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
            sum_r = (1.0 - ops.power(t_mul, restart)) / (1.0 - t_mul)
            fraction = (fraction - sum_r) / ops.power(t_mul, restart)
        m_fac = ops.power(float(self._m_mul), restart)
        cosine = 0.5 * m_fac * (1.0 + cos_pi(fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return dict(
            initial_learning_rate=self.initial_learning_rate,
            first_decay_steps=self.first_decay_steps,
            t_mul=self._t_mul,
            m_mul=self._m_mul,
            alpha=self.alpha,
            name=self.name,
        )


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Keras's serialized form of a schedule."""
    return {
        "module": "keras.optimizers.schedules",
        "class_name": type(schedule).__name__,
        "config": schedule.get_config(),
        "registered_name": None,
    }


def deserialize(config: dict[str, Any]) -> LearningRateSchedule:
    cls = globals().get(config["class_name"])
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise ValueError(f"unknown learning rate schedule {config['class_name']!r}")
    return cls.from_config(config["config"])


__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "serialize",
]
