"""Keras's ``Hashing``: values to ``num_bins`` bins by TensorFlow's string hashes
(farmhash ``Fingerprint64``, or SipHash-2-4 under ``salt``), on the host.

As Keras does, every value is hashed as a string: integers in decimal, floats first
truncated to integers, strings as their UTF-8 bytes; with ``mask_value`` bin 0 is kept
for it and the others shift by one. The bins are Keras's, bit for bit
(``string_hashing`` reimplements the hashes; tests check them against TensorFlow's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.layers.preprocessing.host_layer import HostLayer
from kcompile.layers.preprocessing.index_lookup import encode
from kcompile.layers.preprocessing.string_hashing import fingerprint64, siphash24

_MODES = ("int", "one_hot", "multi_hot", "count")


def value_bytes(value: Any) -> bytes:
    """The string TensorFlow's ``as_string`` makes of a value Keras hashes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool | np.bool_):
        return b"true" if value else b"false"
    if isinstance(value, float | np.floating):
        # TensorFlow's cast to int64: truncation; out of range (and NaN) is int64's minimum
        inside = np.isfinite(value) and -(2.0**63) <= value < 2.0**63
        value = int(value) if inside else np.iinfo(np.int64).min
    return str(int(value)).encode("ascii")


class Hashing(HostLayer):
    def __init__(
        self,
        num_bins: int,
        mask_value: Any = None,
        salt: Any = None,
        output_mode: str = "int",
        sparse: bool = False,
        **kwargs: Any,
    ) -> None:
        dtype = kwargs.get("dtype")
        if isinstance(dtype, dict):  # a dtype policy as Keras's config writes it
            dtype = dtype.get("config", {}).get("name")
        if dtype is None:
            dtype = "int64" if output_mode == "int" else "float32"
        kwargs["dtype"] = dtype
        super().__init__(**kwargs)
        self.dtype_name = str(getattr(dtype, "name", dtype))
        if num_bins is None or num_bins <= 0:
            raise ValueError(
                "The `num_bins` for `Hashing` cannot be `None` or non-positive values. "
                f"Received: num_bins={num_bins}."
            )
        if output_mode == "int" and self.dtype_name not in ("int32", "int64"):
            raise ValueError(
                "When `output_mode=\"int\"`, `dtype` should be an integer type, 'int32' or "
                f"'in64'. Received: dtype={dtype}"
            )
        if output_mode not in _MODES:
            raise ValueError(
                f"Invalid value for argument `output_mode`. Expected one of {_MODES}. "
                f"Received: output_mode={output_mode}"
            )
        if sparse and output_mode == "int":
            raise ValueError(
                '`sparse` may only be true if `output_mode` is `"one_hot"`, `"multi_hot"`, '
                f'or `"count"`. Received: sparse={sparse} and output_mode={output_mode}'
            )
        if sparse:
            raise NotImplementedError(
                f"Hashing '{self.name}': sparse outputs are TensorFlow's SparseTensor; "
                "kcompile's outputs are dense"
            )
        self.num_bins = num_bins
        self.mask_value = mask_value
        self.strong_hash = salt is not None
        self.output_mode = output_mode
        self.sparse = sparse
        self.salt = None
        if salt is not None:
            if isinstance(salt, tuple | list) and len(salt) == 2:
                self.salt = list(salt)
            elif isinstance(salt, int):
                self.salt = [salt, salt]
            else:
                raise ValueError(
                    "The `salt` argument for `Hashing` can only be a tuple of size 2 "
                    f"integers, or a single integer. Received: salt={salt}."
                )

    def hash_values(self, values: np.ndarray) -> np.ndarray:
        """Keras's ``_hash_values_to_bins``: the bin of each value (int64)."""
        values = np.asarray(values)
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mask = values == self.mask_value
        flat = values.ravel().tolist() if values.dtype != object else list(values.ravel())
        if values.dtype.kind == "f":
            flat = [float(v) for v in flat]
        if self.strong_hash:
            key = (self.salt[0], self.salt[1])

            def hashed(s: bytes) -> int:
                return siphash24(key, s)
        else:
            hashed = fingerprint64
        cache: dict[Any, int] = {}
        out = np.empty(len(flat), np.int64)
        for i, v in enumerate(flat):
            b = cache.get(v)
            if b is None:
                b = cache[v] = hashed(value_bytes(v)) % bins
            out[i] = b
        out = out.reshape(values.shape)
        if mask is not None:
            out = np.where(mask, 0, out + 1)
        return out

    def host_call(self, data: Any) -> np.ndarray:
        values = np.asarray(data)
        if values.dtype.kind == "U":
            values = values.astype(object)
        if self.output_mode == "one_hot" and values.ndim and values.shape[-1] == 1:
            values = values[..., 0]
        bins = self.hash_values(values)
        if self.output_mode == "int":
            return bins.astype(self.dtype_name)
        return encode(bins, self.output_mode, self.num_bins, None)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        if self.output_mode == "int":
            return tuple(input_shape)
        if len(input_shape) == 0:
            return (self.num_bins,)
        return (*tuple(input_shape)[:-1], self.num_bins)

    def output_spec(self, shape: tuple) -> tuple[tuple, str]:
        if self.output_mode == "int":
            return tuple(shape), "int32"  # the compiled step's integers are int32
        if self.output_mode == "one_hot" and len(shape) > 1 and shape[-1] != 1:
            return (*shape, self.num_bins), "float32"
        return self.compute_output_shape(shape), "float32"

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "dtype": self.dtype_name,
            "num_bins": self.num_bins,
            "salt": self.salt,
            "mask_value": self.mask_value,
            "output_mode": self.output_mode,
            "sparse": self.sparse,
        }
