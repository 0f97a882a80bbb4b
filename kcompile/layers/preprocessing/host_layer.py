"""The base of the layers numpy computes on the host before the compiled step
(``StringLookup``, ``IntegerLookup``, ``TextVectorization``).

Strings never enter native code. Called on data, a layer returns numpy arrays (as Keras's
return tensors); called on a model ``Input``, it becomes the model's host stage: the
compiled step takes its output (token ids, or counts) as its input, and ``fit``,
``evaluate`` and ``predict`` run the stage on each input array first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor
from kcompile.layers.layer import CallRecord, Layer


class HostLayer(Layer):
    """A layer numpy computes before the compiled step (strings, vocabularies)."""

    host = True

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, KerasTensor):
            return self._host_symbolic(inputs)
        if isinstance(inputs, TracedTensor):
            raise TypeError(
                f"layer '{self.name}' ({type(self).__name__}) runs on the host before the "
                "compiled step: call it on data, or on a model Input, not inside a call()"
            )
        return self.host_call(inputs)

    def _host_symbolic(self, t: KerasTensor) -> KerasTensor:
        if getattr(t, "_input_layer", None) is None:
            raise NotImplementedError(
                f"layer '{self.name}' ({type(self).__name__}) runs on the host before the "
                "compiled step, so it must take a model Input directly"
            )
        shape, dtype = self.output_spec(t.shape)
        out = KerasTensor(shape, dtype, name=self.name)
        record = CallRecord(self, [t], [out], None)
        self._calls.append(record)
        out._history = (record, 0)
        self.built = True
        return out

    def host_call(self, data: Any) -> np.ndarray:
        raise NotImplementedError

    def output_spec(self, shape: tuple) -> tuple[tuple, str]:
        raise NotImplementedError

    def count_params(self) -> int:
        return 0
