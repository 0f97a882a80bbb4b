"""Keras names kcompile does not offer, refused by a namespace's ``__getattr__`` with the
reason. The error is a ``NotImplementedError`` and an ``AttributeError``, so
``hasattr(keras.losses, "CTC")`` is False, as it should be for a name not offered."""

from __future__ import annotations

from collections.abc import Callable


class NotOffered(NotImplementedError, AttributeError):
    """A Keras name kcompile does not offer (the message says why)."""


def refusing(namespace: str, reasons: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that refuses each name of ``reasons`` with its reason."""

    def __getattr__(name: str) -> object:
        if name in reasons:
            raise NotOffered(f"{namespace}.{name} is not supported by kcompile: {reasons[name]}")
        raise AttributeError(f"module {namespace!r} has no attribute {name!r}")

    return __getattr__
