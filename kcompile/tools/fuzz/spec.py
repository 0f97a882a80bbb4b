"""A random model as data: inputs, layer calls in SSA order, outputs with their losses,
the optimizer and the metrics. It renders to a small Python file (the reproduction the
fuzzer saves) and checks its own shapes, so the shrinker can edit it freely."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from kcompile.tools.fuzz.catalogue import Invalid, Shape, merge_shape, unary_shape

MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot")
# Losses of real-valued targets (normal labels, any activation).
REGRESSION_LOSSES = ("mse", "mae", "huber", "log_cosh", "cosine_similarity", "squared_hinge")
LOSSES = (
    *REGRESSION_LOSSES,
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)
_LOSS_CLASSES = {
    "binary_crossentropy": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
}


@dataclass
class InputSpec:
    shape: list[int]
    vocab: int = 0  # > 0: integer ids below it (for an Embedding)
    dynamic: bool = False  # the first dimension is declared None (the data sizes it)

    def declared(self) -> list:
        """The shape ``keras.Input`` is given."""
        return [None, *self.shape[1:]] if self.dynamic else list(self.shape)


@dataclass
class Call:
    layer: str  # a class of kcompile.layers, "Embedding", a merge, or "Sequential"
    args: dict
    inputs: list[int]  # tensor ids: inputs first, then one per call
    inner: list[list] | None = None  # a nested Sequential's [layer, args] pairs


@dataclass
class OutputSpec:
    tensor: int
    loss: str
    from_logits: bool = False


@dataclass
class ModelSpec:
    seed: int
    inputs: list[InputSpec]
    calls: list[Call]
    outputs: list[OutputSpec]
    optimizer: list = field(default_factory=lambda: ["SGD", {}])  # [class name, kwargs]
    metrics: list[list[str]] = field(default_factory=list)
    policy: str = "float32"  # the global dtype policy its layers are made under
    quantized: bool = False  # model.quantize("int8") before compile
    lora: bool = False  # enable_lora on its Dense, EinsumDense and Embedding layers

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        return cls(
            seed=data["seed"],
            inputs=[InputSpec(**i) for i in data["inputs"]],
            calls=[Call(**c) for c in data["calls"]],
            outputs=[OutputSpec(**o) for o in data["outputs"]],
            optimizer=data["optimizer"],
            metrics=data["metrics"],
            policy=data.get("policy", "float32"),
            quantized=data.get("quantized", False),
            lora=data.get("lora", False),
        )

    def size(self) -> int:
        """What the shrinker makes smaller: calls, then elements of every tensor."""
        shapes = infer_shapes(self)
        return 1000 * len(self.calls) + sum(math.prod(s) for s, _ in shapes)


def call_shape(call: Call, shapes: list[tuple[Shape, int]]) -> tuple[Shape, int]:
    """(shape, vocab) of a call's result; ``Invalid`` where it does not fit its inputs."""
    ins = [shapes[i] for i in call.inputs]
    if any(vocab for _, vocab in ins) and call.layer not in ("Embedding", "IntegerLookup"):
        raise Invalid(f"{call.layer} on integer ids")
    if call.layer == "IntegerLookup":  # on the host: ids to their vocabulary index
        ((shape, vocab),) = ins
        if not vocab:
            raise Invalid("IntegerLookup needs integer ids")
        return shape, len(call.args["vocabulary"]) + 1
    if call.layer == "Embedding":
        ((shape, vocab),) = ins
        if not vocab or call.args["input_dim"] < vocab or len(shape) != 1:
            raise Invalid("Embedding needs integer ids")
        return (*shape, call.args["output_dim"]), 0
    if call.layer in MERGES:
        if len(ins) < 2:
            raise Invalid("a merge needs two inputs")
        return merge_shape(call.layer, [s for s, _ in ins], call.args), 0
    ((shape, _),) = ins
    if call.layer == "Sequential":
        if not call.inner:
            raise Invalid("an empty nested model")
        for name, args in call.inner:
            shape = unary_shape(name, args, shape)
        return shape, 0
    return unary_shape(call.layer, call.args, shape), 0


def infer_shapes(spec: ModelSpec) -> list[tuple[Shape, int]]:
    """(shape, vocab) of every tensor; ``Invalid`` if any call or output does not fit."""
    shapes: list[tuple[Shape, int]] = [(tuple(i.shape), i.vocab) for i in spec.inputs]
    for call in spec.calls:
        if any(not 0 <= i < len(shapes) for i in call.inputs):
            raise Invalid("a call reads a tensor made after it")
        shapes.append(call_shape(call, shapes))
    for out in spec.outputs:
        shape, vocab = shapes[out.tensor]
        if vocab or not shape:
            raise Invalid("an output must be a float tensor")
        categorical = out.loss in ("categorical_crossentropy", "sparse_categorical_crossentropy")
        if categorical and shape[-1] < 2:
            raise Invalid("a categorical output needs two classes")
    used = {i for c in spec.calls for i in c.inputs} | {o.tensor for o in spec.outputs}
    if any(i not in used for i in range(len(spec.inputs))):
        raise Invalid("an input no layer reads")
    return shapes


# --- rendering ------------------------------------------------------------------------


def _kwargs(args: dict) -> str:
    return ", ".join(f"{k}={_literal(v)}" for k, v in args.items())


def _literal(value) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _layer(name: str, args: dict) -> str:
    if name == "Bidirectional":
        ((inner, inner_args),) = args["layer"].items()
        rest = {k: v for k, v in args.items() if k != "layer"}
        return f"layers.Bidirectional(layers.{inner}({_kwargs(inner_args)}), {_kwargs(rest)})"
    if name.startswith("custom."):  # kcompile.tools.fuzz.custom_layers: user-style layers
        return f"{name}({_kwargs(args)})"
    return f"layers.{name}({_kwargs(args)})"


def _loss(out: OutputSpec) -> str:
    if out.from_logits:
        return f"keras.losses.{_LOSS_CLASSES[out.loss]}(from_logits=True)"
    return repr(out.loss)


def render(spec: ModelSpec) -> str:
    """The model as a Python file: ``build_model(backend)`` and the spec it came from."""
    lines = [
        f'"""kcompile fuzz model, seed {spec.seed}. Run it to check it again."""',
        "",
        "import warnings",
        "",
        "import kcompile as keras",
        "from kcompile import layers",
        "from kcompile.tools.fuzz import custom_layers as custom",
        "",
        f"SPEC = {spec.to_json()!r}",
        "",
        "",
        'def build_model(backend="llvm"):',
    ]
    body_from = len(lines)
    for i, inp in enumerate(spec.inputs):
        dtype = ', dtype="int32"' if inp.vocab else ""
        shape = _literal(inp.declared())
        lines.append(f'    t{i} = keras.Input(shape={shape}{dtype}, name="in{i}")')
    for k, call in enumerate(spec.calls, start=len(spec.inputs)):
        args = [f"t{i}" for i in call.inputs]
        if call.layer == "Sequential":
            inner = ", ".join(_layer(name, a) for name, a in call.inner)
            made = f"keras.Sequential([{inner}])({args[0]})"
        elif call.layer in MERGES:
            made = f"{_layer(call.layer, call.args)}([{', '.join(args)}])"
        else:
            made = f"{_layer(call.layer, call.args)}({args[0]})"
        lines.append(f"    t{k} = {made}")
    ins = ", ".join(f"t{i}" for i in range(len(spec.inputs)))
    outs = ", ".join(f"t{o.tensor}" for o in spec.outputs)
    name, opt_args = spec.optimizer
    lines += [
        f"    model = keras.Model([{ins}], [{outs}])",
    ]
    if spec.policy != "float32":
        # Layers take the global policy when they are made; the process's stays float32.
        body = ["    " + line for line in lines[body_from:]]
        lines[body_from:] = [
            f"    keras.mixed_precision.set_global_policy({spec.policy!r})",
            "    try:",
            *body,
            "    finally:",
            '        keras.mixed_precision.set_global_policy("float32")',
        ]
    if spec.quantized:
        lines += [
            "    with warnings.catch_warnings():  # (layers Keras does not quantize say so)",
            '        warnings.simplefilter("ignore")',
            '        model.quantize("int8")',
        ]
    if spec.lora:  # b drawn, not Keras's zeros, so that the delta counts from the start
        lines += [
            "    for outer in model.layers:  # (a Sequential's layers too)",
            '        for layer in getattr(outer, "layers", [outer]):',
            '            if hasattr(layer, "enable_lora"):',
            '                layer.enable_lora(2, lora_alpha=3, b_initializer="he_uniform")',
        ]
    lines += [
        "    model.compile(",
        f"        optimizer=keras.optimizers.{name}({_kwargs(opt_args)}),",
        f"        loss=[{', '.join(_loss(o) for o in spec.outputs)}],",
        f"        metrics={spec.metrics if len(spec.metrics) > 1 else spec.metrics[0]!r},",
        "        backend=backend,",
        "    )",
        "    return model",
        "",
        "",
        'if __name__ == "__main__":',
        "    from kcompile.tools.fuzz.oracle import check_file",
        "",
        "    print(check_file(__file__))",
        "",
    ]
    return "\n".join(lines)
