"""``keras.backend``: the session's names and random seed, dtypes as Keras names them,
and the tensors and variables that tracing works with."""

from kcompile.backend.dtypes import is_float_dtype, is_int_dtype, result_type, standardize_dtype
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.session import clear_session as _clear_session
from kcompile.backend.session import (
    draw_seed,
    rng,
    set_random_seed,
    snake_case,
    unique_name,
)
from kcompile.config import (
    backend,
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)


def clear_session(free_memory: bool = True) -> None:
    """Forget layer names and uids, as Keras's ``clear_session`` does (compiled code
    is freed when no model holds it; ``free_memory`` has nothing more to do here)."""
    _clear_session()


def get_uid(prefix: str = "") -> int:
    """How many times ``prefix`` has been counted in this session, this call included:
    1, 2, ... (layer names count too: after a ``Dense`` named ``dense``,
    ``get_uid("dense")`` is 2, as in Keras)."""
    name = unique_name(prefix)
    return 1 if name == prefix else int(name.rsplit("_", 1)[1]) + 1


def is_keras_tensor(x: object) -> bool:
    """Whether ``x`` is a symbolic tensor of the functional API (``keras.Input``'s)."""
    return isinstance(x, KerasTensor)


__all__ = [
    "backend",
    "clear_session",
    "draw_seed",
    "epsilon",
    "floatx",
    "get_uid",
    "image_data_format",
    "is_float_dtype",
    "is_int_dtype",
    "is_keras_tensor",
    "result_type",
    "rng",
    "set_epsilon",
    "set_floatx",
    "set_image_data_format",
    "set_random_seed",
    "snake_case",
    "standardize_dtype",
    "unique_name",
]
