"""Keras's ``HashedCrossing``: the cross of two or more categorical features hashed into
``num_bins`` bins, as TensorFlow's ``sparse.cross_hashed`` does it (on the host).

Each feature is its integer value, or the farmhash ``Fingerprint64`` of a string; they are
chained with ``FingerprintCat64`` from TensorFlow's default key, and the bin is the result
modulo ``num_bins``, bit for bit as Keras's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor
from kcompile.layers.preprocessing.host_layer import HostLayer
from kcompile.layers.preprocessing.index_lookup import encode
from kcompile.layers.preprocessing.string_hashing import fingerprint64, fingerprint_cat64

# tf.sparse.cross_hashed's hash_key when none is given.
_DEFAULT_HASH_KEY = 0xDECAFCAFFE
_MASK = (1 << 64) - 1


def _feature(value: Any) -> int:
    if isinstance(value, str):
        return fingerprint64(value.encode("utf-8"))
    if isinstance(value, bytes):
        return fingerprint64(value)
    return int(value) & _MASK


class HashedCrossing(HostLayer):
    def __init__(
        self,
        num_bins: int,
        output_mode: str = "int",
        sparse: bool = False,
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if output_mode == "int" and dtype is None:
            dtype = "int64"
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.dtype_name = str(getattr(dtype, "name", dtype or "float32"))
        if sparse:
            raise ValueError("`sparse=True` can only be used with the TensorFlow backend.")
        if output_mode not in ("int", "one_hot"):
            raise ValueError(
                "Unknown value for `output_mode` argument of HashedCrossing. Allowed values "
                f"are: ('int', 'one_hot'). Received: output_mode={output_mode}"
            )
        self.num_bins = num_bins
        self.output_mode = output_mode
        self.sparse = sparse

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        leaves = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        if any(isinstance(x, KerasTensor | TracedTensor) for x in leaves):
            raise NotImplementedError(
                f"layer '{self.name}' (HashedCrossing) runs on the host and takes two or "
                "more inputs; kcompile's host stage takes one model Input per host layer, so "
                "call it on the data (arrays) before fit/predict"
            )
        return self.host_call(inputs)

    def host_call(self, data: Any) -> np.ndarray:
        if not isinstance(data, list | tuple):
            raise ValueError(
                "`HashedCrossing` should be called on a list or tuple of inputs. "
                f"Received: inputs={data}"
            )
        if len(data) < 2:
            raise ValueError(
                f"`HashedCrossing` should be called on at least two inputs. Received: inputs={data}"
            )
        arrays = [np.asarray(x) for x in data]
        arrays = [a.astype(object) if a.dtype.kind == "U" else a for a in arrays]
        shape = arrays[0].shape
        if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
            raise ValueError(
                "All `HashedCrossing` inputs should have shape `()`, `(batch_size)` or "
                f"`(batch_size, 1)`. Received: inputs={data}"
            )
        if any(a.shape != shape for a in arrays[1:]):
            raise ValueError(
                f"All `HashedCrossing` inputs should have equal shape. Received: inputs={data}"
            )
        if not all(a.dtype.kind in "iu" or a.dtype.kind in "OSU" for a in arrays):
            raise ValueError(
                "All `HashedCrossing` inputs should have an integer or string dtype. "
                f"Received: inputs={data}"
            )
        columns = [a.ravel().tolist() for a in arrays]
        out = np.empty(len(columns[0]), np.int64)
        for i in range(len(out)):
            h = _DEFAULT_HASH_KEY
            for column in columns:
                h = fingerprint_cat64(h, _feature(column[i]))
            out[i] = h % self.num_bins
        out = out.reshape(shape)
        if self.output_mode == "int":
            return out.astype(self.dtype_name)
        return encode(out, "one_hot", self.num_bins, None)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        if (
            len(input_shape) != 2
            or not isinstance(input_shape[0], tuple)
            or not isinstance(input_shape[1], tuple)
        ):
            raise ValueError(
                f"Expected as input a list/tuple of 2 tensors. Received input_shape={input_shape}"
            )
        if input_shape[0][-1] != input_shape[1][-1]:
            raise ValueError(
                "Expected the two input tensors to have identical shapes. "
                f"Received input_shape={input_shape}"
            )
        if self.output_mode == "int":
            return tuple(input_shape[0])
        if input_shape[0][-1] != 1:
            return (*input_shape[0], self.num_bins)
        return (*input_shape[0][:-1], self.num_bins)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_bins": self.num_bins,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "name": self.name,
            "dtype": self.dtype_name,
        }
