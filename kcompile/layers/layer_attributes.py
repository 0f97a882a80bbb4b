"""Keras's public attributes of a layer that are plain state: its variables in Keras's
names, the metric objects it holds, its dtype policy and dtypes, its own
variables as ``save_own_variables`` writes them, ``add_variable``, and the refusals of
what kcompile does not do (``add_metric``, which Keras deprecates), and the ``quantize``
entry points of a layer that does not quantize.
``Layer`` inherits them; what they read (``weights``, ``add_weight``, ``_variables``) is
``Layer``'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kcompile.backend.variables import Variable
from kcompile.layers import lora
from kcompile.tree import flatten


class LayerAttributes:
    @property
    def variables(self) -> list[Variable]:
        """Keras's: every variable of the layer and the layers it holds. Keras also lists
        the seed state of its random layers (Dropout's ``seed_generator_state``); kcompile's
        random layers draw from the step counter and have none."""
        return self.weights

    @property
    def trainable_variables(self) -> list[Variable]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Variable]:
        return self.non_trainable_weights

    @property
    def input_spec(self) -> Any:
        """Keras's: the ``InputSpec`` (or list of them) each call's inputs are checked
        against; None (no check) unless the layer sets one."""
        return getattr(self, "_input_spec", None)

    @input_spec.setter
    def input_spec(self, value: Any) -> None:
        self._input_spec = value

    @property
    def metrics(self) -> list:
        """Keras's: the metric objects this layer holds as attributes (a user's
        ``self.tracker = keras.metrics.Mean()``), then those of the layers it holds."""
        found = [
            x
            for name, value in vars(self).items()
            if not name.startswith("_")
            for x in flatten(value)
            if _is_metric(x)
        ]
        for layer in self._tracked_layers():
            found.extend(m for m in layer.metrics if m not in found)
        return found

    @property
    def metrics_variables(self) -> list:
        return [v for metric in self.metrics for v in metric.variables]

    # Keras's dtype policy: the layer computes in ``compute_dtype`` and keeps its
    # variables in ``variable_dtype`` (float32 under the mixed policies).
    @property
    def dtype_policy(self):
        policy = self.__dict__.get("_dtype_policy")
        if policy is None:  # a layer whose __init__ did not reach Layer's
            from kcompile import dtype_policies

            policy = self.__dict__["_dtype_policy"] = dtype_policies.get(None)
        return policy

    @dtype_policy.setter
    def dtype_policy(self, value: Any) -> None:
        """Keras's: a quantized policy set on a built layer quantizes it."""
        from kcompile import dtype_policies

        policy = dtype_policies.get(value)
        self.__dict__["_dtype_policy"] = policy
        mode = policy.quantization_mode
        if mode is not None and getattr(self, "built", False) and not self._is_quantized:
            self.quantize(mode)

    # Whether ``quantize`` (or a build under a quantized policy) made the layer's
    # quantized variables (Keras's ``_is_quantized``).
    _is_quantized = False

    @property
    def dtype(self) -> str:
        """The variables' dtype (Keras's ``layer.dtype``; an InputLayer names the dtype of
        its input)."""
        return getattr(self, "_dtype", None) or self.dtype_policy.variable_dtype

    @dtype.setter
    def dtype(self, value: str) -> None:
        self._dtype = value

    @property
    def compute_dtype(self) -> str:
        own = getattr(self, "_dtype", None)
        return own or self.dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self.dtype_policy.variable_dtype

    @property
    def input_dtype(self) -> str:
        return self.compute_dtype

    @property
    def autocast(self) -> bool:
        return True

    # A layer whose statistics would overflow or lose precision in bf16/f16 (Keras's
    # normalizations): it takes float inputs in float32, reads its weights uncast and
    # casts its outputs to the compute dtype.
    computes_in_float32 = False

    @property
    def supports_jit(self) -> bool:
        return True

    @property
    def path(self) -> str:
        """Keras's: the layer's name scope (its name, for a layer made at the top)."""
        return self.name

    @property
    def quantization_mode(self) -> str | None:
        """Keras's: the mode of ``quantize`` (``"int8"``), None if not quantized."""
        return self.dtype_policy.quantization_mode

    def quantize(self, mode: Any = None, type_check: bool = True, config: Any = None) -> None:
        """Keras's: a layer that does not quantize raises NotImplementedError (after
        Keras's checks), which a model's ``quantize`` turns into a warning; Dense,
        EinsumDense and Embedding quantize (``kcompile.quantizers``)."""
        from kcompile import quantizers

        mode = quantizers.resolve_mode(mode, config)
        quantizers.check_quantize_args(self, mode)
        raise quantizers.not_implemented(self)

    def quantized_build(self, input_shape: Any, mode: Any, config: Any = None) -> None:
        from kcompile import quantizers

        raise quantizers.not_implemented(self, "quantized_build")

    def quantized_call(self, *args: Any, **kwargs: Any) -> Any:
        from kcompile import quantizers

        raise quantizers.not_implemented(self, "quantized_call")

    def _keras_saved_order(self) -> list[Variable] | None:
        """The layer's own variables in the order Keras's ``save_own_variables`` writes
        them when that is not the order they were made in (a quantized layer's:
        ``variable_serialization_spec``), else None."""
        return None

    def _keras_saved_values(self) -> dict[Variable, np.ndarray]:
        """Values Keras's ``save_own_variables`` writes in place of some variables' own:
        a LoRA layer's kernel with its delta merged (``layers.lora``); else none."""
        return {}

    def rematerialized_call(self, layer_call: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras's: ``layer_call`` as it is when no ``RematScope`` is active, which is
        always so in kcompile (its memory plan decides what is kept for the backward
        pass)."""
        return layer_call

    def add_variable(
        self,
        shape: Sequence[int],
        initializer: Any,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        name: str | None = None,
    ) -> Variable:
        """Keras's: ``add_weight`` with the shape and initializer first."""
        return self.add_weight(
            shape,
            initializer,
            dtype=dtype,
            trainable=trainable,
            autocast=autocast,
            regularizer=regularizer,
            constraint=constraint,
            name=name,
        )

    def add_metric(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "Layer `add_metric()` method is deprecated. Add your metric in "
            "`Model.compile(metrics=[...])`, or create metric trackers in init() or build() "
            "when subclassing the layer or model, then call `metric.update_state()` "
            "whenever necessary."
        )

    def _own_in_keras_order(self) -> list[Variable]:
        """The layer's own variables, trainable first (Keras's ``save_own_variables``)."""
        saved = self._keras_saved_order()
        if saved is not None:
            return saved
        own = list(self._variables)
        return [v for v in own if v.trainable] + [v for v in own if not v.trainable]

    def save_own_variables(self, store: Any) -> None:
        """Keras's: the layer's own variables (not those of the layers it holds),
        trainable first, into ``store`` under "0", "1", ..."""
        own = self._own_in_keras_order()
        merged = self._keras_saved_values()
        for i, var in enumerate(own):
            store[f"{i}"] = merged[var] if var in merged else var.numpy()

    def load_own_variables(self, store: Any) -> None:
        """Keras's: the layer's own variables from ``store`` (as ``save_own_variables``
        wrote them); the count must match."""
        own = self._own_in_keras_order()
        if len(store.keys()) != len(own):
            if not own and not self.built:
                raise ValueError(
                    f"Layer '{self.name}' was never built and thus it doesn't have any "
                    f"variables. However the weights file lists {len(store.keys())} "
                    "variables for this layer."
                )
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables, but received "
                f"{len(store.keys())} variables during loading. "
                f"Expected: {[v.name for v in own]}"
            )
        for i, var in enumerate(own):
            var.assign(np.asarray(store[f"{i}"]))
        lora.zero_after_load(self)


def _is_metric(x: Any) -> bool:
    """A Keras metric object (kcompile's or a user's): it updates, reports and resets."""
    return not isinstance(x, type) and all(
        callable(getattr(x, name, None)) for name in ("update_state", "result", "reset_state")
    )
