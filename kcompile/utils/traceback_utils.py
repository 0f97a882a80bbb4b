"""Tracebacks without kcompile's own frames, as Keras 3 shows them
(``keras/src/utils/traceback_utils.py``).

A user's mistake (a label out of range, a shape that does not fit a layer) is raised
deep inside the compiler: a traceback through ``trainers``, ``runtime`` and ``ir``
frames buries the one line that matters. Public entry points (``Model.fit``,
``Layer.__call__``, ``keras.ops`` functions, ``load_model``, ...) are wrapped with
``filter_traceback``, which re-raises the error with kcompile's frames removed, so the
traceback ends at the user's own line and the message. The user's frames inside it
(a custom layer's ``call``, a loss written with ``keras.ops``) are kept.
``keras.config.disable_traceback_filtering()`` shows everything.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kcompile import config

F = TypeVar("F", bound=Callable[..., Any])


def _own_folders() -> tuple[str, ...]:
    """kcompile's source folders: the package, and the compiler's packages inside it
    (installed) or beside it (a source checkout)."""
    package = Path(__file__).resolve().parent.parent
    folders = [package]
    for name in ("ir", "passes", "codegen"):
        inside = package / name
        folders.append(inside if inside.is_dir() else package.parent / name)
    return tuple(f"{folder}/" for folder in folders)


_OWN = _own_folders()


def _is_own(filename: str) -> bool:
    return filename.startswith(_OWN)


def filtered(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without kcompile's frames (None when every frame is kcompile's: the
    re-raise adds the wrapper's line, and the message names the layer, op or file)."""
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    kept = [t for t in frames if not _is_own(t.tb_frame.f_code.co_filename)]
    out = None
    for t in reversed(kept):
        out = types.TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return out


def _filter_chain(error: BaseException) -> None:
    """Filters the tracebacks of the errors ``error`` was raised from, too."""
    seen: set[int] = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__traceback__ = filtered(cause.__traceback__)
        cause = cause.__cause__ or cause.__context__


def filter_traceback(fn: F) -> F:
    """Wraps a public entry point: an error escaping it loses kcompile's frames."""

    @functools.wraps(fn)
    def error_handler(*args: Any, **kwargs: Any) -> Any:
        if not config.is_traceback_filtering_enabled():
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            tb = filtered(error.__traceback__)
            _filter_chain(error)
            # The cause kcompile attached on purpose (the user's own
            # error inside a custom layer) is part of the message.
            raise error.with_traceback(tb) from error.__cause__
        finally:
            # The frames held by the traceback would otherwise live as long as this one.
            tb = None

    return error_handler  # type: ignore[return-value]
