"""Symbolic tensors: what calling a layer on ``Input`` returns (Keras's KerasTensor)."""

from __future__ import annotations

from collections.abc import Sequence

from kcompile.ir import BATCH, DType, TensorType

_DTYPES = {
    "float32": DType.f32,
    "float64": DType.f32,
    "float16": DType.f16,
    "bfloat16": DType.bf16,
    "int32": DType.i32,
    "int64": DType.i32,
    "int8": DType.i32,
    "int16": DType.i32,
    "uint8": DType.i32,
    "bool": DType.bool,
}


def ir_dtype(dtype: str | None) -> DType:
    if dtype is None:
        return DType.f32
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(
            f"unsupported dtype {dtype!r}; expected one of {sorted(_DTYPES)}"
        ) from None


class KerasTensor:
    """Shape (with ``None`` for the batch), dtype, and the layer call that made it."""

    def __init__(self, shape: tuple, dtype: str = "float32", name: str | None = None) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self._history: tuple | None = None  # (CallRecord, output index)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dynamic(self) -> bool:
        """Whether a dimension other than the batch is unknown (``Input((None, 8))``)."""
        return any(d is None for d in self.shape[1:])

    def ir_type(self, sizes: Sequence[int] | int | None = None) -> TensorType:
        """The IR type, the batch dimension N. Unknown dimensions take their size from
        ``sizes``: the data's shape without the batch (a step specialized on that data),
        or one size for all of them (the probes of shape inference)."""
        dims = []
        for i, d in enumerate(self.shape):
            if d is not None:
                dims.append(int(d))
            elif i == 0:
                dims.append(BATCH)
            elif isinstance(sizes, int):
                dims.append(sizes)
            elif sizes is not None and len(sizes) == len(self.shape) - 1:
                dims.append(int(sizes[i - 1]))
            else:
                raise ValueError(
                    f"tensor {self.name or ''} of shape {self.shape} has an unknown "
                    f"dimension {i}: steps are compiled for the shapes of the data, which "
                    "fit, evaluate and predict see; give them elsewhere (step_graph("
                    "input_shapes=...), export(probe=...), kcompile ir --input-shape) or "
                    "fix the dimension in Input(shape=...)"
                )
        return TensorType(ir_dtype(self.dtype), tuple(dims))

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def keras_shape(shape) -> tuple:
    """A shape as Keras prints it: None for the batch dimension N."""
    return tuple(None if d == BATCH else d for d in shape)


def keras_dtype(t: TensorType) -> str:
    return t.dtype.keras_name
