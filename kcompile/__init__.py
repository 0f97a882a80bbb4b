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
from kcompile.utils.unoffered import refuse_namespace  # noqa: E402
from kcompile.version import __version__  # noqa: E402


def version() -> str:
    """kcompile's version (``keras.version()``)."""
    return __version__


# Keras's top-level names kcompile does not offer, each with the reason; asking for one
# raises NotImplementedError saying so rather than AttributeError.
_REFUSED = {
    "Function": "keras.Function (a graph of ops run as a function) is not offered: build a "
    "keras.Model from the same inputs and outputs",
    "Operation": "Keras's Operation base class is not offered: write a keras.layers.Layer",
    "name_scope": "name scopes are not offered: kcompile names weights by their layers",
    "device": "kcompile runs on the CPU it compiles for; there is no device to choose",
    "remat": "rematerialization is not offered: kcompile's memory planner reuses buffers instead",
    "RematScope": "rematerialization is not offered: kcompile's memory planner reuses "
    "buffers instead",
    "StatelessScope": "the stateless API's scopes are not offered yet",
    "SymbolicScope": "symbolic scopes are Keras's internals, not offered",
}

_lazy = lazy_attributes(
    __name__,
    {
        **{
            name: f"kcompile.{name}"
            for name in (
                "activations",
                "applications",
                "backend",
                "callbacks",
                "config",
                "constraints",
                "datasets",
                "distribution",
                "dtype_policies",
                "initializers",
                "layers",
                "losses",
                "metrics",
                "mixed_precision",
                "models",
                "ops",
                "optimizers",
                "preprocessing",
                "quantizers",
                "random",
                "regularizers",
                "saving",
                "tree",
                "utils",
            )
        },
        "inspect": "kcompile.tools.inspect",
        "Input": "kcompile.layers:Input",
        "InputSpec": "kcompile.layers.input_spec:InputSpec",
        "Model": "kcompile.models:Model",
        "Sequential": "kcompile.models:Sequential",
        "Layer": "kcompile.layers.layer:Layer",
        "Quantizer": "kcompile.quantizers:Quantizer",
        "DTypePolicy": "kcompile.dtype_policies:DTypePolicy",
        "FloatDTypePolicy": "kcompile.dtype_policies:FloatDTypePolicy",
        "Loss": "kcompile.losses.loss:Loss",
        "Metric": "kcompile.metrics.metric:Metric",
        "Optimizer": "kcompile.optimizers.optimizer:Optimizer",
        "Initializer": "kcompile.initializers:Initializer",
        "Regularizer": "kcompile.regularizers:Regularizer",
        "KerasTensor": "kcompile.backend.keras_tensor:KerasTensor",
        "Variable": "kcompile.backend.keras_variable:KerasVariable",
        # kcompile's: gradients inside a model's own train_step (trainers.gradients)
        "GradientTape": "kcompile.trainers.gradients:GradientTape",
        "grad": "kcompile.trainers.gradients:grad",
        "value_and_grad": "kcompile.trainers.gradients:value_and_grad",
    },
)


def __getattr__(name: str):
    refuse_namespace(name)
    if name in _REFUSED:
        raise NotImplementedError(f"keras.{name} is not supported by kcompile: {_REFUSED[name]}")
    return _lazy(name)


def set_num_threads(count: int) -> None:
    """Threads that compiled code uses (the caller's included), in the compiler's runtime
    and in every loaded artifact; the default is every core this process may run on, or
    ``$KCOMPILE_NUM_THREADS``."""
    from kcompile.artifact.native import set_threads

    if not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {count!r}")
    set_threads(count)
    try:
        from kcompile.codegen.library.runtime_library import runtime
    except ImportError:  # no compiler here: only loaded artifacts run
        return
    runtime().set_threads(count)


def get_num_threads() -> int:
    from kcompile.codegen.library.runtime_library import runtime

    return runtime().threads()


__all__ = [
    "GradientTape",
    "Initializer",
    "Input",
    "InputSpec",
    "KerasTensor",
    "Layer",
    "Loss",
    "Metric",
    "Model",
    "Optimizer",
    "Regularizer",
    "Sequential",
    "Variable",
    "__version__",
    "activations",
    "applications",
    "backend",
    "callbacks",
    "config",
    "constraints",
    "datasets",
    "errors",
    "get_num_threads",
    "grad",
    "initializers",
    "inspect",
    "layers",
    "load",
    "losses",
    "metrics",
    "optimizers",
    "preprocessing",
    "saving",
    "set_num_threads",
    "tree",
    "utils",
    "value_and_grad",
    "version",
]
