"""``keras.ops`` for kcompile: ``from kcompile import ops``.

On traced tensors (inside a custom layer's ``call``, a ``Lambda``, a loss or metric)
an op adds IR to the step being compiled; on the functional API's symbolic tensors it
becomes a node of the model; on arrays and numbers it computes at once (numpy, through
the reference interpreter). An op kcompile does not have raises ``NotImplementedError``
naming it and why (``kcompile.ops.refusals``).

The namespaces are Keras's: every public op is here; the numpy functions are also in
``ops.numpy``, the neural-network ones in ``ops.nn`` and ``norm`` in ``ops.linalg``,
wherever kcompile defines them.
"""

from kcompile.ops import (
    arrays,
    composite,
    concrete_only,
    control_flow,
    convolution,
    ctc,
    custom_gradient,
    fft,
    image,  # noqa: F401  (keras.ops.image)
    integers,
    linalg,
    linalg_decompositions,
    nan_functions,
    nn,
    numpy,
    rearrange,
    slicing,
    sorting,
    trigonometric,
)
from kcompile.ops import operators as _operators  # noqa: F401  (installs x + y, x[i], ...)
from kcompile.ops.refusals import refusal as _refusal
from kcompile.utils.traceback_utils import filter_traceback as _filter_traceback

# Keras's top-level ops that are not in its ``ops.numpy`` (its ``ops/core.py`` and
# ``ops/math.py``), though kcompile defines some beside numpy functions.
_NOT_NUMPY = {
    "erfc", "erfinv", "in_top_k", "top_k", "cast", "convert_to_numpy", "convert_to_tensor",
    "is_tensor", "shape", "stop_gradient", "unstack", "logsumexp", "rsqrt", "erf",
}  # fmt: skip
_NUMPY_MODULES = (numpy, composite, trigonometric, nan_functions, sorting, arrays, integers,
                  concrete_only)  # fmt: skip
_OTHER_MODULES = (nn, convolution, slicing, control_flow, linalg, linalg_decompositions, fft,
                  rearrange, ctc, custom_gradient)  # fmt: skip

# A user's call of a public op shows the user's line, not the op's internals (the
# library's own modules import the ops from their defining modules, unwrapped).
_public = {
    name: _filter_traceback(getattr(module, name))
    for module in (*_NUMPY_MODULES, *_OTHER_MODULES)
    for name in module.__all__
}
globals().update(_public)
for _module in _NUMPY_MODULES:
    for _name in _module.__all__:
        if _name not in _NOT_NUMPY and _name not in vars(numpy):
            setattr(numpy, _name, _public[_name])
for _name in convolution.__all__:
    setattr(nn, _name, _public[_name])
nn.ctc_loss, nn.ctc_decode = _public["ctc_loss"], _public["ctc_decode"]  # also in ops.nn
for _name in linalg_decompositions.__all__:
    setattr(linalg, _name, _public[_name])
numpy.slogdet = _public["slogdet"]  # Keras has it in ops.numpy as well as ops.linalg

__all__ = sorted({*_public, "linalg", "nn", "numpy"})

__getattr__ = _refusal(__name__)
