"""``keras.ops`` for kcompile: ``from kcompile import ops``.

On traced tensors (inside a custom layer's ``call``, a ``Lambda``, a loss or metric)
an op adds IR to the step being compiled; on the functional API's symbolic tensors it
becomes a node of the model; on arrays and numbers it computes at once (numpy, through
the reference interpreter). An op kcompile does not have raises ``NotImplementedError``
naming it.
"""

from kcompile.ops import nn
from kcompile.ops import operators as _operators  # noqa: F401  (installs x + y, x[i], ...)
from kcompile.ops.composite import *  # noqa: F403
from kcompile.ops.composite import __all__ as _composite_names
from kcompile.ops.nn import *  # noqa: F403
from kcompile.ops.numpy import *  # noqa: F403
from kcompile.ops.numpy import __all__ as _numpy_names
from kcompile.utils.traceback_utils import filter_traceback as _filter_traceback

__all__ = list(dict.fromkeys([*_numpy_names, *_composite_names, *nn.__all__, "nn"]))

# A user's call of a public op shows the user's line, not the op's internals (the
# library's own modules import the ops from their defining modules, unwrapped).
for _name in __all__:
    if _name != "nn":
        globals()[_name] = _filter_traceback(globals()[_name])


def __getattr__(name: str):
    raise NotImplementedError(f"keras.ops.{name} is not supported by kcompile yet")
