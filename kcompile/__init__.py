"""kcompile: Keras-style models compiled to native CPU code.

``import kcompile as keras`` runs Keras programs in kcompile's scope.
"""

from pathlib import Path as _Path

# Installed, the compiler's packages (ir, passes, codegen) are inside this one; in a
# source checkout they are folders beside it, at the top of the repository.
_checkout = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "ir").is_dir() and (_checkout / "ir" / "__init__.py").is_file():
    __path__.append(str(_checkout))

from kcompile import errors  # noqa: E402  (gives the exception types their public names)
from kcompile.artifact import load  # noqa: E402
from kcompile.utils.lazy import lazy_attributes  # noqa: E402
from kcompile.version import __version__  # noqa: E402

__getattr__ = lazy_attributes(
    __name__,
    {
        **{
            name: f"kcompile.{name}"
            for name in (
                "activations",
                "backend",
                "callbacks",
                "config",
                "datasets",
                "distribution",
                "initializers",
                "layers",
                "losses",
                "metrics",
                "models",
                "ops",
                "optimizers",
                "random",
                "regularizers",
                "saving",
                "tree",
                "utils",
            )
        },
        "inspect": "kcompile.tools.inspect",
        "Input": "kcompile.layers:Input",
        "Model": "kcompile.models:Model",
        "Sequential": "kcompile.models:Sequential",
    },
)


def set_num_threads(count: int) -> None:
    """Threads that compiled code uses (the caller's included), in the compiler's runtime
    and in every loaded artifact; the default is every core this process may run on, or
    ``$KCOMPILE_NUM_THREADS``."""
    from kcompile.artifact.native import set_threads

    if not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {count!r}")
    set_threads(count)
    try:
        from kcompile.codegen.runtime_library import runtime
    except ImportError:  # no compiler here: only loaded artifacts run
        return
    runtime().set_threads(count)


def get_num_threads() -> int:
    from kcompile.codegen.runtime_library import runtime

    return runtime().threads()


__all__ = [
    "Input",
    "Model",
    "Sequential",
    "__version__",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "errors",
    "get_num_threads",
    "initializers",
    "inspect",
    "layers",
    "load",
    "losses",
    "metrics",
    "optimizers",
    "saving",
    "set_num_threads",
    "tree",
    "utils",
]
