"""Random valid Keras models: a seed names one.

Functional models with one to three inputs (features, sequences, images or integer ids
for an Embedding) and one or two outputs; unary layers from the catalogue, merge layers
across branches, nested Sequential models; every loss, optimizer and metric kcompile has.
"""

from __future__ import annotations

import math
import random

from kcompile.tools.fuzz.catalogue import (
    ACTIVATIONS,
    UNARY,
    Invalid,
    draw_dot,
    merge_shape,
    unary_shape,
)
from kcompile.tools.fuzz.spec import (
    LOSSES,
    REGRESSION_LOSSES,
    Call,
    InputSpec,
    ModelSpec,
    OutputSpec,
    call_shape,
    infer_shapes,
    render,
)

_SAME_SHAPE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_OPTIMIZERS = (
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Ftrl",
    "Lion",
)


# Volumes (rank 4: the 3-D layers' and ConvLSTM2D's inputs) are drawn only once the
# catalogue has layers that take them; until then the other draws stay as they were.
_VOLUMES = any(4 in k.ranks for k in UNARY)


def _input(rng: random.Random) -> InputSpec:
    kinds, weights = ("vector", "sequence", "image", "ids", "volume"), (4, 2, 2, 1, 1)
    kind = rng.choices(kinds[: 4 + _VOLUMES], weights[: 4 + _VOLUMES])[0]
    if kind == "vector":
        return InputSpec([rng.randint(1, 16)])
    if kind == "sequence":
        return InputSpec([rng.randint(2, 8), rng.randint(1, 5)])
    if kind == "image":
        return InputSpec([rng.randint(3, 8), rng.randint(3, 8), rng.randint(1, 3)])
    if kind == "volume":
        return InputSpec(
            [rng.randint(2, 4), rng.randint(3, 5), rng.randint(3, 5), rng.randint(1, 2)]
        )
    return InputSpec([rng.randint(2, 8)], vocab=rng.randint(3, 20))


def _unary_call(rng: random.Random, shape, tensor: int) -> Call | None:
    kinds = [k for k in UNARY if len(shape) in k.ranks]
    for _ in range(8):
        kind = rng.choices(kinds, [k.weight for k in kinds])[0]
        try:
            args = kind.draw(rng, shape)
            unary_shape(kind.name, args, shape)
        except Invalid:
            continue
        return Call(kind.name, args, [tensor])
    return None


def _nested_call(rng: random.Random, shape, tensor: int) -> Call | None:
    inner = []
    for _ in range(rng.randint(1, 3)):
        call = _unary_call(rng, shape, tensor)
        if call is None:
            break
        inner.append([call.layer, call.args])
        shape = unary_shape(call.layer, call.args, shape)
    return Call("Sequential", {}, [tensor], inner) if inner else None


def _merge_call(rng: random.Random, shapes) -> Call | None:
    floats = [i for i, (_, vocab) in enumerate(shapes) if not vocab]
    pairs = [(a, b) for a in floats for b in floats if a < b]
    rng.shuffle(pairs)
    for a, b in pairs:
        sa, sb = shapes[a][0], shapes[b][0]
        names = []
        if sa == sb:
            names += _SAME_SHAPE
        if len(sa) == len(sb) and sa[:-1] == sb[:-1]:
            names.append("Concatenate")
        dot = draw_dot(rng, sa, sb)
        if dot is not None and rng.random() < 0.3:
            return Call("Dot", dot, [a, b])
        if names:
            name = rng.choice(names)
            ids = [a, b]
            if name != "Subtract" and rng.random() < 0.2:
                extra = [c for c in floats if c not in ids]
                ids += [c for c in extra[:1] if _fits(name, [sa, shapes[c][0]])]
            return Call(name, {}, ids)
    return None


def _fits(name: str, shapes) -> bool:
    try:
        merge_shape(name, shapes)
    except Invalid:
        return False
    return True


def _head(rng: random.Random, spec: ModelSpec, shapes, tensor: int, pool_rate: float) -> OutputSpec:
    """Reduce a sink to a vector (global pooling, at ``pool_rate``, or Flatten), then a
    Dense that suits a randomly chosen loss."""
    shape = shapes[tensor][0]
    if len(shape) in (2, 3) and rng.random() < pool_rate:
        pool = rng.choice(("Average", "Max"))
        tensor = _append(spec, shapes, Call(f"Global{pool}Pooling{len(shape) - 1}D", {}, [tensor]))
    elif len(shape) > 1:
        tensor = _append(spec, shapes, Call("Flatten", {}, [tensor]))
    loss = rng.choice(LOSSES)
    logits = loss not in REGRESSION_LOSSES and rng.random() < 0.3
    units = (
        rng.randint(1, 4)
        if loss in (*REGRESSION_LOSSES, "binary_crossentropy")
        else rng.randint(2, 5)
    )
    if logits:
        activation = None
    elif loss == "binary_crossentropy":
        activation = "sigmoid"
    elif loss in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        activation = "softmax"
    else:
        activation = rng.choice(ACTIVATIONS)
    head = _append(
        spec, shapes, Call("Dense", {"units": units, "activation": activation}, [tensor])
    )
    return OutputSpec(head, loss, logits)


def _append(spec: ModelSpec, shapes, call: Call) -> int:
    shapes.append(call_shape(call, shapes))
    spec.calls.append(call)
    return len(shapes) - 1


def _metrics(rng: random.Random, out: OutputSpec, rank: int) -> list[str]:
    pool = [] if out.loss == "sparse_categorical_crossentropy" else ["mae", "mse"]
    if out.loss not in REGRESSION_LOSSES:
        pool += ["accuracy"]
    if out.loss == "binary_crossentropy" and not out.from_logits:
        pool += ["precision", "recall", "auc"] + (["f1_score"] if rank == 2 else [])
    return rng.sample(pool, rng.randint(0, min(2, len(pool))))


def _optimizer(rng: random.Random) -> list:
    name = rng.choice(_OPTIMIZERS)
    args: dict = {"learning_rate": rng.choice((0.001, 0.01, 0.05))}
    if name == "SGD" and rng.random() < 0.5:
        args["momentum"] = 0.9
        args["nesterov"] = rng.random() < 0.5
    if name == "RMSprop" and rng.random() < 0.3:
        args["centered"] = True
    if name == "RMSprop" and rng.random() < 0.3:
        args["momentum"] = 0.5
    if name != "AdamW" and rng.random() < 0.15:
        args["weight_decay"] = 0.01
    if rng.random() < 0.1:
        args["gradient_accumulation_steps"] = 2
    if rng.random() < 0.1:
        args.update(use_ema=True, ema_momentum=0.9)
    clip = rng.random()
    if clip < 0.1:
        args["clipnorm"] = 1.0
    elif clip < 0.2:
        args["clipvalue"] = 0.5
    elif clip < 0.25:
        args["global_clipnorm"] = 1.0
    return [name, args]


def random_model(seed: int) -> ModelSpec:
    """The model that ``seed`` names."""
    rng = random.Random(seed)
    spec = ModelSpec(
        seed, [_input(rng) for _ in range(rng.choices((1, 2, 3), (6, 3, 1))[0])], [], []
    )
    shapes = [(tuple(i.shape), i.vocab) for i in spec.inputs]
    masks = random.Random(seed * 7919 + 1)  # its own stream: the other draws stay as they were
    for i, inp in enumerate(spec.inputs):
        if inp.vocab:
            ids, vocab = i, inp.vocab
            if masks.random() < 0.2:  # a host stage: ids mapped by a vocabulary first
                vocabulary = masks.sample(range(inp.vocab), masks.randint(1, inp.vocab))
                ids = _append(spec, shapes, Call("IntegerLookup", {"vocabulary": vocabulary}, [i]))
                vocab = len(vocabulary) + 1
            args = {"input_dim": vocab + rng.randint(0, 3), "output_dim": rng.randint(1, 6)}
            if masks.random() < 0.3:  # id 0 masks its step for the layers after
                args["mask_zero"] = True
            _append(spec, shapes, Call("Embedding", args, [ids]))
    for _ in range(rng.randint(1, 7)):
        roll = rng.random()
        call = None
        if roll < 0.25:
            call = _merge_call(rng, shapes)
        if call is None:
            floats = [i for i, (_, vocab) in enumerate(shapes) if not vocab]
            # Prefer the newest tensors: deeper chains.
            tensor = floats[-1 - min(int(rng.expovariate(1.0)), len(floats) - 1)]
            maker = _nested_call if roll > 0.9 else _unary_call
            call = maker(rng, shapes[tensor][0], tensor)
        if call is not None:
            _append(spec, shapes, call)
    unknown_lengths = rng.random() < 0.35
    _add_outputs(rng, spec, shapes, 0.9 if unknown_lengths else 0.3)
    spec.optimizer = _optimizer(rng)
    spec.metrics = [_metrics(rng, out, 1 + len(shapes[out.tensor][0])) for out in spec.outputs]
    infer_shapes(spec)  # the generator makes only valid models
    if unknown_lengths:
        _declare_lengths_unknown(rng, spec)
    _draw_policy(random.Random(seed * 104729 + 3), spec)
    _draw_quantized(random.Random(seed * 7919 + 5), spec)
    _draw_lora(random.Random(seed * 6151 + 7), spec)
    return spec


# The layers ``model.quantize("int8")`` quantizes (Keras's).
QUANTIZED = ("Dense", "EinsumDense", "Embedding")


def _draw_quantized(rng: random.Random, spec: ModelSpec) -> None:
    """An eighth of the models holding a layer Keras quantizes (its own stream) are
    quantized to int8 before compiling; not under ``mixed_float16``, where Keras
    refuses int8 (a float16 compute dtype)."""
    layers = [c.layer for c in spec.calls] + [n for c in spec.calls for n, _ in c.inner or []]
    if spec.policy != "mixed_float16" and any(name in QUANTIZED for name in layers):
        spec.quantized = rng.random() < 0.125


def _draw_lora(rng: random.Random, spec: ModelSpec) -> None:
    """A tenth of the models holding a layer that takes LoRA (its own stream; the same
    layers ``quantize`` takes) have it enabled on each, after quantization if any."""
    layers = [c.layer for c in spec.calls] + [n for c in spec.calls for n, _ in c.inner or []]
    if any(name in QUANTIZED for name in layers):
        spec.lora = rng.random() < 0.1


def _draw_policy(rng: random.Random, spec: ModelSpec) -> None:
    """A quarter of the models are made under a narrow global policy (its own stream: the
    other draws stay as they were) — mixed, or ``"bfloat16"`` (bf16 variables, updated in
    bf16) — half of those with their output layers in float32, as Keras's guide puts the
    last softmax; a few more keep float32 globally with some layers given a narrow policy
    of their own (``dtype=``)."""
    roll = rng.random()
    if 0.25 <= roll < 0.3:
        for call in spec.calls:
            if call.layer not in _NO_POLICY and rng.random() < 0.4:
                call.args["dtype"] = rng.choice(("mixed_bfloat16", "bfloat16"))
        return
    if roll >= 0.25:
        return
    spec.policy = (
        "mixed_float16" if roll < 0.05 else "bfloat16" if roll < 0.09 else "mixed_bfloat16"
    )
    if rng.random() < 0.5:
        for out in spec.outputs:
            call = _call_making(spec, out.tensor)
            if call is not None and call.layer not in _NO_POLICY:
                call.args["dtype"] = "float32"


# Calls whose arguments take no dtype: a nested Sequential, the host-side lookup, and
# the integer-consuming embedding.
_NO_POLICY = ("Sequential", "IntegerLookup", "Embedding")


def _call_making(spec: ModelSpec, tensor: int) -> Call | None:
    k = tensor - len(spec.inputs)
    return spec.calls[k] if 0 <= k < len(spec.calls) else None


def _declare_lengths_unknown(rng: random.Random, spec: ModelSpec) -> None:
    """Declare some sequence inputs' length None (``Input((None, 3))``) where the model
    still has outputs of known shape (a pooling or recurrent layer reduces the length): its
    steps are then compiled for the data's length, and for a second one."""
    candidates = [i for i in spec.inputs if len(i.shape) >= 2 or (i.vocab and i.shape)]
    for inp in candidates:
        inp.dynamic = rng.random() < 0.7
    if any(inp.dynamic for inp in candidates) and not _outputs_known(spec):
        for inp in candidates:
            inp.dynamic = False


def _outputs_known(spec: ModelSpec) -> bool:
    """Whether the rendered model builds and its outputs' shapes are known but the batch."""
    import kcompile

    namespace: dict = {"__name__": "kcompile_fuzz_shapes"}
    exec(compile(render(spec), f"<fuzz model {spec.seed}>", "exec"), namespace)
    try:
        model = namespace["build_model"]("reference")
    except ValueError:
        return False
    finally:
        kcompile.backend.clear_session()
    return all(None not in t.shape[1:] for t in model.outputs)


def _add_outputs(rng: random.Random, spec: ModelSpec, shapes, pool_rate: float) -> None:
    """One or two outputs; every other unread float tensor joins the first by a Concatenate
    of its flattened values, so every input reaches an output."""
    read = {i for c in spec.calls for i in c.inputs}
    sinks = [i for i, (_, vocab) in enumerate(shapes) if i not in read and not vocab]
    count = 2 if len(sinks) >= 2 and rng.random() < 0.5 else 1
    if len(sinks) > count:
        flat = []
        for i in sinks[count - 1 :]:
            if len(shapes[i][0]) > 1:
                i = _append(spec, shapes, Call("Flatten", {}, [i]))
            flat.append(i)
        sinks = [*sinks[: count - 1], _append(spec, shapes, Call("Concatenate", {}, flat))]
    spec.outputs = [_head(rng, spec, shapes, i, pool_rate) for i in sinks[:count]]
    assert all(math.prod(shapes[o.tensor][0]) for o in spec.outputs)
