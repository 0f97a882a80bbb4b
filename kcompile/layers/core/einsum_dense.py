"""Keras's ``EinsumDense``: ``einsum(equation, inputs, kernel)``, plus a bias over
``bias_axes``, then the activation; the weight shapes follow from the equation as
Keras's ``_analyze_einsum_string`` makes them (ported below), LoRA included; quantized to
int8 or int4 as Keras quantizes it, its scales' layouts from
``_analyze_quantization_info`` (ported below)."""

from __future__ import annotations

import math
import re
import string
from typing import Any

import numpy as np

from kcompile import activations, constraints, initializers, ops, quantizers, regularizers
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.initializers import Initializer, VarianceScaling
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers import lora
from kcompile.layers.input_spec import InputSpec
from kcompile.layers.layer import Layer
from kcompile.utils.config_serialization import serialize_optional


class EinsumDense(lora.LoraLayer, Layer):
    propagates_mask = True
    quantizes_int4 = True

    def __init__(
        self,
        equation: str,
        output_shape: Any,
        activation: Any = None,
        bias_axes: str | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        gptq_unpacked_column_size: Any = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if gptq_unpacked_column_size is not None:
            raise NotImplementedError(
                f"EinsumDense '{self.name}': gptq_unpacked_column_size is not supported "
                "(kcompile has no GPTQ quantization)"
            )
        self.equation = equation
        if isinstance(output_shape, int):
            self.partial_output_shape = (output_shape,)
        else:
            self.partial_output_shape = tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        lora.init_args(self, lora_rank, lora_alpha)
        self.quantization_config = quantizers.layer_config(self, quantization_config)

    def build(self, input_shape):
        kernel_shape, bias_shape, _, input_axes, output_axes = analyze_einsum_string(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape
        )
        self.input_spec = InputSpec(ndim=len(input_shape))
        initializer = self.kernel_initializer
        # (A kernel shape with None in it is refused by add_weight, naming the layer.)
        if isinstance(initializer, VarianceScaling) and None not in kernel_shape:
            # Keras's fans are those of the equation's input and output axes.
            initializer = _FannedVarianceScaling(initializer, kernel_shape, input_axes, output_axes)
        if self.quantization_mode is not None:  # (a quantized layer loaded from its config)
            self.quantized_build(tuple(kernel_shape), self.quantization_mode)
        else:
            self._kernel = self.add_weight(
                tuple(kernel_shape),
                initializer,
                name="kernel",
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
        self.bias = (
            self.add_weight(
                tuple(bias_shape),
                self.bias_initializer,
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if bias_shape is not None
            else None
        )
        self.built = True
        if self.lora_rank:
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    @property
    def kernel(self):
        """Keras's: the kernel variable; once quantized to int4, its values unpacked (int8,
        the kernel's shape); with LoRA, the sum of those values and the low-rank delta."""
        if not self.built:
            raise AttributeError("You must build the layer before accessing `kernel`.")
        kernel = self._kernel
        if self.quantization_mode == "int4":  # (Keras's: the values unpacked, int8)
            unpacked = quantizers.unpack_int4(self._kernel.numpy(), self._int4_columns, axis=-1)
            kernel = unpacked.reshape(self.original_kernel_shape)
        if self.lora_enabled:
            delta = ops.matmul(self.lora_kernel_a, self.lora_kernel_b)
            return ops.add(kernel, (self.lora_alpha / self.lora_rank) * delta)
        return kernel

    def _lora_base_shape(self) -> tuple[int, ...]:
        if self.quantization_mode == "int4":  # (the packed kernel has another shape)
            return tuple(self.original_kernel_shape)
        return tuple(self._kernel.shape)

    def compute_output_shape(self, input_shape) -> tuple:
        """Keras's: the given ``output_shape`` filled in from the equation. As in Keras, an
        axis given as None stays None, and with a leading ellipsis over two or more axes
        they come out reversed (Keras's ``_analyze_split_string`` inserts each at 1); a
        call on tensors gives the traced, true shape."""
        return tuple(
            analyze_einsum_string(
                self.equation, self.bias_axes, tuple(input_shape), self.partial_output_shape
            )[2]
        )

    def call(self, inputs, training=None):
        if self.quantization_mode == "int8":
            return self._int8_call(inputs)
        if self.quantization_mode == "int4":
            return self._int4_call(inputs)
        x = ops.einsum(explicit_equation(self.equation, len(inputs.shape)), inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "output_shape": self.partial_output_shape,
            "equation": self.equation,
            "activation": activations.serialize(self.activation),
            "bias_axes": self.bias_axes,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _serialize_regularizer(self.kernel_regularizer),
            "bias_regularizer": _serialize_regularizer(self.bias_regularizer),
            "activity_regularizer": _serialize_regularizer(self.activity_regularizer),
            "kernel_constraint": serialize_optional(constraints, self.kernel_constraint),
            "bias_constraint": serialize_optional(constraints, self.bias_constraint),
            "quantization_config": quantizers.serialize_config(self.quantization_config),
        }
        if self.lora_rank:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        return config

    # --- int8 and int4, as Keras 3.15.1's EinsumDense ---------------------------------

    def quantize(self, mode: Any = None, type_check: bool = True, config: Any = None) -> None:
        """Keras's: the kernel replaced by int8 values and a scale per output channel
        (abs-max over the axes the equation sums), laid out to broadcast against the
        output; the policy by ``int8_from_<policy>``. Or int4 (``_quantize_int4``), the
        policy by ``int4/<block_size>_from_<policy>``."""
        mode = quantizers.resolve_mode(mode, config)
        quantizers.check_quantize_args(self, mode)
        if type_check and type(self) is not EinsumDense:  # (Keras's: subclasses stay float)
            raise quantizers.not_implemented(self)
        self.quantization_config = quantizers.layer_config(
            self, config or quantizers.default_config(mode)
        )
        self._set_quantization_info()
        if mode == "int4":
            self._quantize_int4()
            return
        old = self._kernel
        values, scale = quantizers.abs_max_quantize(
            old.numpy(), axis=self._kernel_reduced_axes, to_numpy=True
        )
        scale = self._adjust_scale_for_quant(scale, "kernel")
        self._forget_variable(old)
        self.quantized_build(old.shape, mode)
        self._kernel.assign(values)
        self.kernel_scale.assign(scale)
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = quantizers.quantized_policy(self, mode)

    def _quantize_int4(self) -> None:
        """Keras's int4 ``quantize``: the kernel flattened to (summed rows, other
        columns) by a plain reshape of its values (Keras's ``ops.reshape``, not a
        transpose: with the summed axes not leading, a row mixes kernel axes, as in
        Keras), quantized per channel or in groups (``quantize_int4_kernel``) and packed
        along the columns."""
        old = self._kernel
        rows, columns = self._int4_flat_shape(old.shape)
        block_size = quantizers.int4_block_size(self, self.quantization_config)
        packed, scale, zero = quantizers.quantize_int4_kernel(
            old.numpy().reshape(rows, columns), block_size
        )
        self._forget_variable(old)
        self.quantized_build(old.shape, "int4", self.quantization_config)
        self._kernel.assign(packed)
        self.kernel_scale.assign(scale)
        if zero is not None:
            self.kernel_zero.assign(zero)
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = quantizers.quantized_policy(self, "int4")

    def _int4_flat_shape(self, kernel_shape: Any) -> tuple[int, int]:
        """(product of the summed axes, product of the others), Keras's rows and columns."""
        reduced = self._kernel_reduced_axes
        rows = math.prod(d for i, d in enumerate(kernel_shape) if i in reduced)
        columns = math.prod(d for i, d in enumerate(kernel_shape) if i not in reduced)
        return rows, columns

    def _int4_build(self, kernel_shape: tuple, config: Any) -> None:
        """Keras's ``_int4_build``, all frozen: the packed (rows, ceil(columns / 2)) int8
        kernel; per channel a scale per column; in groups of ``block_size`` rows a
        (groups, columns) scale and int8 zero point, and ``g_idx`` (float32)."""
        self.original_kernel_shape = tuple(kernel_shape)
        rows, columns = self._int4_flat_shape(kernel_shape)
        block_size = quantizers.int4_block_size(self, config or self.quantization_config)
        self._int4_columns = columns
        self._int4_block_size = quantizers.grouped_block_size(block_size)
        self._kernel = quantizers.add_int4_variables(self, rows, columns, self._int4_block_size)
        self._is_quantized = True

    def _int4_call(self, inputs: TracedTensor) -> TracedTensor:
        """Keras's ``_int4_call``, weight-only: the einsum of the float inputs with the
        dequantized kernel (per channel ``q / kernel_scale``, in groups ``(q - zero) *
        scale``), reshaped back to the kernel's shape; its autodiff is Keras's custom
        gradient (the einsum's, with that kernel)."""
        ctx = current_context()
        x = inputs.value
        packed = ctx.weight(self._kernel)
        kernel_scale = ctx.weight(self.kernel_scale)
        if self._int4_block_size is None:
            unpacked = quantizers.dequantize_int4_in_graph(packed, self._int4_columns)
            float_kernel = B.div(B.cast(unpacked, x.dtype), kernel_scale)
        else:
            grouped = (kernel_scale, ctx.weight(self.kernel_zero), ctx.weight(self.g_idx))
            float_kernel = quantizers.dequantize_int4_in_graph(packed, self._int4_columns, grouped)
        float_kernel = B.reshape(B.cast(float_kernel, x.dtype), self.original_kernel_shape)
        terms, out = explicit_equation(self.equation, x.rank).split("->")
        ta, tb = terms.split(",")
        from kcompile.ops.numpy import _einsum2

        y = self._lora_added(ctx, x, _einsum2(ta, tb, out, x, float_kernel))
        if self.bias is not None:
            y = B.add(y, ctx.weight(self.bias))
        result = TracedTensor(y)
        return self.activation(result) if self.activation is not None else result

    def quantized_build(self, kernel_shape: Any, mode: Any, config: Any = None) -> None:
        """Keras's ``_int8_build`` (an int8 kernel and its scale, both frozen) or
        ``_int4_build``."""
        if mode == "int4":
            self._set_quantization_info()
            self._int4_build(tuple(kernel_shape), config)
            return
        if mode != "int8":
            quantizers.refuse_mode(mode, f"EinsumDense '{self.name}'")
            raise quantizers.not_implemented(self, "quantized_build")
        self._set_quantization_info()
        self.quantization_axis = tuple(self._input_reduced_axes)
        self._kernel = self.add_weight(
            tuple(kernel_shape), "zeros", dtype="int8", trainable=False, name="kernel"
        )
        self.kernel_scale = self.add_weight(
            tuple(self._get_kernel_scale_shape(kernel_shape)),
            "ones",
            trainable=False,
            name="kernel_scale",
        )
        self._is_quantized = True

    def _int8_call(self, inputs: TracedTensor) -> TracedTensor:
        """Keras's ``_int8_call``: inputs quantized over the summed axes, the int8 einsum
        into int32, cast to the compute dtype, divided by ``inputs_scale *
        kernel_scale``; the input's gradient that of the einsum with the dequantized
        kernel."""
        ctx = current_context()
        x = inputs.value
        kernel = ctx.weight(self._kernel)
        kernel_scale = ctx.weight(self.kernel_scale)
        quantized, inputs_scale = quantizers.quantize_in_graph(x, self.quantization_axis)
        inputs_scale = self._adjust_scale_for_quant(inputs_scale, "input")
        terms, out = explicit_equation(self.equation, x.rank).split("->")
        ta, tb = terms.split(",")
        y = B.cast(quantizers.i8_product(ta, tb, out, quantized, kernel), x.dtype)
        y = B.div(y, B.mul(inputs_scale, kernel_scale))
        float_kernel = quantizers.dequantized(
            kernel, self._adjust_scale_for_dequant(kernel_scale), x.dtype
        )
        from kcompile.ops.numpy import _einsum2

        y = B.gradient_via(y, _einsum2(ta, tb, out, x, float_kernel))
        y = self._lora_added(ctx, x, y)
        if self.bias is not None:
            y = B.add(y, ctx.weight(self.bias))
        result = TracedTensor(y)
        return self.activation(result) if self.activation is not None else result

    def _lora_added(self, ctx: Any, x: Value, y: Value) -> Value:
        """A quantized call's result plus Keras's LoRA term, ``(alpha / rank) *
        einsum(x, a) @ b``, if LoRA is enabled."""
        if not self.lora_enabled:
            return y
        from kcompile.ops.numpy import _einsum2

        terms, out = explicit_equation(self.equation, x.rank).split("->")
        ta, tb = terms.split(",")
        lora_x = _einsum2(ta, tb, out, x, ctx.weight(self.lora_kernel_a))
        return lora.added_to_output(self, ctx, y, lora_x)

    def _keras_saved_order(self):
        return lora.saved_order(self, self._kernel)

    def _keras_saved_values(self) -> dict:
        """The kernel Keras saves with LoRA: merged (``lora.merged_kernel_values``)."""
        return lora.merged_kernel_values(
            self,
            getattr(self, "_int4_columns", 0),
            getattr(self, "original_kernel_shape", ()),
            getattr(self, "_kernel_reduced_axes", ()),
            self._adjust_scale_for_dequant,
            self._adjust_scale_for_quant,
        )

    @property
    def variable_serialization_spec(self) -> dict:
        """Keras's: for each quantization mode, the names of the variables its weights
        file holds, in order (``float8``, ``gptq`` and ``awq`` kcompile refuses)."""
        return {
            None: ["kernel", "bias"],
            "int8": ["kernel", "bias", "kernel_scale"],
            "int4": ["kernel", "bias", "kernel_scale", "kernel_zero", "g_idx"],
        }

    def _set_quantization_info(self) -> None:
        if hasattr(self, "_input_reduced_axes"):
            return
        (
            self._input_reduced_axes,
            self._kernel_reduced_axes,
            self._input_transpose_axes,
            self._kernel_transpose_axes,
            self._input_expand_axes,
            self._kernel_expand_axes,
            self._input_squeeze_axes,
            self._kernel_squeeze_axes,
            self._custom_gradient_equation,
            self._kernel_reverse_transpose_axes,
        ) = _analyze_quantization_info(self.equation, self.input_spec.ndim)

    def _get_kernel_scale_shape(self, kernel_shape: Any) -> list:
        """Keras's: the kernel's shape with its reduced axes 1, laid out as the
        output."""
        shape = np.array(kernel_shape)
        shape[self._kernel_reduced_axes] = 1
        shape = shape[self._kernel_transpose_axes].tolist()
        for a in sorted(self._kernel_expand_axes):
            shape.insert(a, 1)
        for a in sorted(self._kernel_squeeze_axes, reverse=True):
            shape.pop(a)
        return [int(d) for d in shape]

    def _adjust_scale_for_quant(self, scale: Any, tensor_type: str = "kernel") -> Any:
        """Keras's: a scale (an array or a graph value) transposed, expanded and
        squeezed to broadcast against the output."""
        if tensor_type == "kernel":
            axes = (self._kernel_transpose_axes, self._kernel_expand_axes)
            squeeze = self._kernel_squeeze_axes
        else:
            axes = (self._input_transpose_axes, self._input_expand_axes)
            squeeze = self._input_squeeze_axes
        transpose, expand = axes
        if transpose:
            scale = _transpose(scale, transpose)
        if expand:
            scale = _reshape(scale, _expanded(tuple(scale.shape), expand))
        if squeeze:
            scale = _reshape(scale, _squeezed(tuple(scale.shape), squeeze))
        return scale

    def _adjust_scale_for_dequant(self, scale: Any) -> Any:
        """Keras's: the inverse of ``_adjust_scale_for_quant`` for the kernel's scale."""
        if self._kernel_squeeze_axes:
            scale = _reshape(scale, _expanded(tuple(scale.shape), self._kernel_squeeze_axes))
        if self._kernel_expand_axes:
            scale = _reshape(scale, _squeezed(tuple(scale.shape), self._kernel_expand_axes))
        if self._kernel_transpose_axes:
            axes = self._kernel_transpose_axes
            scale = _transpose(scale, sorted(range(len(axes)), key=axes.__getitem__))
        return scale


def _expanded(shape: tuple, axes: Any) -> tuple:
    """numpy's ``expand_dims(shape, axes)`` on a shape."""
    axes = [axes] if isinstance(axes, int) else list(axes)
    rank = len(shape) + len(axes)
    axes = sorted(a % rank for a in axes)
    out, it = [], iter(shape)
    for i in range(rank):
        out.append(1 if i in axes else next(it))
    return tuple(out)


def _squeezed(shape: tuple, axes: Any) -> tuple:
    axes = [axes] if isinstance(axes, int) else list(axes)
    axes = {a % len(shape) for a in axes}
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _transpose(x: Any, perm: Any) -> Any:
    return B.transpose(x, tuple(perm)) if isinstance(x, Value) else np.transpose(x, perm)


def _reshape(x: Any, shape: tuple) -> Any:
    return B.reshape(x, shape) if isinstance(x, Value) else np.reshape(x, shape)


def _analyze_quantization_info(equation: str, input_rank: int) -> tuple:
    """Keras's ``_analyze_quantization_info``, ported as it is (its squeeze branch keeps
    the previous ``index``, as Keras's does): the axes each quantizer reduces and how
    each scale is laid out against the output."""
    input_spec, weight_spec, output_spec = _quantization_specs(equation, input_rank)
    input_reduced = [i for i, c in enumerate(input_spec) if output_spec.find(c) == -1]
    weight_reduced = [i for i, c in enumerate(weight_spec) if output_spec.find(c) == -1]
    input_expand = [i for i, c in enumerate(output_spec) if input_spec.find(c) == -1]
    weight_expand = [i for i, c in enumerate(output_spec) if weight_spec.find(c) == -1]
    input_transpose = [input_spec.find(c) for c in output_spec if input_spec.find(c) != -1]
    weight_transpose = [weight_spec.find(c) for c in output_spec if weight_spec.find(c) != -1]
    input_squeeze: list[int] = []
    weight_squeeze: list[int] = []
    index = None
    for ori in input_reduced:
        try:
            index = input_expand.pop(0)
        except IndexError:
            input_squeeze.append(ori)
        input_transpose.insert(index, ori)
    for ori in weight_reduced:
        try:
            index = weight_expand.pop(0)
        except IndexError:
            weight_squeeze.append(ori)
        weight_transpose.insert(index, ori)
    gradient_equation = f"{output_spec},{weight_spec}->{input_spec}"
    reverse = [i for (_, i) in sorted((v, i) for (i, v) in enumerate(weight_transpose))]
    return (
        input_reduced,
        weight_reduced,
        input_transpose,
        weight_transpose,
        input_expand,
        weight_expand,
        input_squeeze,
        weight_squeeze,
        gradient_equation,
        reverse,
    )


def _quantization_specs(equation: str, input_rank: int) -> tuple[str, str, str]:
    """The equation's three specs, an ellipsis spelled out with free letters (Keras's
    ``get_specs``)."""
    dot_replaced = re.sub(r"\.\.\.", "0", equation)
    split = re.match("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", dot_replaced)
    if split is not None:
        return split.group(1), split.group(2), split.group(3)
    for pattern, left in (
        ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", True),
        ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", False),
    ):
        split = re.match(pattern, dot_replaced)
        if split is None:
            continue
        inp, weight, out = split.group(1), split.group(2), split.group(3)
        free = sorted(set(string.ascii_letters) - set(inp) - set(weight) - set(out))
        for i in range(input_rank - len(inp)):
            inp, out = (free[i] + inp, free[i] + out) if left else (inp + free[i], out + free[i])
        return inp, weight, out
    raise ValueError(
        f"Invalid einsum equation '{equation}'. Equations must be in the form "
        "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...."
    )


def _serialize_regularizer(regularizer: Any) -> Any:
    return None if regularizer is None else regularizers.serialize(regularizer)


class _FannedVarianceScaling(Initializer):
    """A VarianceScaling whose fans are the products of the kernel's input and output
    axes (Keras's ``input_axes``/``output_axes``): drawn as the (fan_in, fan_out) matrix
    of as many numbers, then laid out in the kernel's shape."""

    def __init__(self, base: VarianceScaling, shape, input_axes, output_axes) -> None:
        super().__init__(base.seed)
        self.base = base
        self.fans = (
            math.prod(shape[i] for i in input_axes),
            math.prod(shape[i] for i in output_axes),
        )

    def sample(self, shape):
        return self.base.sample(self.fans).reshape(shape)


def explicit_equation(equation: str, rank: int) -> str:
    """``equation`` with its ellipsis spelled out for inputs of ``rank`` (free letters,
    as Keras's quantization code names them), for an einsum that takes letters only."""
    if "..." not in equation:
        return equation
    inputs, weights_out = equation.split(",", 1)
    weights, output = weights_out.split("->")
    named = inputs.replace("...", "")
    used = set(equation) - {".", ",", "-", ">"}
    free = sorted(set(string.ascii_letters) - used)[: rank - len(named)]
    filler = "".join(free)
    return f"{inputs.replace('...', filler)},{weights}->{output.replace('...', filler)}"


def analyze_einsum_string(equation: str, bias_axes: str | None, input_shape, output_shape):
    """Keras's ``_analyze_einsum_string``: (kernel shape, bias shape or None, full output
    shape, the kernel's input axes, its output axes)."""
    dot_replaced = re.sub(r"\.\.\.", "0", equation)
    split = re.match("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", dot_replaced)
    if split:
        return _analyze_split_string(split, bias_axes, input_shape, output_shape)
    split = re.match("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", dot_replaced)
    if split:
        return _analyze_split_string(split, bias_axes, input_shape, output_shape, left_elided=True)
    split = re.match("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", dot_replaced)
    if split:
        return _analyze_split_string(split, bias_axes, input_shape, output_shape)
    raise ValueError(
        f"Invalid einsum equation '{equation}'. Equations must be in the form "
        "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...."
    )


def _analyze_split_string(split, bias_axes, input_shape, output_shape, left_elided=False):
    input_spec, weight_spec, output_spec = split.group(1), split.group(2), split.group(3)
    elided = len(input_shape) - len(input_spec)
    output_shape = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    output_shape.insert(0, input_shape[0])
    if elided > 0 and left_elided:
        for i in range(1, elided):
            output_shape.insert(1, input_shape[i])
    elif elided > 0:
        for i in range(len(input_shape) - elided, len(input_shape)):
            output_shape.append(input_shape[i])
    if left_elided:
        input_dim_map = {dim: (i + elided) - len(input_shape) for i, dim in enumerate(input_spec)}
        output_dim_map = {dim: i + elided for i, dim in enumerate(output_spec)}
    else:
        input_dim_map = {dim: i for i, dim in enumerate(input_spec)}
        output_dim_map = {dim: i for i, dim in enumerate(output_spec)}
    for dim in input_spec:
        at_input = input_shape[input_dim_map[dim]]
        if dim in output_dim_map:
            at_output = output_shape[output_dim_map[dim]]
            if at_output is not None and at_output != at_input:
                raise ValueError(
                    "Input shape and output shape do not match at shared dimension "
                    f"'{dim}'. Input shape is {at_input}, and output shape is {at_output}."
                )
    for dim in output_spec:
        if dim not in input_spec and dim not in weight_spec:
            raise ValueError(
                f"Dimension '{dim}' was specified in the output '{output_spec}' but has no "
                f"corresponding dim in the input spec '{input_spec}' or weight spec "
                f"'{output_spec}'"
            )
    weight_shape, input_axes, output_axes = [], [], []
    for i, dim in enumerate(weight_spec):
        if dim in output_dim_map:
            weight_shape.append(output_shape[output_dim_map[dim]])
            output_axes.append(i)
        elif dim in input_dim_map:
            weight_shape.append(input_shape[input_dim_map[dim]])
            input_axes.append(i)
        else:
            raise ValueError(
                f"Weight dimension '{dim}' did not have a match in either the input spec "
                f"'{input_spec}' or the output spec '{output_spec}'. For this layer, the "
                "weight must be fully specified."
            )
    bias_shape = None
    if bias_axes is not None:
        num_left_elided = elided if left_elided else 0
        idx_map = {char: output_shape[i + num_left_elided] for i, char in enumerate(output_spec)}
        for char in bias_axes:
            if char not in output_spec:
                raise ValueError(
                    f"Bias dimension '{char}' was requested, but is not part of the output "
                    f"spec '{output_spec}'"
                )
        first = min(output_spec.find(char) for char in bias_axes)
        bias_shape = [idx_map[c] if c in bias_axes else 1 for c in output_spec[first:]]
        if not left_elided:
            bias_shape.extend([1] * max(elided, 0))
    return weight_shape, bias_shape, output_shape, input_axes, output_axes
