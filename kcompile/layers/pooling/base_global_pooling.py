"""What the global pooling layers share (Keras's ``BaseGlobalPooling``): the data format,
``keepdims`` and the axes they reduce."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer


class BaseGlobalPooling(Layer):
    """Global pooling over the spatial axes: those between the batch and the channels
    (``channels_last``), or after the channels (``channels_first``)."""

    def __init__(
        self, data_format: str | None = None, keepdims: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': data_format must be 'channels_last' or "
                f"'channels_first', got {data_format!r}"
            )
        self.keepdims = keepdims
        self.data_format = data_format or "channels_last"

    def axes(self, x) -> tuple[int, ...]:
        if self.data_format == "channels_first":
            return tuple(range(2, x.rank))
        return tuple(range(1, x.rank - 1))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}
