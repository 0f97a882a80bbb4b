"""Keras's ``MultiOptimizer`` and ``OptimizerMap``: each trainable variable updated by
the optimizer a map (variable path patterns) or a function gives it.

The train step traces each inner optimizer's ``apply_ir`` on its own variables, with its
own iteration count and learning rate (or schedule), as Keras's ``apply`` dispatches
each optimizer's ``apply``; the wrapper's own count is the step's ``iterations``. The
inner optimizers' counts and rates are arrays of the step as their slots are, by path
(``<name>/iterations``, ``<name>/learning_rate``), so a callback or a loaded file can
change them without recompiling.

In Keras's weights files a MultiOptimizer writes every variable twice, as Keras 3.15
does: all of them under ``optimizer/vars`` (its own count and rate first, then each inner
optimizer's in order), and each inner optimizer's under ``optimizer/optimizers/<its
class in snake case, numbered>/vars`` (``keras_groups``, ``restore_keras_arrays``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from kcompile.backend.session import snake_case
from kcompile.backend.variables import Variable
from kcompile.ir import DType, TensorType, Value
from kcompile.ir import build as B
from kcompile.optimizers.loss_scale_optimizer import LossScaleOptimizer
from kcompile.optimizers.optimizer import Optimizer


def _serialize(obj: Any) -> Any:
    from kcompile.saving import serialization_lib

    return serialization_lib.serialize_keras_object(obj)


def _deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """A serialized object made again; an object already made (a config deserialized on
    the way in, as ``deserialize_keras_object`` does) as it is."""
    if not isinstance(config, dict | str):
        return config
    from kcompile.saving import serialization_lib

    return serialization_lib.deserialize_keras_object(config, custom_objects=custom_objects)


class OptimizerMap(MutableMapping):
    """Keras's: variable paths, or regular expressions matching whole paths, to
    optimizers; ``default_optimizer`` for a path no key matches."""

    def __init__(self, default_optimizer: Optimizer, optimizer_map: dict | None = None) -> None:
        if not isinstance(default_optimizer, Optimizer):
            raise TypeError(
                "default_optimizer must be a Keras Optimizer instance. "
                f"Received: {default_optimizer}"
            )
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise TypeError(f"optimizer_map must be a dictionary. Received: {optimizer_map}")
        self._default_optimizer = default_optimizer
        self._optimizer_map = optimizer_map or {}

    @property
    def default_optimizer(self) -> Optimizer:
        return self._default_optimizer

    def __getitem__(self, key: str) -> Optimizer:
        """The optimizer of ``key``: its exact entry, else the one key that matches it
        whole as a regular expression, else the default one."""
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matching = [p for p in self._optimizer_map if re.fullmatch(p, key)]
        if len(matching) > 1:
            raise ValueError(f"Multiple optimizers assigned to variable {key}.")
        if matching:
            return self._optimizer_map[matching[0]]
        return self.default_optimizer

    def __setitem__(self, key: str, optimizer: Optimizer) -> None:
        if key in self._optimizer_map:
            raise ValueError(
                f"'{key}' already exists in the OptimizerMap with value "
                f"{self._optimizer_map[key]}. Please make sure to not use duplicated keys."
            )
        if not isinstance(key, str):
            raise ValueError(f"key must be a string. Received: {key}")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a Keras Optimizer instance. Received: {optimizer}")
        if isinstance(optimizer, LossScaleOptimizer):
            raise ValueError("optimizer cannot be LossScaleOptimizer.")
        if isinstance(optimizer, MultiOptimizer):
            raise ValueError("optimizer cannot be MultiOptimizer.")
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key: str) -> None:
        del self._optimizer_map[key]

    def __len__(self) -> int:
        return len(self._optimizer_map)

    def __iter__(self) -> Iterator[str]:
        return iter(self._optimizer_map)

    def __call__(self, variable: Variable) -> Optimizer:
        return self[variable.path]

    def get_config(self) -> dict[str, Any]:
        return {
            "default_optimizer": _serialize(self._default_optimizer),
            "optimizer_map": _serialize(self._optimizer_map),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None):
        default = _deserialize(config["default_optimizer"], custom_objects)
        mapping = config.get("optimizer_map")
        if mapping is not None:
            mapping = {k: _deserialize(v, custom_objects) for k, v in mapping.items()}
        return cls(default, mapping)


class MultiOptimizer(Optimizer):
    """Keras's: delegates each variable to the optimizer ``optimizer_map`` (an
    ``OptimizerMap``, or a function of the variable) gives it. ``loss_scale_factor``
    overrides the inner optimizers' own. It has no learning rate of its own: set and read
    each inner optimizer's (``optimizers``)."""

    def __init__(
        self,
        optimizer_map: OptimizerMap | Callable[[Variable], Optimizer],
        loss_scale_factor: float | None = None,
        name: str | None = None,
    ) -> None:
        optimizer_map = _deserialize(optimizer_map)  # a config's, serialized
        if not callable(optimizer_map):
            raise TypeError(
                "MultiOptimizer: optimizer_map must be an OptimizerMap or a function of a "
                f"variable returning its Optimizer. Received: {optimizer_map!r}"
            )
        self._inner_optimizers: list[Optimizer] = []
        self._owners: dict[Variable, Optimizer] = {}
        super().__init__(learning_rate=0.0, loss_scale_factor=loss_scale_factor, name=name)
        self._optimizer_map = optimizer_map
        # Keras's order: the map's optimizers as first met, then its default one; those a
        # function gives join as build meets them.
        mapped = list(optimizer_map.values()) if hasattr(optimizer_map, "values") else []
        default = getattr(optimizer_map, "default_optimizer", None)
        for opt in [*mapped, *([default] if default is not None else [])]:
            if opt not in self._inner_optimizers:
                self._add(opt)

    def _add(self, optimizer: Optimizer) -> None:
        optimizer.loss_scale_factor = self.loss_scale_factor
        self._inner_optimizers.append(optimizer)

    @property
    def optimizers(self) -> list[Optimizer]:
        """The inner optimizers, in Keras's order (that of their variables in files)."""
        return self._inner_optimizers

    # --- which optimizer updates which variable ------------------------------------------

    def build(self, variables: list[Variable]) -> None:
        """Each variable given to its optimizer (Keras's refusals for one the map gives no
        optimizer, or a LossScaleOptimizer or MultiOptimizer), and each inner optimizer
        built on its variables. Called again with more variables, it places those."""
        routed: dict[Variable, Optimizer] = {}
        for var in variables:
            if var in self._owners or var in routed:
                continue
            opt = self._optimizer_map(var)
            if not isinstance(opt, Optimizer):
                raise ValueError(f"Optimizer for variable {var} is not an Optimizer instance.")
            if isinstance(opt, LossScaleOptimizer):
                raise ValueError("LossScaleOptimizer cannot be used inside an MultiOptimizer.")
            if isinstance(opt, MultiOptimizer):
                raise ValueError("MultiOptimizer cannot be used inside an MultiOptimizer.")
            if opt not in self._inner_optimizers:
                self._add(opt)
            routed[var] = opt
        self._check_names()
        self._owners.update(routed)  # only once every variable has its optimizer
        for opt in self._inner_optimizers:
            mine = [v for v, owner in routed.items() if owner is opt]
            if mine:
                opt.build(mine)
        super().build(variables)

    def _check_names(self) -> None:
        # kcompile keys each inner optimizer's arrays by its name (Keras by the variable).
        seen: dict[str, Optimizer] = {}
        for opt in self._inner_optimizers:
            if seen.setdefault(opt.name, opt) is not opt:
                raise ValueError(
                    f"MultiOptimizer '{self.name}': two of its optimizers are named "
                    f"'{opt.name}'; give each a name of its own (their state is kept by name)"
                )

    def variables_of(self, optimizer: Optimizer) -> list[Variable]:
        """The variables ``optimizer`` updates, in the order they were built."""
        return [v for v, opt in self._owners.items() if opt is optimizer]

    def owner(self, variable: Variable) -> Optimizer:
        """The inner optimizer that updates ``variable``."""
        opt = self._owners.get(variable)
        if opt is None:
            raise ValueError(
                f"MultiOptimizer '{self.name}' was not built with variable {variable.path}: "
                "call optimizer.build(trainable_variables) with it first"
            )
        return opt

    def slot_path(self, var: Variable, slot: str) -> str:
        return self.owner(var).slot_path(var, slot)

    # --- state ------------------------------------------------------------------------------

    @property
    def slots(self) -> dict[str, np.ndarray]:
        """Every inner optimizer's arrays by path: its iteration count and learning rate,
        then its slots (``optimizer.variables`` but the wrapper's own two, by name)."""
        out: dict[str, np.ndarray] = {}
        for opt in self._inner_optimizers:
            out[_count_path(opt)] = opt._iterations
            out[_rate_path(opt)] = opt._learning_rate
            out.update(opt.slots)
        return out

    @slots.setter
    def slots(self, value: dict) -> None:
        # The base's __init__ starts the slots empty; the wrapper keeps none of its own.
        if value:
            raise AttributeError("a MultiOptimizer's slots are those of its optimizers")

    @property
    def variables(self) -> list[np.ndarray]:
        """Keras's: its own iteration count and learning rate, then every inner
        optimizer's variables."""
        own = [self._iterations, self._learning_rate]
        return own + [a for opt in self._inner_optimizers for a in opt.variables]

    def set_weights(self, weights: list) -> None:
        """Keras's: the values of ``variables``, in its order (each count and rate set as
        its optimizer's, a scheduled rate left to its schedule)."""
        if not self.built:
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. "
                "Please call `optimizer.build(trainable_variables)` to create the optimizer "
                "weights before calling `set_weights()`."
            )
        if len(weights) != len(self.variables):
            raise ValueError(
                f"MultiOptimizer '{self.name}'.set_weights: expected {len(self.variables)} "
                f"arrays (optimizer.variables), got {len(weights)}"
            )
        values = iter(weights)
        self.step_count = int(np.asarray(next(values)))
        self._learning_rate[...] = next(values)  # Keras's: unused by any update
        for opt in self._inner_optimizers:
            opt.step_count = int(np.asarray(next(values)))
            rate = float(np.asarray(next(values)))
            if opt.schedule is None:
                opt.learning_rate = rate
            for array in opt.slots.values():
                np.copyto(array, np.asarray(next(values), np.float32).reshape(array.shape))

    @property
    def learning_rate(self) -> float:
        raise AttributeError(
            "Learning rate cannot be accessed on a MultiOptimizer. "
            "Access the learning rate on the individual sub-optimizers instead."
        )

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        raise AttributeError(
            "Learning rate cannot be set on a MultiOptimizer. "
            "Set the learning rate on the individual sub-optimizers instead."
        )

    @property
    def loss_scale_factor(self) -> float | None:
        return getattr(self, "_loss_scale_factor", None)

    @loss_scale_factor.setter
    def loss_scale_factor(self, value: float | None) -> None:
        self._loss_scale_factor = value
        for opt in getattr(self, "_inner_optimizers", ()):
            opt.loss_scale_factor = value

    def finalize_variable_values(self, variables: list[Variable]) -> None:
        for opt in self._inner_optimizers:
            mine = [v for v in variables if self._owners.get(v) is opt]
            if mine:
                opt.finalize_variable_values(mine)

    # --- the update as IR -----------------------------------------------------------------

    def step_learning_rate(self, graph, iterations: Value) -> Value:
        """None of its own (each inner optimizer's is read in ``apply_ir``).

        The built-in step asks for the rate before the update, and makes every optimizer
        array ``apply_ir`` reads a float32 input: the inner optimizers' iteration counts
        are made here first, as the int32 inputs their arrays are."""
        for opt in self._inner_optimizers:
            path = _count_path(opt)
            try:
                graph.input(path)
            except KeyError:
                graph.add_input(path, TensorType(DType.i32, ()), "opt")
        return B.const(graph, 0.0)

    def apply_ir(self, params, slot_value, lr: Value, iterations: Value) -> dict[str, Value]:
        """Each inner optimizer's update of its variables, at its own iteration count and
        learning rate; the wrapper's count goes up by one."""
        if len(params) != len(self._owners):
            raise ValueError(
                "Gradients must match trainable variables one-to-one. "
                f"Received {len(params)} gradients and {len(self._owners)} variables."
            )
        graph = iterations.graph
        updates: dict[str, Value] = {"iterations": iterations + B.const(graph, 1, DType.i32)}
        for opt in self._inner_optimizers:
            mine = [p for p in params if self.owner(p[0]) is opt]
            if not mine:
                continue
            count = slot_value(_count_path(opt))  # float32 as a stateless step's state
            if count.dtype != DType.i32:
                count = B.cast(count, DType.i32)
            if opt.schedule is not None:
                rate = opt.step_learning_rate(graph, count)
            else:
                rate = slot_value(_rate_path(opt))
            inner = opt.apply_ir(mine, slot_value, rate, count)
            updates[_count_path(opt)] = inner.pop("iterations")
            updates.update(inner)
        return updates

    # --- Keras's weights-file layout ----------------------------------------------------

    def keras_groups(self) -> list[tuple[str, str, list[np.ndarray]]]:
        """(group path, its name attribute, its arrays) of the optimizer in a Keras
        weights file: each inner optimizer's group, then the wrapper's of them all."""
        from kcompile.saving import saving_lib

        groups = []
        every = [np.asarray(self.step_count, np.int32), np.float32(0.0)]
        used: dict[str, int] = {}
        for opt in self._inner_optimizers:
            arrays = saving_lib._optimizer_arrays(self._weights_of(opt), opt)
            key = _unique(snake_case(type(opt).__name__), used)
            groups.append((f"optimizer/optimizers/{key}/vars", opt.name, arrays))
            every += arrays
        return [*groups, ("optimizer/vars", self.name, every)]

    def restore_keras_arrays(self, model: Any, arrays: list[np.ndarray]) -> None:
        """The state from the arrays of a Keras file's ``optimizer/vars``, built for
        ``model``'s trainable weights; a count that does not match is skipped with Keras's
        warning."""
        from kcompile.saving import saving_lib

        if not arrays:
            return
        self.build(model.trainable_weights)
        sizes = [
            2 + len(saving_lib._slot_layout(self._weights_of(o), o)) for o in self._inner_optimizers
        ]
        if len(arrays) != 2 + sum(sizes):
            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}', because it has "
                f"{2 + sum(sizes)} variables whereas the saved optimizer has {len(arrays)} "
                "variables.",
                stacklevel=2,
            )
            return
        self.step_count = int(arrays[0])
        start = 2
        for opt, size in zip(self._inner_optimizers, sizes):
            chunk = arrays[start : start + size]
            if opt.built:
                saving_lib._restore_arrays(self._weights_of(opt), opt, chunk)
            else:  # one the map gives no variable: its count alone, as Keras keeps it
                opt.step_count = int(chunk[0])
            start += size

    def _weights_of(self, optimizer: Optimizer) -> SimpleNamespace:
        # saving_lib lays an optimizer's slots out over a model's trainable weights.
        return SimpleNamespace(trainable_weights=self.variables_of(optimizer))

    # --- config ---------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {
            "optimizer_map": _serialize(self._optimizer_map),
            "loss_scale_factor": self.loss_scale_factor,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None):
        config = dict(config)
        config["optimizer_map"] = _deserialize(config["optimizer_map"], custom_objects)
        return cls(**config)


def _count_path(optimizer: Optimizer) -> str:
    return f"{optimizer.name}/iterations"


def _rate_path(optimizer: Optimizer) -> str:
    return f"{optimizer.name}/learning_rate"


def _unique(name: str, used: dict[str, int]) -> str:
    """Keras's numbering of a container's entries: ``sgd``, ``sgd_1``, ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name
