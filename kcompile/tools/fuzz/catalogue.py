"""The layers the model fuzzer draws from: for each, when it applies to an input shape,
how to draw its arguments, and the shape it makes (batch axis left out).

A new layer joins the fuzzer by one entry here. ``out_shape`` raises ``Invalid`` for
arguments that do not fit the input, so the shrinker can try edits and keep the valid ones.
"""

from __future__ import annotations

import math

from kcompile.tools.fuzz import (
    catalogue_audio,
    catalogue_conv3d,
    catalogue_image,
    catalogue_misc,
    catalogue_mixing,
)
from kcompile.tools.fuzz.kind import Invalid, LayerKind, Shape, no_args, pick, same, window_out

ACTIVATIONS = (
    None,
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "softmax",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "softsign",
    "silu",
    "leaky_relu",
    "hard_sigmoid",
    "hard_silu",
    "mish",
    "linear",
)


def _dense(rng, shape):
    return {
        "units": rng.randint(1, 12),
        "activation": pick(rng, ACTIVATIONS),
        "use_bias": rng.random() < 0.85,
    }


def _ops_dense(rng, shape):
    return {"units": rng.randint(1, 10), "activation": pick(rng, (None, "relu", "tanh", "silu"))}


def _ops_attention(rng, shape):
    return {"units": rng.randint(1, 6)}


def _mha(rng, shape):
    args = {"num_heads": rng.randint(1, 3), "key_dim": rng.randint(1, 4)}
    if rng.random() < 0.3:
        args["value_dim"] = rng.randint(1, 4)
    if rng.random() < 0.4:
        args["causal"] = True
    if rng.random() < 0.3:
        args["scores"] = True
    return args


def _attention(rng, shape):
    args = {}
    if rng.random() < 0.5:
        args["use_scale"] = True
    if rng.random() < 0.3:
        args["score_mode"] = "concat"
    if rng.random() < 0.3:
        args["causal"] = True
    return args


def _permute(rng, shape):
    dims = list(range(1, len(shape) + 1))
    rng.shuffle(dims)
    return {"dims": dims}


def _permute_shape(args, s):
    return tuple(s[d - 1] for d in args["dims"])


def _crop1d(rng, shape):
    return {"cropping": [rng.randint(0, 1), rng.randint(0, 1)]}


def _crop1d_shape(args, s):
    length = s[0] - sum(args["cropping"])
    if length < 1:
        raise Invalid("cropped away")
    return (length, s[1])


def _crop2d(rng, shape):
    return {"cropping": [[rng.randint(0, 1), rng.randint(0, 1)] for _ in range(2)]}


def _crop2d_shape(args, s):
    h, w = (n - sum(c) for n, c in zip(s[:2], args["cropping"]))
    if min(h, w) < 1:
        raise Invalid("cropped away")
    return (h, w, s[2])


def _groups(rng, shape):
    divisors = [g for g in range(1, shape[-1] + 1) if shape[-1] % g == 0]
    return {"groups": pick(rng, divisors)}


def _resize(rng, shape):
    return {
        "height": rng.randint(2, 7),
        "width": rng.randint(2, 7),
        "interpolation": pick(rng, ("bilinear", "nearest")),
    }


def _center_crop(rng, shape):
    return {"height": rng.randint(1, shape[0]), "width": rng.randint(1, shape[1])}


def _augment(**choices):
    """An image augmentation layer's draw: each argument picked from its choices."""

    def draw(rng, shape):
        return {
            **{key: pick(rng, values) for key, values in choices.items()},
            "seed": rng.randint(0, 99),
        }

    return draw


_GEOMETRY = {
    "fill_mode": ("reflect", "wrap", "constant", "nearest"),
    "interpolation": ("bilinear", "nearest"),
}
_FACTORS = (0.1, 0.3, [-0.2, 0.1])
_COLOUR_RANGE = ([-5.0, 5.0],)  # the data are normal: a range that clips little


def _gray_shape(args, s):
    if s[-1] not in (1, 3):
        raise Invalid("RandomGrayscale takes 1 or 3 channels")
    return s


def _colour_shape(args, s):
    if s[-1] != 3:
        raise Invalid("RandomColorDegeneration takes 3 channels")
    return s


def _random_crop(rng, shape):
    return {
        "height": rng.randint(1, shape[0]),
        "width": rng.randint(1, shape[1]),
        "seed": rng.randint(0, 99),
    }


def _noise(key: str):
    def draw(rng, shape):
        return {key: pick(rng, (0.1, 0.3)), "seed": rng.randint(0, 99)}

    return draw


def _conv_transpose(rank: int):
    def draw(rng, shape):
        strides = [rng.randint(1, 2) for _ in range(rank)]
        args = {
            "filters": rng.randint(1, 4),
            "kernel_size": [rng.randint(1, 3) for _ in range(rank)],
            "strides": strides,
            "padding": pick(rng, ("valid", "same")),
        }
        if max(strides) > 1 and rng.random() < 0.3:
            args["output_padding"] = [rng.randint(0, s - 1) for s in strides]
        if rng.random() < 0.3:
            args["activation"] = pick(rng, ACTIVATIONS[1:])
        return args

    def shape(args, s):
        from kcompile.layers.convolutional.conv2d_transpose import transpose_geometry

        if len(s) != rank + 1:
            raise Invalid("rank")
        paddings = args.get("output_padding") or [None] * rank
        sizes = [
            transpose_geometry(n, k, st, 1, args["padding"], p)[0]
            for n, k, st, p in zip(s[:-1], args["kernel_size"], args["strides"], paddings)
        ]
        if math.prod(sizes) > 256:
            raise Invalid("size")
        return (*sizes, args["filters"])

    return draw, shape


def _conv(rank: int):
    def draw(rng, shape):
        spatial = shape[:-1]
        args = {
            "filters": rng.randint(1, 6),
            "kernel_size": rng.randint(1, min(3, *spatial)),
            "padding": pick(rng, ("valid", "same")),
            "activation": pick(rng, ACTIVATIONS),
        }
        if rng.random() < 0.3:
            args["strides"] = 2
        elif rng.random() < 0.15 and min(spatial) >= 5:
            args["dilation_rate"] = 2
        if rng.random() < 0.15:
            args["use_bias"] = False
        return args

    def shape(args, s):
        if len(s) != rank + 1:
            raise Invalid("rank")
        out = [
            window_out(
                n,
                args["kernel_size"],
                args.get("strides", 1),
                args["padding"],
                args.get("dilation_rate", 1),
            )
            for n in s[:-1]
        ]
        return (*out, args["filters"])

    return draw, shape


def _depthwise_draw(rng, shape):
    args = _conv(2)[0](rng, shape)
    del args["filters"]
    args["depth_multiplier"] = rng.randint(1, 2)
    return args


def _depthwise_shape(args, s):
    out = _conv(2)[1]({**args, "filters": s[-1] * args["depth_multiplier"]}, s)
    return out


def _pool(rank: int):
    def draw(rng, shape):
        args = {
            "pool_size": rng.randint(1, min(3, *shape[:-1])),
            "padding": pick(rng, ("valid", "same")),
        }
        if rng.random() < 0.3:
            args["strides"] = 1
        return args

    def shape(args, s):
        if len(s) != rank + 1:
            raise Invalid("rank")
        p = args["pool_size"]
        stride = args.get("strides") or p
        return (*(window_out(n, p, stride, args["padding"]) for n in s[:-1]), s[-1])

    return draw, shape


def _rnn_draw(rng, shape):
    return {"units": rng.randint(1, 8), "return_sequences": rng.random() < 0.4}


def _rnn_shape(args, s):
    if len(s) != 2:
        raise Invalid("rank")
    return (s[0], args["units"]) if args["return_sequences"] else (args["units"],)


def _bidirectional_draw(rng, shape):
    inner = pick(rng, ("LSTM", "GRU", "SimpleRNN"))
    return {
        "layer": {inner: _rnn_draw(rng, shape)},
        "merge_mode": pick(rng, ("concat", "sum", "mul", "ave")),
    }


def _bidirectional_shape(args, s):
    ((_, inner),) = args["layer"].items()
    out = _rnn_shape(inner, s)
    return (*out[:-1], out[-1] * 2) if args["merge_mode"] == "concat" else out


def _reshape_draw(rng, shape):
    total = math.prod(shape)
    divisors = [d for d in range(2, total) if total % d == 0]
    if not divisors:
        raise Invalid("nothing to reshape into")
    d = pick(rng, divisors)
    return {"target_shape": [total // d, d]}


def _reshape_shape(args, s):
    target = tuple(args["target_shape"])
    if math.prod(target) != math.prod(s):
        raise Invalid("size")
    return target


def _flatten_shape(args, s):
    return (math.prod(s),)


def _global_pool(rank: int):
    def shape(args, s):
        if len(s) != rank + 1:
            raise Invalid("rank")
        return (s[-1],)

    return shape


def _zero_padding_draw(rng, shape):
    return {"padding": rng.randint(1, 2)}


def _zero_padding_shape(args, s):
    if len(s) != 3:
        raise Invalid("rank")
    p = args["padding"]
    return (s[0] + 2 * p, s[1] + 2 * p, s[2])


def _upsampling_draw(rng, shape):
    return {"size": 2}


def _upsampling_shape(args, s):
    if len(s) != 3 or s[0] * s[1] > 64:
        raise Invalid("rank or size")
    return (s[0] * args["size"], s[1] * args["size"], s[2])


def _activation_draw(rng, shape):
    return {"activation": pick(rng, ACTIVATIONS[1:])}


def _dropout_draw(rng, shape):
    return {"rate": pick(rng, (0.1, 0.25, 0.5)), "seed": rng.randint(0, 99)}


def _normalization_draw(rng, shape):
    args = {}
    for key in ("center", "scale"):
        if rng.random() < 0.25:
            args[key] = False
    if rng.random() < 0.3:
        args["epsilon"] = pick(rng, (1e-5, 0.1))
    return args


def _batchnorm_draw(rng, shape):
    args = _normalization_draw(rng, shape)
    if rng.random() < 0.3:
        args["momentum"] = 0.5
    if rng.random() < 0.25:  # statistics summed over the replicas (one, here)
        args["synchronized"] = True
    return args


def _conv1d_padding(draw):
    def with_causal(rng, shape):
        args = draw(rng, shape)
        if rng.random() < 0.2 and "dilation_rate" not in args:
            args["padding"] = "causal"
        return args

    return with_causal


def _leaky_draw(rng, shape):
    return {"negative_slope": pick(rng, (0.1, 0.3))}


ANY_RANK = (1, 2, 3)

UNARY: tuple[LayerKind, ...] = (
    LayerKind("Dense", ANY_RANK, _dense, lambda a, s: (*s[:-1], a["units"]), 3.0),
    # Custom layers written with keras.ops (kcompile.tools.fuzz.custom_layers).
    LayerKind("custom.OpsDense", ANY_RANK, _ops_dense, lambda a, s: (*s[:-1], a["units"])),
    LayerKind("custom.OpsNorm", ANY_RANK, no_args, same, 0.5),
    LayerKind(
        "custom.OpsSelfAttention", (2,), _ops_attention, lambda a, s: (*s[:-1], a["units"]), 0.7
    ),
    LayerKind("custom.OpsResidual", ANY_RANK, no_args, same, 0.4),
    LayerKind("custom.SelfMultiHeadAttention", (2,), _mha, same, 0.7),
    LayerKind("custom.SelfAttention", (2,), _attention, same, 0.5),
    LayerKind("Activation", ANY_RANK, _activation_draw, same),
    LayerKind("LeakyReLU", ANY_RANK, _leaky_draw, same, 0.5),
    LayerKind("ReLU", ANY_RANK, no_args, same, 0.5),
    LayerKind("Softmax", ANY_RANK, no_args, same, 0.3),
    LayerKind("Dropout", ANY_RANK, _dropout_draw, same, 0.7),
    LayerKind("BatchNormalization", ANY_RANK, _batchnorm_draw, same),
    LayerKind("LayerNormalization", ANY_RANK, _normalization_draw, same),
    LayerKind("Flatten", (2, 3, 4), no_args, _flatten_shape),
    LayerKind("Reshape", (1,), _reshape_draw, _reshape_shape, 0.7),
    LayerKind("Conv1D", (2,), _conv1d_padding(_conv(1)[0]), _conv(1)[1], 2.0),
    LayerKind("MaxPooling1D", (2,), *_pool(1)),
    LayerKind("AveragePooling1D", (2,), *_pool(1), 0.7),
    LayerKind("GlobalAveragePooling1D", (2,), no_args, _global_pool(1), 0.5),
    LayerKind("GlobalMaxPooling1D", (2,), no_args, _global_pool(1), 0.5),
    LayerKind("SimpleRNN", (2,), _rnn_draw, _rnn_shape),
    LayerKind("LSTM", (2,), _rnn_draw, _rnn_shape),
    LayerKind("GRU", (2,), _rnn_draw, _rnn_shape),
    LayerKind("Bidirectional", (2,), _bidirectional_draw, _bidirectional_shape, 0.5),
    LayerKind("Conv2D", (3,), *_conv(2), 2.0),
    LayerKind("Conv2DTranspose", (3,), *_conv_transpose(2), 0.7),
    LayerKind("SeparableConv2D", (3,), *_conv(2), 0.5),
    LayerKind("SeparableConv1D", (2,), *_conv(1), 0.4),
    LayerKind(
        "RepeatVector", (1,), lambda r, s: {"n": r.randint(1, 3)}, lambda a, s: (a["n"], *s), 0.4
    ),
    LayerKind("Permute", (2, 3), _permute, _permute_shape, 0.5),
    LayerKind(
        "UpSampling1D",
        (2,),
        lambda r, s: {"size": r.randint(1, 3)},
        lambda a, s: (s[0] * a["size"], s[1]),
        0.4,
    ),
    LayerKind(
        "ZeroPadding1D",
        (2,),
        lambda r, s: {"padding": [r.randint(0, 2), r.randint(0, 2)]},
        lambda a, s: (s[0] + sum(a["padding"]), s[1]),
        0.4,
    ),
    LayerKind("Cropping1D", (2,), _crop1d, _crop1d_shape, 0.4),
    LayerKind("Cropping2D", (3,), _crop2d, _crop2d_shape, 0.4),
    LayerKind("UnitNormalization", ANY_RANK, no_args, same, 0.4),
    LayerKind("Masking", (2,), lambda r, s: {"mask_value": 0.0}, same, 0.3),
    LayerKind("GroupNormalization", (2, 3), _groups, same, 0.5),
    LayerKind("GaussianNoise", ANY_RANK, _noise("stddev"), same, 0.4),
    LayerKind("GaussianDropout", ANY_RANK, _noise("rate"), same, 0.4),
    LayerKind("SpatialDropout1D", (2,), _noise("rate"), same, 0.3),
    LayerKind("SpatialDropout2D", (3,), _noise("rate"), same, 0.3),
    LayerKind("ActivityRegularization", ANY_RANK, lambda r, s: {"l1": 0.01, "l2": 0.02}, same, 0.3),
    LayerKind("Rescaling", ANY_RANK, lambda r, s: {"scale": 0.5, "offset": -0.1}, same, 0.3),
    LayerKind("Resizing", (3,), _resize, lambda a, s: (a["height"], a["width"], s[2]), 0.4),
    LayerKind("CenterCrop", (3,), _center_crop, lambda a, s: (a["height"], a["width"], s[2]), 0.3),
    LayerKind(
        "RandomFlip",
        (3,),
        _augment(mode=("horizontal", "vertical", "horizontal_and_vertical")),
        same,
        0.1,
    ),
    LayerKind(
        "RandomTranslation",
        (3,),
        _augment(height_factor=_FACTORS, width_factor=_FACTORS, **_GEOMETRY),
        same,
        0.1,
    ),
    LayerKind(
        "RandomRotation", (3,), _augment(factor=(0.05, 0.2, [-0.1, 0.3]), **_GEOMETRY), same, 0.1
    ),
    LayerKind(
        "RandomShear",
        (3,),
        _augment(x_factor=(0.0, 0.2, [0.1, 0.4]), y_factor=(0.0, 0.3), **_GEOMETRY),
        same,
        0.1,
    ),
    LayerKind(
        "RandomZoom",
        (3,),
        _augment(height_factor=_FACTORS, width_factor=(None, *_FACTORS), **_GEOMETRY),
        same,
        0.1,
    ),
    LayerKind(
        "RandomContrast",
        (3,),
        _augment(factor=(0.2, [0.1, 0.5]), value_range=_COLOUR_RANGE),
        same,
        0.1,
    ),
    LayerKind(
        "RandomBrightness",
        (3,),
        _augment(factor=(0.2, [-0.1, 0.3]), value_range=_COLOUR_RANGE),
        same,
        0.1,
    ),
    LayerKind("RandomCrop", (3,), _random_crop, lambda a, s: (a["height"], a["width"], s[2]), 0.1),
    LayerKind("RandomGrayscale", (3,), _augment(factor=(0.3, 0.7)), _gray_shape, 0.1),
    LayerKind(
        "RandomInvert",
        (3,),
        _augment(factor=(0.5, [0.2, 0.9]), value_range=_COLOUR_RANGE),
        same,
        0.1,
    ),
    LayerKind(
        "Solarization",
        (3,),
        _augment(
            addition_factor=(0.0, 0.1),
            threshold_factor=(0.5, [0.2, 0.9]),
            value_range=_COLOUR_RANGE,
        ),
        same,
        0.1,
    ),
    LayerKind(
        "RandomColorDegeneration",
        (3,),
        _augment(factor=(0.3, [-0.5, 0.8]), value_range=_COLOUR_RANGE),
        _colour_shape,
        0.1,
    ),
    LayerKind("AutoContrast", (3,), lambda r, s: {"value_range": [-5.0, 5.0]}, same, 0.1),
    LayerKind("Conv1DTranspose", (2,), *_conv_transpose(1), 0.5),
    LayerKind("DepthwiseConv2D", (3,), _depthwise_draw, _depthwise_shape),
    LayerKind("MaxPooling2D", (3,), *_pool(2)),
    LayerKind("AveragePooling2D", (3,), *_pool(2), 0.7),
    LayerKind("GlobalAveragePooling2D", (3,), no_args, _global_pool(2), 0.5),
    LayerKind("GlobalMaxPooling2D", (3,), no_args, _global_pool(2), 0.5),
    LayerKind("ZeroPadding2D", (3,), _zero_padding_draw, _zero_padding_shape, 0.5),
    LayerKind("UpSampling2D", (3,), _upsampling_draw, _upsampling_shape, 0.4),
)

# The families kept in their own modules (kind.py's vocabulary), drawn with the rest.
UNARY += catalogue_conv3d.KINDS + catalogue_image.KINDS + catalogue_misc.KINDS
UNARY += catalogue_audio.KINDS + catalogue_mixing.KINDS

BY_NAME = {kind.name: kind for kind in UNARY}

SAME_SHAPE_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def merge_shape(name: str, shapes: list[Shape], args: dict | None = None) -> Shape:
    """The shape a merge layer (with ``args``) makes of ``shapes``, or ``Invalid``."""
    if name == "Dot":
        return _dot_shape(shapes, (args or {}).get("axes", -1))
    if name == "Concatenate":
        first = shapes[0]
        if any(len(s) != len(first) or s[:-1] != first[:-1] for s in shapes):
            raise Invalid("concatenate shapes")
        return (*first[:-1], sum(s[-1] for s in shapes))
    if any(s != shapes[0] for s in shapes) or (name == "Subtract" and len(shapes) != 2):
        raise Invalid(f"{name} shapes")
    return shapes[0]


def _dot_shape(shapes: list[Shape], axes) -> Shape:
    if len(shapes) != 2:
        raise Invalid("Dot takes two inputs")
    x, y = shapes
    ax, ay = (axes, axes) if isinstance(axes, int) else axes
    ax, ay = ax % (len(x) + 1), ay % (len(y) + 1)  # axes count the batch, which is not here
    if 0 in (ax, ay) or x[ax - 1] != y[ay - 1]:
        raise Invalid("Dot axes")
    out = (*x[: ax - 1], *x[ax:], *y[: ay - 1], *y[ay:])
    return out or (1,)


def draw_dot(rng, x: Shape, y: Shape) -> dict | None:
    """Arguments of a Dot of tensors of shapes ``x`` and ``y`` (None if none fits)."""
    pairs = [(i + 1, j + 1) for i, a in enumerate(x) for j, b in enumerate(y) if a == b]
    pairs = [p for p in pairs if len(x) + len(y) <= 4]  # small outputs: at most rank 2
    if not pairs:
        return None
    ax, ay = rng.choice(pairs)
    return {
        "axes": ax if ax == ay and rng.random() < 0.5 else [ax, ay],
        "normalize": rng.random() < 0.3,
    }


def unary_shape(name: str, args: dict, shape: Shape) -> Shape:
    """The shape layer ``name`` with ``args`` makes of ``shape``, or ``Invalid``."""
    kind = BY_NAME[name]
    if len(shape) not in kind.ranks:
        raise Invalid(f"{name} on rank {len(shape)}")
    out = kind.shape(args, shape)
    if any(d < 1 for d in out) or math.prod(out) > 4096:
        raise Invalid(f"{name} makes {out}")
    return out
