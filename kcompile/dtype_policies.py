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


ALL_OBJECTS = {cls.__name__: cls for cls in (DTypePolicy, FloatDTypePolicy)}
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
        raise NotImplementedError(
            f"dtype policy {name!r}: quantized policies are not supported yet (issue 29)"
        )
    return DTypePolicy(name)


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
    return {
        "module": "keras",
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
