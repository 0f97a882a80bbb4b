"""``keras.ops.nn``: activations, softmax, one-hot, cross-entropies, moments, normalize.

The activations are kcompile's own (``kcompile.activations``), so a custom layer's
``ops.relu`` has the same derivative at its kink as ``Dense(activation="relu")``.
"""

from __future__ import annotations

from kcompile import activations as A
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops.core import fval, op, unsupported, val
from kcompile.ops.numpy import _axes, _named, _slice_axis, _unary, one_hot
from kcompile.ops.refusals import refusal
from kcompile.ops.sorting import _sorted_last


def _float(x):
    return fval(x)


relu = _unary("relu", A.relu)
relu6 = _unary("relu6", A.relu6)
sigmoid = _unary("sigmoid", A.sigmoid)
tanh = _unary("tanh", A.tanh)
silu = _unary("silu", A.silu)
swish = silu
softplus = _unary("softplus", A.softplus)
softsign = _unary("softsign", A.softsign)
selu = _unary("selu", A.selu)
hard_sigmoid = _unary("hard_sigmoid", A.hard_sigmoid)
hard_silu = _unary("hard_silu", A.hard_silu)
hard_swish = hard_silu
mish = _unary("mish", A.mish)
gelu = _named("gelu", lambda x, approximate=True: A.gelu(_float(x), approximate))
elu = _named("elu", lambda x, alpha=1.0: A.elu(_float(x), alpha))
leaky_relu = _named(
    "leaky_relu", lambda x, negative_slope=0.2: A.leaky_relu(_float(x), negative_slope)
)


@op
def softmax(x, axis=-1):
    v = _float(x)
    return A.softmax(v, normalize_axes(axis, v.rank)[0])


@op
def log_softmax(x, axis=-1):
    v = _float(x)
    return A.log_softmax(v, normalize_axes(axis, v.rank)[0])


@op
def moments(x, axes, keepdims=False, synchronized=False):
    v = _float(x)
    axes = _axes(v, axes)
    mean = B.mean(v, axes, keepdims=True)
    variance = B.mean(B.square(v - mean), axes, keepdims=True)
    if keepdims:
        return mean, variance
    kept = tuple(d for i, d in enumerate(v.shape) if i not in axes)
    return B.reshape(mean, kept), B.reshape(variance, kept)


@op
def normalize(x, axis=-1, order=2, epsilon=None):
    if order != 2:
        raise unsupported("nn.normalize", f"order={order}")
    v = _float(x)
    axes = _axes(v, axis)
    eps = 1e-12 if epsilon is None else epsilon
    return v / B.sqrt(B.maximum(B.reduce_sum(B.square(v), axes, keepdims=True), eps * eps))


def _where(condition, a, b):
    """``select`` with numbers for either branch (float32 constants)."""

    def value(x):
        return x if hasattr(x, "graph") else B.const(condition.graph, float(x), DType.f32)

    return B.select(condition, value(a), value(b))


hard_tanh = _unary("hard_tanh", lambda v: B.minimum(B.maximum(v, -1.0), 1.0))
tanh_shrink = _unary("tanh_shrink", lambda v: v - B.tanh(v))
log_sigmoid = _unary("log_sigmoid", lambda v: -A.softplus(-v))
sparse_sigmoid = _unary(
    "sparse_sigmoid",
    lambda v: _where(B.le(v, -1.0), 0.0, _where(B.ge(v, 1.0), 1.0, (v + 1.0) * 0.5)),
)
sparse_plus = _unary(
    "sparse_plus",
    lambda v: _where(B.le(v, -1.0), 0.0, _where(B.lt(v, 1.0), B.square(v + 1.0) * 0.25, v)),
)
hard_shrink = _named(
    "hard_shrink",
    lambda x, threshold=0.5: (lambda v: _where(B.gt(B.abs(v), threshold), v, 0.0))(_float(x)),
)
squareplus = _named(
    "squareplus", lambda x, b=4: (lambda v: (v + B.sqrt(B.square(v) + b)) * 0.5)(_float(x))
)
celu = _named(
    "celu",
    lambda x, alpha=1.0: (
        lambda v: B.maximum(v, 0.0) + (B.exp(B.minimum(v, 0.0) / alpha) - 1.0) * alpha
    )(_float(x)),
)


@op
def soft_shrink(x, threshold=0.5):
    v = _float(x)
    return _where(
        B.gt(v, threshold), v - threshold, _where(B.lt(v, -threshold), v + threshold, 0.0)
    )


@op
def threshold(x, threshold, default_value):
    v = val(x)
    return _where(B.gt(v, threshold), v, B.const(v.graph, default_value, v.dtype))


@op
def glu(x, axis=-1):
    v = _float(x)
    axis = normalize_axes(axis, v.rank)[0]
    if v.shape[axis] % 2:
        raise ValueError(f"glu: axis {axis} of shape {v.shape} must have an even size")
    half = v.shape[axis] // 2
    return _slice_axis(v, axis, 0, half) * A.sigmoid(_slice_axis(v, axis, half, 2 * half))


@op
def multi_hot(inputs, num_classes, axis=-1, dtype=None, sparse=False):
    """Keras's: a one at each class the last axis of ``inputs`` names."""
    if sparse or axis != -1:
        raise unsupported("nn.multi_hot", "sparse output or classes on another axis")
    ids = val(inputs, DType.i32)
    hot = B.one_hot(ids, num_classes)
    return B.reduce_max(hot, (1 if ids.rank > 1 else 0,))


@op
def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    v = _float(x)
    eps = 1e-7 if epsilon is None else epsilon
    out = v / B.sqrt(B.mean(B.square(v), _axes(v, axis), keepdims=True) + eps)
    return out if scale is None else out * fval(scale)


@op
def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, rms_scaling=False):
    v = _float(x)
    eps = 1e-7 if epsilon is None else epsilon
    axes = _axes(v, axis)
    if rms_scaling:
        mean = B.mean(v, axes, keepdims=True)
        out = v / B.sqrt(B.mean(B.square(v - mean), axes, keepdims=True) + eps)
    elif axes == (v.rank - 1,):
        out = B.layer_norm(v, eps)
    else:
        mean = B.mean(v, axes, keepdims=True)
        out = (v - mean) / B.sqrt(B.mean(B.square(v - mean), axes, keepdims=True) + eps)
    if gamma is not None:
        out = out * fval(gamma)
    return out if beta is None or rms_scaling else out + fval(beta)


@op
def dot_product_attention(
    query,
    key,
    value,
    bias=None,
    mask=None,
    scale=None,
    is_causal=False,
    flash_attention=None,
    attn_logits_soft_cap=None,
):
    """Keras's: softmax(Q·Kᵀ·scale + bias, masked) · V over (batch, seq, heads, dim) inputs;
    masked logits are -0.7 × the largest value of their dtype, as in Keras."""
    if flash_attention or attn_logits_soft_cap is not None:
        raise unsupported("nn.dot_product_attention", "flash attention or a logits soft cap")
    q, k, v = (_float(t) for t in (query, key, value))
    if q.rank != 4:
        raise ValueError(f"dot_product_attention takes 4-D inputs, got query of shape {q.shape}")
    from kcompile.ops.numpy import _einsum2

    logits = _einsum2("btnh", "bsnh", "bnts", q, k) * (
        1.0 / float(k.shape[-1]) ** 0.5 if scale is None else float(scale)
    )
    if bias is not None:
        logits = logits + _float(bias)
    allowed = None if mask is None else val(mask, DType.bool)
    if is_causal:
        t, s = logits.shape[2], logits.shape[3]
        causal = B.const_array(
            logits.graph, [bool(j <= i) for i in range(t) for j in range(s)], DType.bool, (t, s)
        )
        allowed = causal if allowed is None else B.logical_and(allowed, causal)
    if allowed is not None:
        # -0.7 x the largest value of the logits' own dtype, in that dtype (Keras's
        # backends): a float32 constant would not select with bf16 or f16 logits.
        import ml_dtypes  # here: importing kcompile does not load it

        fill = -0.7 * float(ml_dtypes.finfo(logits.dtype.numpy).max)
        logits = B.select(allowed, logits, B.const(logits.graph, fill, logits.dtype))
    probs = A.softmax(logits, logits.rank - 1)
    return _einsum2("bnts", "bsnh", "btnh", probs, v)


@op
def psnr(x1, x2, max_val):
    a, b = _float(x1), _float(x2)
    mse = B.mean(B.square(a - b), tuple(range(a.rank)))
    log10 = 1.0 / 2.302585092994046
    return 20.0 * log10 * B.log(_float(max_val)) - 10.0 * log10 * B.log(mse)


@op
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) · scale + offset, the statistics given along
    ``axis`` (1-D, or already broadcastable)."""
    v = _float(x)
    axis = normalize_axes(axis, v.rank)[0]

    def along(t):
        t = _float(t)
        if t.rank == 1:
            return B.reshape(t, tuple(t.shape[0] if i == axis else 1 for i in range(v.rank)))
        return t

    out = (v - along(mean)) * (1.0 / B.sqrt(along(variance) + epsilon))
    if scale is not None:
        out = out * along(scale)
    return out if offset is None else out + along(offset)


@op
def sparsemax(x, axis=-1):
    """Keras's sparsemax, threshold and all: Keras (every backend) takes the threshold
    as (Σ over the support of the running sums - 1) / k, where Martins & Astudillo's
    sparsemax takes (the support's sum - 1) / k; the two agree when one value is in the
    support. The sorted values come from ``kcompile.ops.sorting`` (L² comparisons for an
    axis of length L)."""
    v = _float(x)
    axis = normalize_axes(axis, v.rank)[0]
    last = v.rank - 1
    moved = v if axis == last else B.transpose(v, (*[i for i in range(v.rank) if i != axis], axis))
    length = moved.shape[-1]
    z = B.neg(_sorted_last(B.neg(moved))[0])  # descending
    ks = B.const_array(v.graph, [float(k) for k in range(1, length + 1)], DType.f32, (length,))
    tri = B.const_array(
        v.graph, [float(j <= i) for j in range(length) for i in range(length)], DType.f32,
        (length, length),
    )  # fmt: skip
    running = B.matmul(z, tri)  # cumulative sums of the sorted values
    support = B.cast(B.gt(1.0 + ks * z, running), DType.f32)
    count = B.reduce_sum(support, (last,), keepdims=True)
    total = B.reduce_sum(support * running, (last,), keepdims=True)
    tau = (total - 1.0) / count
    out = B.maximum(moved - tau, 0.0)
    if axis == last:
        return out
    back = [*range(axis), last, *range(axis, last)]
    return B.transpose(out, back)


def _loss(class_name: str, name: str):
    """The per-element cross-entropy of ``kcompile.losses.losses.<class_name>`` (looked up when
    called: the losses module itself is written with keras.ops)."""

    def fn(target, output, from_logits=False, axis=-1):
        from kcompile.losses import losses

        if axis != -1:
            raise unsupported(f"nn.{name}", "axis other than -1")
        per = getattr(losses, class_name)(from_logits=from_logits, reduction="none").per_sample
        return per(val(target), _float(output))

    fn.__name__ = name
    return op(fn)


categorical_crossentropy = _loss("CategoricalCrossentropy", "categorical_crossentropy")
sparse_categorical_crossentropy = _loss(
    "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy"
)
binary_crossentropy = _named(
    "binary_crossentropy",
    lambda target, output, from_logits=False: _binary_per_element(target, output, from_logits),
)


def _binary_per_element(target, output, from_logits):
    # Keras's ops.binary_crossentropy keeps every element (no mean over the last axis).
    t, x = _float(target), _float(output)
    if from_logits:
        return B.maximum(x, 0.0) - x * t + B.log1p(B.exp(-B.abs(x)))
    eps = 1e-7
    q = B.minimum(B.maximum(x, eps), 1.0 - eps)
    return -(t * B.log(q) + (1.0 - t) * B.log(1.0 - q))


__all__ = [
    "batch_normalization",
    "binary_crossentropy",
    "categorical_crossentropy",
    "celu",
    "dot_product_attention",
    "elu",
    "gelu",
    "glu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "layer_normalization",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "moments",
    "multi_hot",
    "normalize",
    "one_hot",
    "psnr",
    "relu",
    "relu6",
    "rms_normalization",
    "selu",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_categorical_crossentropy",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
    "threshold",
]

__getattr__ = refusal(__name__)
