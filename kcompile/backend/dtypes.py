"""Keras's dtype names and type promotion: ``keras.backend.standardize_dtype``,
``result_type``, ``is_float_dtype``, ``is_int_dtype``.

The promotion is Keras 3's (``keras/src/backend/common/dtypes.py``, Apache 2.0, which
follows ``jnp.result_type``): the least upper bound on a lattice of dtypes where Python's
``int`` and ``float`` are weak types, 64-bit results narrowed to 32 bits as on Keras's JAX
backend. kcompile computes in float32, int32 and bool; these functions name dtypes as a
Keras program sees them.
"""

from __future__ import annotations

import functools
from typing import Any

INT_TYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")
FLOAT_TYPES = ("bfloat16", "float16", "float32", "float64")
FLOAT8_TYPES = ("float8_e4m3fn", "float8_e5m2")
WEAK_TYPES = ("int", "float")
ALLOWED_DTYPES = (
    *FLOAT_TYPES,
    *INT_TYPES,
    "bool",
    "string",
    *FLOAT8_TYPES,
    "complex64",
    "complex128",
)
PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32",
                 complex: "complex64"}  # fmt: skip
_NARROWED = {"int64": "int32", "uint64": "uint32", "float64": "float32", "complex128": "complex64"}


def _floatx() -> str:
    # keras.config.floatx() is float32 in kcompile (set_floatx refuses any other); named
    # here rather than imported, so that config (which serves the dtype policies, built on
    # these names) and this module do not import each other.
    return "float32"


def standardize_dtype(dtype: Any) -> str:
    """A dtype's Keras name (``"float32"``, ``"int32"``, ...): from a name, a numpy
    dtype or type, or a Python type; None is ``floatx()``."""
    if dtype is None:
        return _floatx()
    dtype = PYTHON_DTYPES.get(dtype, dtype) if _hashable(dtype) else dtype
    if hasattr(dtype, "name"):
        dtype = dtype.name
    elif hasattr(dtype, "__name__"):
        dtype = dtype.__name__
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype}")
    return dtype


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def is_float_dtype(dtype: Any) -> bool:
    return standardize_dtype(dtype).startswith(("float", "bfloat"))


def is_int_dtype(dtype: Any) -> bool:
    return standardize_dtype(dtype).startswith(("int", "uint"))


def _lattice() -> dict[str, list[str]]:
    u1, u2, u4, u8, i1, i2, i4, i8 = INT_TYPES
    bf, f2, f4, f8 = FLOAT_TYPES
    return {
        "bool": ["int"],
        u1: [i2, u2],
        u2: [i4, u4],
        u4: [i8, u8],
        u8: ["float"],
        "int": [u1, i1, "complex64"],
        i1: [i2],
        i2: [i4],
        i4: [i8],
        i8: ["float"],
        "float": [bf, f2],
        bf: [f4],
        f2: [f4],
        f4: [f8, "complex64"],
        f8: ["complex128"],
        "complex64": ["complex128"],
        "complex128": [],
    }


def _upper_bounds() -> dict[str, set[str]]:
    lattice = _lattice()
    bounds = {node: {node} for node in lattice}
    for node in lattice:
        while True:
            more = set().union(*(lattice[b] for b in bounds[node]))
            if more <= bounds[node]:
                break
            bounds[node] |= more
    return bounds


_BOUNDS = _upper_bounds()


@functools.lru_cache(512)
def _least_upper_bound(*nodes: str) -> str:
    common = set.intersection(*(_BOUNDS[n] for n in set(nodes)))
    least = (common & set(nodes)) or {c for c in common if common <= _BOUNDS[c]}
    if len(least) != 1:
        raise ValueError(
            f"Input dtypes {nodes} have no available implicit dtype promotion path. Try "
            "explicitly casting inputs to the desired output type."
        )
    return least.pop()


def _weak(dtype: str) -> str:
    if dtype == "bool":
        return dtype
    for kind in ("float", "int", "complex"):
        if kind in dtype:
            return kind
    raise ValueError(f"Invalid dtype for a weakly typed value: {dtype}")


def _resolve_weak(dtype: str, precision: str) -> str:
    kind = "f" if dtype == "bfloat16" else dtype[:1]
    return {"b": "bool", "i": f"int{precision}", "u": f"uint{precision}"}.get(
        kind, f"float{precision}"
    )


def result_type(*dtypes: Any) -> str:
    """The dtype Keras's promotion gives to an operation on values of ``dtypes``
    (``int`` and ``float`` stand for Python numbers, weakly typed)."""
    if not dtypes:
        return _floatx()
    if any(d in FLOAT8_TYPES for d in dtypes if isinstance(d, str)):
        raise ValueError(
            f"There is no implicit conversions from float8 dtypes to others. Received: {dtypes}"
        )
    args = [_floatx() if d is None else d for d in dtypes]
    names = [standardize_dtype(a) for a in args]
    weak = [a is int or a is float for a in args]
    if len(names) == 1:
        out, out_weak = names[0], weak[0]
    elif len(set(names)) == 1 and not all(weak):
        out, out_weak = names[0], False
    elif all(weak):
        out, out_weak = _least_upper_bound(*set(names)), True
    else:
        out = _least_upper_bound(*{_weak(n) if w else n for n, w in zip(names, weak)})
        out_weak = out in WEAK_TYPES
    if out != "bool" and out_weak:
        out = _resolve_weak(out, _floatx()[-2:])
    return _NARROWED.get(out, out)
