"""Keras's dtype policies (``keras.dtype_policies``, ``keras.DTypePolicy``): which dtype a
layer computes in and which its variables are kept in.

As in Keras 3: ``"mixed_bfloat16"`` computes in bfloat16 with float32 variables,
``"mixed_float16"`` in float16; a float dtype's name (``"bfloat16"``, ``"float32"``)
does both in that dtype. Layers take the global policy when they are made (or their
``dtype=`` argument), cast their floating inputs to the compute dtype and read their
variables cast to it (autocast). ``float64`` policies compute in float32, as every
float64 value does in kcompile.
"""

from __future__ import annotations

from typing import Any

from kcompile.backend.dtypes import standardize_dtype

QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")
_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class DTypePolicy:
    """A layer's compute and variable dtypes, from a policy name."""

    def __init__(self, name: str | None = None) -> None:
        if name is None:
            name = dtype_policy().name
        self._name = name
        self._compute_dtype, self._variable_dtype = self._parse_name(name)
        self._quantization_mode = None

    @staticmethod
    def _parse_name(name: Any) -> tuple[str, str]:
        if not isinstance(name, str):
            raise TypeError(
                "'name' must be a string, such as 'mixed_float16'. "
                f"Received: name={name} (of type {type(name)})"
            )
        if name in _MIXED:
            return _MIXED[name], "float32"
        try:
            dtype = standardize_dtype(name)
        except ValueError:
            dtype = None
        if dtype is None:  # (any dtype names a policy: Keras's integer layers take one)
            raise ValueError(
                f"Cannot convert '{name}' to a mixed precision DTypePolicy. Valid policies "
                "include 'mixed_float16', 'mixed_bfloat16', and the name of any float dtype "
                "such as 'float32'."
            )
        return dtype, dtype

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype of the layer's computations and outputs."""
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype the layer's variables are created and updated in."""
        return self._variable_dtype

    @property
    def quantization_mode(self) -> str | None:
        return self._quantization_mode

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> DTypePolicy:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        if self.__class__ in (DTypePolicy, FloatDTypePolicy):
            if other.__class__ not in (DTypePolicy, FloatDTypePolicy):
                return False
        elif self.__class__ is not other.__class__:
            return False
        return self._name == other._name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f'<{self.__class__.__name__} "{self._name}">'


class FloatDTypePolicy(DTypePolicy):
    """Keras's alias of ``DTypePolicy``."""


class QuantizedDTypePolicy(DTypePolicy):
    """Keras's policy of a quantized layer (``layer.quantize("int8")``): named
    ``"<mode>_from_<source policy>"``; it computes and keeps its float variables as the
    source policy does, and ``quantization_mode`` says how its kernel is stored."""

    def __init__(self, mode: str, source_name: str | None = None) -> None:
        if source_name is None:
            source_name = dtype_policy().name
        name = f"{mode}_from_{source_name}"
        self._compute_dtype, self._variable_dtype = self._parse_name(source_name)
        self._check_quantization_mode(mode, self._compute_dtype)
        self._name = name
        self._source_name = source_name
        self._quantization_mode = mode

    def __eq__(self, other: object) -> bool:
        if super().__eq__(other) is False:
            return False
        return (
            self._quantization_mode == other._quantization_mode  # type: ignore[attr-defined]
            and self._source_name == other._source_name  # type: ignore[attr-defined]
        )

    __hash__ = DTypePolicy.__hash__

    def get_config(self) -> dict:
        return {"mode": self._quantization_mode, "source_name": self._source_name}

    @staticmethod
    def _check_quantization_mode(mode: str, compute_dtype: str) -> None:
        if mode not in QUANTIZATION_MODES:
            raise ValueError(
                f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
                f"Received: mode={mode}"
            )
        if compute_dtype == "float16" and mode == "int8":
            raise ValueError(
                f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'."
            )


class QuantizedFloat8DTypePolicy(QuantizedDTypePolicy):
    """Keras's float8 policy: a name kcompile reads and writes; a layer refuses to be
    quantized or built under it (``kcompile.quantizers.refuse_mode``)."""

    default_amax_history_length = 1024

    def __init__(
        self, mode: str, source_name: str | None = None, amax_history_length: int = 1024
    ) -> None:
        super().__init__(mode=mode, source_name=source_name)
        if not isinstance(amax_history_length, int):
            raise TypeError(
                "`amax_history_length` must be an integer. "
                f"Received: amax_history_length={amax_history_length}"
            )
        self._amax_history_length = amax_history_length

    @property
    def amax_history_length(self) -> int:
        return self._amax_history_length

    def __eq__(self, other: object) -> bool:
        if super().__eq__(other) is False:
            return False
        return self._amax_history_length == other._amax_history_length  # type: ignore

    __hash__ = DTypePolicy.__hash__

    def get_config(self) -> dict:
        return {**super().get_config(), "amax_history_length": self._amax_history_length}


class Int4DTypePolicy(QuantizedDTypePolicy):
    """Keras's int4 policy, ``"int4/<block_size>_from_<source>"`` (-1: per channel), of
    a Dense or EinsumDense quantized to int4 (``kcompile.quantizers``); a layer built
    under it takes its block size from it when its config gives none."""

    def __init__(self, mode: str, source_name: str | None = None) -> None:
        parts = mode.split("/")
        expected = "'int4/<block_size>'"
        if len(parts) != 2 or parts[0] != "int4":
            raise ValueError(
                f"Invalid mode for Int4DTypePolicy. Expected format {expected}, but got '{mode}'."
            )
        try:
            block_size = int(parts[1])
        except ValueError:
            raise ValueError(
                "Invalid mode for Int4DTypePolicy. <block_size> must be an integer. "
                f"Expected format {expected}, but got '{mode}'."
            ) from None
        if block_size < -1 or block_size == 0:
            raise ValueError(
                "Invalid block_size in mode. Supported values are -1 (per-channel) or a "
                f"positive integer (sub-channel), but got {block_size} from '{mode}'."
            )
        super().__init__(mode="int4", source_name=source_name)
        self._name = f"{mode}_from_{self._source_name}"
        self.mode = "int4"
        self.block_size = block_size

    def __eq__(self, other: object) -> bool:
        if super().__eq__(other) is False:
            return False
        return self.block_size == other.block_size  # type: ignore[attr-defined]

    __hash__ = DTypePolicy.__hash__

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": f"int4/{self.block_size}"}


ALL_OBJECTS = {
    cls.__name__: cls
    for cls in (
        DTypePolicy,
        FloatDTypePolicy,
        QuantizedDTypePolicy,
        QuantizedFloat8DTypePolicy,
        Int4DTypePolicy,
    )
}
_GLOBAL: list[DTypePolicy] = []


def set_dtype_policy(policy: Any) -> None:
    """Set the policy layers made from now on take (``keras.config.set_dtype_policy``,
    ``keras.mixed_precision.set_global_policy``)."""
    if not isinstance(policy, DTypePolicy):
        if not isinstance(policy, str):
            raise ValueError(
                "Invalid `policy` argument. Expected the string name of a policy (such as "
                f"'mixed_float16') or a `DTypePolicy` instance. Received: policy={policy} "
                f"(of type {type(policy)})"
            )
        policy = _by_name(policy)
    _GLOBAL[:] = [policy]


def dtype_policy() -> DTypePolicy:
    """The global policy (``keras.config.dtype_policy``)."""
    if not _GLOBAL:
        _GLOBAL.append(DTypePolicy("float32"))  # keras.config.floatx(), fixed in kcompile
    return _GLOBAL[0]


def _by_name(name: str) -> DTypePolicy:
    if name.startswith(QUANTIZATION_MODES):
        return _quantized_by_name(name)
    return DTypePolicy(name)


def _quantized_by_name(policy: str) -> DTypePolicy:
    """Keras's ``_get_quantized_dtype_policy_by_str``: ``"<mode>_from_<source>"``."""
    split = policy.split("_from_")
    if len(split) != 2:
        raise ValueError(
            "Cannot convert `policy` into a valid pair (`mode`, `source_name`) to "
            f"instantiate `QuantizedDTypePolicy`. Received: policy={policy}"
        )
    mode, source_name = split
    if policy.startswith("int8"):
        return QuantizedDTypePolicy(mode, source_name)
    if policy.startswith("int4"):
        if "/" in mode:
            return Int4DTypePolicy(mode, source_name)
        return QuantizedDTypePolicy(mode, source_name)
    if policy.startswith("float8"):
        return QuantizedFloat8DTypePolicy(mode, source_name)
    # gptq/awq: their policies carry calibration settings kcompile has no use for.
    raise NotImplementedError(
        f"dtype policy {policy!r}: {mode.split('/')[0]} quantization is not supported by "
        "kcompile (it needs calibration data and a GPTQ/AWQ config; kcompile quantizes "
        "int8 only)"
    )


def get(identifier: Any) -> DTypePolicy:
    """A policy from None (the global one), a name, a config dict or a policy."""
    if identifier is None:
        return dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return _by_name(identifier)
    name = getattr(identifier, "name", None)  # a numpy dtype
    if isinstance(name, str):
        return _by_name(standardize_dtype(identifier))
    raise ValueError(
        f"Cannot interpret `dtype` argument. Expected a string or an instance of "
        f"DTypePolicy. Received: dtype={identifier}"
    )


def serialize(policy: DTypePolicy) -> dict:
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    quantized = isinstance(policy, QuantizedDTypePolicy)  # (as Keras 3.15 writes them)
    return {
        "module": "keras.dtype_policies" if quantized else "keras",
        "class_name": policy.__class__.__name__,
        "config": policy.get_config(),
        "registered_name": None,
    }


def deserialize(config: dict, custom_objects: dict | None = None) -> DTypePolicy:
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or ALL_OBJECTS.get(name)
    if cls is None:
        raise ValueError(
            f"dtype policy config names class {name!r}; expected one of {sorted(ALL_OBJECTS)}"
        )
    return cls.from_config(config.get("config", {}))
