"""``keras.Variable``: a weight made by a program itself, with Keras's constructor
(``initializer``, ``shape``, ``name``, ...). It is a kcompile weight: ``keras.ops`` and
custom layers use it as they use a layer's weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.session import unique_name
from kcompile.backend.variables import Variable


class KerasVariable(Variable):
    """A float32 (or bfloat16, float16) weight from an array or an initializer (a name, an ``Initializer`` or a
    callable ``(shape, dtype)``), named ``name`` (``variable``, ``variable_1``, ... by
    default)."""

    def __init__(
        self,
        initializer: Any,
        shape: Any = None,
        dtype: Any = None,
        trainable: bool = True,
        autocast: bool = True,
        aggregation: str = "none",
        synchronization: str = "auto",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        from kcompile.backend.dtypes import standardize_dtype
        from kcompile.backend.variables import variable_dtype

        dtype = variable_dtype(None if dtype is None else standardize_dtype(dtype))
        if kwargs.get("layout") is not None:
            raise NotImplementedError("keras.Variable(layout=...): no sharded layouts here")
        if name is not None and "/" in name:
            raise ValueError(f"keras.Variable: the name may not contain '/', got {name!r}")
        if isinstance(initializer, str) or (
            callable(initializer) and not isinstance(initializer, np.ndarray)
        ):
            if shape is None:
                raise ValueError(
                    "keras.Variable: an initializer needs a shape, e.g. "
                    "keras.Variable(initializer='zeros', shape=(3,))"
                )
            from kcompile.initializers import get

            value = np.asarray(get(initializer)(tuple(shape), "float32"))
        else:
            value = np.asarray(initializer, np.float32)
            if shape is not None and tuple(shape) != value.shape:
                raise ValueError(
                    f"keras.Variable: initial value of shape {value.shape} does not match "
                    f"shape={tuple(shape)}"
                )
        super().__init__(value, name or unique_name("variable"), trainable, dtype)
        self.autocast, self.aggregation, self.synchronization = (
            autocast,
            aggregation,
            (synchronization),
        )

    def __repr__(self) -> str:
        return (
            f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}, "
            f"value={self.value!r}>"
        )
