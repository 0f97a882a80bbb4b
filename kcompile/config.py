"""``keras.config``: the global settings Keras programs read or set. kcompile computes in
float32, channels last, on its own backend; the switches that only matter to Keras's
own machinery (traceback filtering, unsafe deserialization, flash attention) are kept
as flags so programs that set them run unchanged."""

from __future__ import annotations

import os

_EPSILON = 1e-7
_FLAGS = {"traceback_filtering": True, "unsafe_deserialization": False, "flash_attention": None}


def floatx() -> str:
    return "float32"


def set_floatx(value: str) -> None:
    if value != "float32":
        raise NotImplementedError(f"kcompile computes in float32; set_floatx({value!r})")


def epsilon() -> float:
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def image_data_format() -> str:
    return "channels_last"


def set_image_data_format(data_format: str) -> None:
    if data_format != "channels_last":
        raise NotImplementedError(f"kcompile supports channels_last only, got {data_format!r}")


def backend() -> str:
    return "kcompile"


def dtype_policy():
    """The global dtype policy (a ``DTypePolicy``) layers take when they are made."""
    from kcompile.dtype_policies import dtype_policy as current

    return current()


def set_dtype_policy(policy) -> None:
    """Set the global dtype policy: a name (``"mixed_bfloat16"``) or a ``DTypePolicy``."""
    from kcompile.dtype_policies import set_dtype_policy as set_policy

    set_policy(policy)


def enable_traceback_filtering() -> None:
    _FLAGS["traceback_filtering"] = True


def disable_traceback_filtering() -> None:
    _FLAGS["traceback_filtering"] = False


def is_traceback_filtering_enabled() -> bool:
    return bool(_FLAGS["traceback_filtering"])


def enable_unsafe_deserialization() -> None:
    _FLAGS["unsafe_deserialization"] = True


def enable_interactive_logging() -> None:
    pass


def disable_interactive_logging() -> None:
    pass


def is_interactive_logging_enabled() -> bool:
    return True


def enable_flash_attention() -> None:
    _FLAGS["flash_attention"] = True


def disable_flash_attention() -> None:
    _FLAGS["flash_attention"] = False


def is_flash_attention_enabled():
    return _FLAGS["flash_attention"]


def is_nnx_enabled() -> bool:
    """Flax NNX integration (Keras's JAX backend only): never on here."""
    return False


def set_backend(backend: str) -> None:
    """kcompile is its own backend; Keras's others (jax, torch, tensorflow, numpy) are
    not there to switch to."""
    if backend != "kcompile":
        raise NotImplementedError(
            f"keras.config.set_backend({backend!r}): kcompile compiles with its own backend "
            "only; run the program with Keras itself for another backend"
        )


# Keras's debugging limits on fit, evaluate and predict (trainers.training_loop reads
# them); set from the environment as Keras does.
_LIMITS: dict[str, int | None] = {
    name: int(os.environ[variable]) if variable in os.environ else None
    for name, variable in (
        ("max_epochs", "KERAS_MAX_EPOCHS"),
        ("max_steps_per_epoch", "KERAS_MAX_STEPS_PER_EPOCH"),
    )
}


def max_epochs() -> int | None:
    return _LIMITS["max_epochs"]


def max_steps_per_epoch() -> int | None:
    return _LIMITS["max_steps_per_epoch"]


def _set_limit(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"keras.config.set_{name}: expected a positive int or None, got {value!r}")
    _LIMITS[name] = value


def set_max_epochs(max_epochs: int | None) -> None:
    _set_limit("max_epochs", max_epochs)


def set_max_steps_per_epoch(max_steps_per_epoch: int | None) -> None:
    _set_limit("max_steps_per_epoch", max_steps_per_epoch)
