"""Keras's ``SpectralNormalization``: in training, the wrapped layer runs with its kernel
divided by the kernel's largest singular value, estimated by ``power_iterations`` steps
of power iteration from the persistent vector ``vector_u``.

As on Keras's JAX backend, what persists from a training step is ``vector_u`` (and the
optimizer's update of the kernel, whose gradient flows through the normalization); the
normalized kernel itself is not written back (Keras's ``kernel.assign`` inside a
stateless step is dropped for trainable weights), and inference uses the kernel as is.
A call on data with ``training=True`` likewise leaves the kernel as it was (Keras's eager
call, outside a stateless step, would also write the normalized kernel back).
"""

from __future__ import annotations

from typing import Any

from kcompile import initializers, ops
from kcompile.backend.symbolic import current_context
from kcompile.layers.core.wrapper import Wrapper
from kcompile.layers.input_spec import InputSpec
from kcompile.layers.layer import Layer

_EPSILON = 1e-7  # keras.config.epsilon(), the floor of normalize's norm


def _normalize(x):
    """Keras's ``ops.normalize(x, axis=None)``: ``x * min(rsqrt(sum(x²)), 1/epsilon)``."""
    inverse = ops.minimum(ops.rsqrt(ops.sum(ops.square(x))), 1.0 / _EPSILON)
    return x * inverse


class SpectralNormalization(Wrapper):
    def __init__(self, layer: Layer, power_iterations: int = 1, **kwargs: Any) -> None:
        super().__init__(layer, **kwargs)
        if power_iterations <= 0:
            raise ValueError(
                "`power_iterations` should be greater than zero. Received: "
                f"`power_iterations={power_iterations}`"
            )
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        self.input_spec = InputSpec(min_ndim=1, axes={-1: input_shape[-1]})
        kernel = getattr(self.layer, "kernel", None)
        if kernel is None:
            kernel = getattr(self.layer, "embeddings", None)
        if kernel is None:
            raise ValueError(
                f"{type(self.layer).__name__} object has no attribute 'kernel' nor 'embeddings'"
            )
        self.kernel = kernel
        self.kernel_shape = kernel.shape
        self.vector_u = self.add_weight(
            (1, self.kernel_shape[-1]),
            initializers.TruncatedNormal(stddev=0.02),
            trainable=False,
            name="vector_u",
        )

    @property
    def weights(self) -> list:
        """In Keras's order: the kernel (Keras tracks it as the wrapper's own), vector_u,
        then the wrapped layer's other weights."""
        if not self.built:
            return self.layer.weights
        rest = [w for w in self.layer.weights if w is not self.kernel]
        return [self.kernel, self.vector_u, *rest]

    def call(self, inputs, training=False):
        if not training:
            return self.layer(inputs)
        new_u, new_kernel = self.normalized_weights()
        unchanged = ops.all(ops.equal(self.kernel, 0))  # Keras's cond: an all-zero kernel
        self.vector_u.assign(ops.where(unchanged, self.vector_u, new_u))
        new_kernel = ops.where(unchanged, self.kernel, new_kernel)
        # The wrapped layer reads the normalized kernel for this call only: the step's
        # value of the weight is swapped while it is traced, then restored.
        ctx = current_context()
        updates = ctx.state_updates
        updates[self.kernel] = new_kernel.value
        try:
            return self.layer(inputs)
        finally:
            del updates[self.kernel]

    def normalized_weights(self):
        """Keras's: the new ``vector_u`` and the kernel divided by its estimated largest
        singular value."""
        weights = ops.reshape(self.kernel, (-1, self.kernel_shape[-1]))
        vector_u = ops.convert_to_tensor(self.vector_u)
        vector_v = None
        for _ in range(self.power_iterations):
            vector_v = _normalize(ops.matmul(vector_u, ops.transpose(weights)))
            vector_u = _normalize(ops.matmul(vector_v, weights))
        vector_u = ops.stop_gradient(vector_u)
        vector_v = ops.stop_gradient(vector_v)
        sigma = ops.matmul(ops.matmul(vector_v, weights), ops.transpose(vector_u))
        kernel = ops.reshape(ops.divide(self.kernel, sigma), self.kernel_shape)
        return vector_u, kernel

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "power_iterations": self.power_iterations}
