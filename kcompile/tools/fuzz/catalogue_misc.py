"""The fuzzer's entries for issue 26's core, activation, regularization and normalization
layers: EinsumDense, ELU, PReLU, Identity, AlphaDropout, RMSNormalization.

Left out, and why: GroupQueryAttention and AdditiveAttention take two tensors (query and
value) and SpectralNormalization and Pipeline take layers as arguments, which a unary
call of ``layers.<name>(**args)`` cannot express; ReversibleEmbedding's reverse mode is a
call argument; CategoryEncoding, Hashing and HashedCrossing take integer or string ids;
Discretization's bins are a step function, so float64 rounding in the reference moves
values across a boundary and the oracle would report it.
"""

from __future__ import annotations

import random

from kcompile.tools.fuzz.kind import LayerKind, Shape, pick, same

ANY_RANK = (1, 2, 3)

# Equations by input rank (the batch axis is "a"): each with its output shape's rule.
_EQUATIONS = {
    1: ("ab,bc->ac",),
    2: ("abc,cd->abd", "...x,xy->...y", "abc,cde->abde", "abc,cd->ad"),
    3: ("...x,xy->...y", "abcd,de->abce"),
}


def _einsum_dense(rng: random.Random, shape: Shape) -> dict:
    equation = pick(rng, _EQUATIONS[len(shape)])
    width = rng.randint(1, 8)
    if equation == "abc,cde->abde":
        output_shape = [shape[0], rng.randint(1, 3), rng.randint(1, 4)]
        bias_axes = pick(rng, (None, "de", "e"))
    elif equation == "abc,cd->ad":
        output_shape = [width]
        bias_axes = pick(rng, (None, "d"))
    elif equation.startswith("..."):
        output_shape = [width]
        bias_axes = pick(rng, (None, "y"))
    else:
        output_shape = [*shape[:-1], width]
        bias_axes = pick(rng, (None, equation[-1]))
    args = {"equation": equation, "output_shape": output_shape}
    if bias_axes is not None:
        args["bias_axes"] = bias_axes
    if rng.random() < 0.4:
        args["activation"] = pick(rng, ("relu", "tanh", "gelu"))
    return args


def _einsum_dense_shape(args: dict, s: Shape) -> Shape:
    equation, out = args["equation"], list(args["output_shape"])
    if equation.startswith("..."):
        return (*s[:-1], out[-1])
    if equation == "abc,cd->ad":
        return (out[-1],)
    return tuple(out)


def _prelu(rng: random.Random, shape: Shape) -> dict:
    args: dict = {}
    if rng.random() < 0.5:
        args["alpha_initializer"] = pick(rng, ("zeros", "ones", "random_normal"))
    if len(shape) > 1 and rng.random() < 0.5:
        args["shared_axes"] = sorted(rng.sample(range(1, len(shape) + 1), rng.randint(1, 2)))
        if len(args["shared_axes"]) == len(shape):
            args["shared_axes"] = args["shared_axes"][:1]
    return args


def _rms(rng: random.Random, shape: Shape) -> dict:
    args: dict = {"epsilon": pick(rng, (1e-6, 1e-3))}
    if len(shape) > 1 and rng.random() < 0.3:
        args["axis"] = [len(shape) - 1, len(shape)]  # the last two axes
    return args


KINDS: tuple[LayerKind, ...] = (
    LayerKind("EinsumDense", ANY_RANK, _einsum_dense, _einsum_dense_shape, 1.0),
    LayerKind("ELU", ANY_RANK, lambda r, s: {"alpha": pick(r, (0.5, 1.0, 1.7))}, same, 0.4),
    LayerKind("PReLU", ANY_RANK, _prelu, same, 0.5),
    LayerKind("Identity", ANY_RANK, lambda r, s: {}, same, 0.2),
    LayerKind(
        "AlphaDropout",
        ANY_RANK,
        lambda r, s: {"rate": pick(r, (0.1, 0.3)), "seed": r.randint(0, 99)},
        same,
        0.3,
    ),
    LayerKind("RMSNormalization", ANY_RANK, _rms, same, 0.5),
)
