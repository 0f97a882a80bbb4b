"""The model fuzzer's oracle: one model, compiled, against the reference interpreter.

- forward: ``predict`` at batch 1, 5 and 33 against the predict graph interpreted in
  float64 (and, where an Input's first dimension is unknown, at a second length too: the
  steps compiled again for it);
- gradients: the loss's gradient with respect to every weight, the graph compiled by the
  whole pipeline against the same graph interpreted in float64;
- training: three ``train_on_batch`` steps against the reference backend (float32), each
  from the same weights and optimizer state (the reference takes the native model's
  after every step, so differences do not compound): losses and metrics as a forward
  pass, and the updated weights (tightly after SGD; after an adaptive optimizer within
  a step of about the learning rate, since it turns rounding noise on a zero gradient
  into a full step, which the gradient check covers instead);
- ``evaluate`` at batch sizes 1, 5 and 33 against the reference backend;
- data parallel: the train step compiled as a gradient step and an update (a job of
  one rank, ``kcompile.distribution``) against the fused train step, three steps;
- a model's own steps: the built-in train and test steps against Keras's defaults
  written with the gradient API and traced as a user's ``train_step`` is.

Comparisons are normwise: ``max|got - want| <= atol + rtol * max|want|`` per array.
Accuracy-like metrics may differ by one sample (a prediction on a decision boundary can
round either way), which is the documented tolerance for them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from kcompile.tools.fuzz.spec import ModelSpec

FORWARD_RTOL = 1e-3
GRADIENT_RTOL = 2e-3
# A model under a bf16 or f16 policy against the float32 reference (which rounds as
# native code does, ir.interpreter): the two differ where f32 results that differ in
# their last bits round to neighbouring narrow values and the difference travels.
NARROW_RTOL = 2**-4
ATOL = 1e-5
BATCHES = (1, 5, 33)
# Metrics of thresholded decisions, and how many samples' worth a decision that flips
# on a boundary (float32 against float64) may move them.
_STEP_METRICS = {"accuracy": 1, "precision": 1, "recall": 1, "auc": 1, "f1_score": 4}


@dataclass(frozen=True)
class Precision:
    """What a model's numbers are checked against: the reference's float dtype and the
    normwise tolerances (float64 for float32 models; float32, which rounds narrow floats
    as native code does, for models under a bf16 or f16 policy)."""

    oracle: type = np.float64
    forward: float = FORWARD_RTOL
    gradient: float = GRADIENT_RTOL

    @staticmethod
    def of(spec: ModelSpec) -> Precision:
        layers_narrow = any(c.args.get("dtype", "float32") != "float32" for c in spec.calls)
        # A quantized model's roundings to int8 steps are made in float32 natively: the
        # float32 reference makes them alike, float64 would place some elsewhere.
        if spec.policy == "float32" and not layers_narrow and not spec.quantized:
            return Precision()
        return Precision(np.float32, NARROW_RTOL, NARROW_RTOL)


class Mismatch(AssertionError):
    """Compiled code and the oracle disagree; the message says where and by how much."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


def compare(stage: str, what: str, got, want, rtol: float, atol: float = ATOL) -> None:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise Mismatch(stage, f"{what}: shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(want)):
        return  # the float64 oracle overflowed or divided by zero: nothing to compare
    if not np.all(np.isfinite(got)):
        raise Mismatch(stage, f"{what}: non-finite values where the oracle has none")
    error = float(np.max(np.abs(got - want), initial=0.0))
    bound = atol + rtol * float(np.max(np.abs(want), initial=0.0))
    if error > bound:
        raise Mismatch(stage, f"{what}: max difference {error:.3g} > {bound:.3g}")


def make_data(spec: ModelSpec, rng: np.random.Generator, n: int, longer: int = 0):
    """Inputs (a fifth of the float entries exactly zero, to land on kinks) and labels
    that suit each output's loss; ``longer`` lengthens the inputs whose first dimension
    the model leaves unknown."""
    from kcompile.tools.fuzz.spec import infer_shapes

    xs = []
    for inp in spec.inputs:
        shape = (n, inp.shape[0] + longer, *inp.shape[1:]) if inp.dynamic else (n, *inp.shape)
        if inp.vocab:
            xs.append(rng.integers(0, inp.vocab, shape).astype(np.int32))
        else:
            x = rng.normal(size=shape)
            x[rng.random(shape) < 0.2] = 0.0
            xs.append(x.astype(np.float32))
    shapes = infer_shapes(spec)
    ys = []
    for out in spec.outputs:
        shape = shapes[out.tensor][0]
        classes = shape[-1]
        if out.loss == "sparse_categorical_crossentropy":
            ys.append(rng.integers(0, classes, (n, *shape[:-1])).astype(np.int32))
        elif out.loss == "categorical_crossentropy":
            ys.append(np.eye(classes, dtype=np.float32)[rng.integers(0, classes, (n, *shape[:-1]))])
        elif out.loss == "binary_crossentropy":
            ys.append((rng.random((n, *shape)) < 0.5).astype(np.float32))
        else:
            ys.append(rng.normal(size=(n, *shape)).astype(np.float32))
    return xs, ys


def _build(build_model, backend: str, seed: int):
    import kcompile as keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return build_model(backend)


def _feeds(model, xs, ys=()) -> dict:
    if getattr(model, "_host", None):  # the graphs take what the host layers make
        xs = model.host_inputs(list(xs))
    feeds = {v.path: v.value for v in model.weights}
    feeds.update(zip(model.input_names, xs))
    feeds.update(zip(model.label_names, ys))
    return feeds


def check_forward(model, xs, p: Precision = Precision()) -> None:
    from kcompile.ir import interpret

    graph = model.step_graph("predict", input_shapes=model.compiled_steps.input_shapes(xs))
    for batch in BATCHES:
        part = [x[:batch] for x in xs]
        want = interpret(graph, _feeds(model, part), p.oracle)
        got = model.predict_on_batch(part if len(part) > 1 else part[0])
        got = got if isinstance(got, list) else [got]
        for name, g in zip(model.output_names, got):
            g = np.asarray(g, np.float32)  # (a bf16 output)
            compare("forward", f"batch {batch}, output {name}", g, want[f"out/{name}"], p.forward)


def with_gradients(graph, wrt) -> object:
    """``graph`` (changed in place) computing its ``loss`` and ``grad/<name>``, the
    gradient of the loss with respect to each input of ``wrt``, and nothing else."""
    from kcompile.passes import append_gradients, eliminate_dead_code

    grads = append_gradients(graph, graph.output("loss"), wrt)
    graph.set_outputs(
        [("loss", graph.output("loss"))] + [(f"grad/{v.name}", g) for v, g in zip(wrt, grads)]
    )
    eliminate_dead_code(graph)
    return graph


def run_compiled(graph, feeds: dict) -> dict:
    """``graph`` through the whole pipeline and native code on ``feeds``: the non-data
    inputs bound (copies, of the input's dtype), the data inputs fed."""
    from kcompile.runtime import make_executable

    exe = make_executable(graph, "llvm")
    for v in graph.inputs:
        if v.role != "data":
            exe.bind(v.name, np.array(feeds[v.name], v.dtype.numpy))
    return exe({v.name: feeds[v.name] for v in graph.inputs if v.role == "data"})


def compare_gradients(graph, got: dict, want: dict, p: Precision = Precision()) -> None:
    """The loss, then each gradient with an absolute tolerance scaled by the largest."""
    compare("gradients", "loss", got["loss"], want["loss"], p.forward)
    scale = max((float(np.max(np.abs(want[n]), initial=0)) for n, _ in graph.outputs), default=0)
    atol = ATOL * (1 + scale) if p.oracle is np.float64 else p.gradient * scale
    for name, _ in graph.outputs[1:]:
        compare("gradients", name, got[name], want[name], p.gradient, atol)


def check_gradients(model, xs, ys, p: Precision = Precision()) -> None:
    """d loss / d weights: compiled (the whole pipeline) against the reference."""
    from kcompile.ir import interpret

    graph = model.step_graph("eval", input_shapes=model.compiled_steps.input_shapes(xs))
    graph = with_gradients(graph, graph.inputs_with_role("param"))
    feeds = _feeds(model, xs, ys)
    compare_gradients(graph, run_compiled(graph, feeds), interpret(graph, feeds, p.oracle), p)


def _metric_tolerance(name: str, samples: int) -> float:
    flips = max((n for m, n in _STEP_METRICS.items() if m in name), default=0)
    return flips / samples + 1e-6 if flips else 0.0


def _compare_logs(stage: str, got: dict, want: dict, samples: int, rtol: float) -> None:
    if set(got) != set(want):
        raise Mismatch(stage, f"log keys {sorted(got)}, expected {sorted(want)}")
    for key in want:
        loose = _metric_tolerance(key, samples)
        compare(stage, key, got[key], want[key], rtol, max(ATOL, loose))


def _sync(reference, native) -> None:
    """The reference takes the native model's weights and optimizer state: the next step
    of each starts from the same point, so a difference does not compound."""
    reference.set_weights(native.get_weights())
    a, b = native.optimizer, reference.optimizer
    b.step_count = a.step_count
    if hasattr(a, "dynamic_scale"):  # a LossScaleOptimizer (mixed_float16 wraps one)
        np.copyto(b.dynamic_scale, a.dynamic_scale)
        np.copyto(b.step_counter, a.step_counter)
    for mine, theirs in zip(native.trainable_weights, reference.trainable_weights):
        for slot in a.all_slots():
            np.copyto(b.slots[b.slot_path(theirs, slot)], a.slots[a.slot_path(mine, slot)])


def check_training(native, reference, xs, ys, spec: ModelSpec, p: Precision) -> None:
    """Three train steps, each from the same weights and optimizer state on both sides:
    the logs (the loss before the update) agree as a forward pass does; the weights after
    the update within one step's float32 noise, which an adaptive optimizer scales up to
    a step of about the learning rate where a gradient is zero in float64 (a centred
    RMSprop's by 1/sqrt(rho (1 - rho)), 3.3 at rho = 0.9)."""
    _, args = spec.optimizer
    adaptive = spec.optimizer[0] != "SGD"
    size = BATCHES[spec.seed % len(BATCHES)]
    batch = [x[:size] for x in xs], [y[:size] for y in ys]
    noise = 2 * args.get("learning_rate", 0.001) if adaptive else 0.0
    if spec.optimizer[0] == "RMSprop" and args.get("centered"):
        noise /= (0.9 * 0.1) ** 0.5
    for step in range(3):
        stage = f"train step {step + 1} at batch {size}"
        got = native.train_on_batch(*batch, return_dict=True)
        want = reference.train_on_batch(*batch, return_dict=True)
        _compare_logs(stage, got, want, size, p.forward)
        for var, a, b in zip(native.weights, native.get_weights(), reference.get_weights()):
            compare(f"{stage}: weights", var.path, a, b, p.forward, ATOL + noise)
        _sync(reference, native)


def check_data_parallel(build_model, spec: ModelSpec, xs, ys, p: Precision) -> None:
    """The train step compiled in two for data-parallel training (gradients, then the
    update; ``kcompile.distribution``), in a job of one rank, against the fused train
    step of the same model from the same weights: three steps, logs and weights."""
    from kcompile.distribution import one_rank_job

    fused = _build(build_model, "llvm", spec.seed)
    split = _build(build_model, "llvm", spec.seed)
    split.set_weights(fused.get_weights())
    size = BATCHES[spec.seed % len(BATCHES)]
    batch = [x[:size] for x in xs], [y[:size] for y in ys]
    _, args = spec.optimizer
    noise = 2 * args.get("learning_rate", 0.001) if spec.optimizer[0] != "SGD" else 0.0
    for step in range(3):
        stage = f"data-parallel train step {step + 1} at batch {size}"
        want = fused.train_on_batch(*batch, return_dict=True)
        with one_rank_job():
            got = split.train_on_batch(*batch, return_dict=True)
        _compare_logs(stage, got, want, size, p.forward)
        for var, a, b in zip(fused.weights, split.get_weights(), fused.get_weights()):
            compare(f"{stage}: weights", var.path, a, b, p.forward, ATOL + noise)
        split.set_weights(fused.get_weights())  # each step from the same point
        for mine, theirs in zip(fused.trainable_weights, split.trainable_weights):
            for slot in fused.optimizer.all_slots():
                np.copyto(
                    split.optimizer.slots[split.optimizer.slot_path(theirs, slot)],
                    fused.optimizer.slots[fused.optimizer.slot_path(mine, slot)],
                )


def _own_steps_twin(model):
    """``model``'s layers in a model that overrides ``predict_step`` (returning Keras's
    default), so that its train and test steps are Keras's defaults written with the
    gradient API and traced as a user's own step is (``trainers.custom_step``), compiled
    as ``model`` is, with a fresh optimizer of the same configuration."""
    import kcompile as keras

    class OwnSteps(keras.Model):
        def predict_step(self, data):
            return super().predict_step(data)

    # Under the model's policy, so that compile wraps the optimizer in a loss scale where
    # the model's was (mixed_float16).
    keras.mixed_precision.set_global_policy(model.dtype_policy)
    try:
        twin = OwnSteps(model.inputs, model.outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    twin.compile_from_config(model.get_compile_config())
    return twin


def check_own_steps(build_model, spec: ModelSpec, xs, ys, p: Precision) -> None:
    """The built-in train and test steps against the same steps written as a user's own
    ``train_step`` would be (GradientTape, ``optimizer.apply``, ``compute_metrics``):
    three steps from the same weights and optimizer state, logs and weights."""
    fused = _build(build_model, "llvm", spec.seed)
    if getattr(fused, "_host", None):
        return  # host layers (string lookups) run before the step, outside a traced one
    own = _own_steps_twin(fused)
    size = BATCHES[(spec.seed + 1) % len(BATCHES)]
    batch = [x[:size] for x in xs], [y[:size] for y in ys]
    _, args = spec.optimizer
    noise = 2 * args.get("learning_rate", 0.001) if spec.optimizer[0] != "SGD" else 0.0
    start = fused.get_weights()
    for step in range(3):
        stage = f"own train_step {step + 1} at batch {size}"
        fused.set_weights(start)
        want = fused.train_on_batch(*batch, return_dict=True)
        after = fused.get_weights()
        fused.set_weights(start)  # the twin shares the layers: the same starting point
        got = own.train_on_batch(*batch, return_dict=True)
        shared = {k: want[k] for k in got if k in want}
        if "loss" not in got:
            raise Mismatch(stage, f"no loss among the logs {sorted(got)}")
        _compare_logs(stage, {k: got[k] for k in shared}, shared, size, p.forward)
        for var, a, b in zip(fused.weights, fused.get_weights(), after):
            compare(f"{stage}: weights", var.path, a, b, p.forward, ATOL + noise)
        start = after
    got = own.evaluate(*batch, batch_size=size, verbose=0, return_dict=True)
    want = fused.evaluate(*batch, batch_size=size, verbose=0, return_dict=True)
    _compare_logs(
        "own test_step",
        {k: got[k] for k in got if k in want},
        {k: want[k] for k in got if k in want},
        size,
        p.forward,
    )


def check_evaluate(native, reference, xs, ys, p: Precision) -> None:
    for batch in BATCHES:
        got = native.evaluate(xs, ys, batch_size=batch, verbose=0, return_dict=True)
        want = reference.evaluate(xs, ys, batch_size=batch, verbose=0, return_dict=True)
        _compare_logs(f"evaluate batch {batch}", got, want, len(xs[0]), p.forward)


def check(build_model, spec: ModelSpec) -> None:
    """Every check above on the model ``build_model(backend)`` makes; raises ``Mismatch``."""
    native = _build(build_model, "llvm", spec.seed)
    reference = _build(build_model, "reference", spec.seed)
    reference.set_weights(native.get_weights())
    xs, ys = make_data(spec, np.random.default_rng(spec.seed), max(BATCHES))
    p = Precision.of(spec)
    check_forward(native, xs, p)
    if any(inp.dynamic for inp in spec.inputs):
        check_forward(native, make_data(spec, np.random.default_rng(spec.seed), 5, 2)[0], p)
    check_gradients(native, [x[:5] for x in xs], [y[:5] for y in ys], p)
    check_evaluate(native, reference, xs, ys, p)
    check_training(native, reference, xs, ys, spec, p)
    check_data_parallel(build_model, spec, xs, ys, p)
    check_own_steps(build_model, spec, xs, ys, p)


def load_file(path: str):
    """The module of a saved reproduction (its ``build_model`` and ``SPEC``)."""
    module_spec = importlib.util.spec_from_file_location("kcompile_fuzz_case", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def check_file(path: str) -> str:
    """Check a saved reproduction; ``"ok"`` or raises."""
    module = load_file(path)
    check(module.build_model, ModelSpec.from_json(module.SPEC))
    return "ok"


def check_source(source: str, spec: ModelSpec) -> None:
    namespace: dict = {"__name__": "kcompile_fuzz_case"}
    exec(compile(source, f"<fuzz model {spec.seed}>", "exec"), namespace)
    check(namespace["build_model"], spec)


__all__ = ["Mismatch", "check", "check_file", "check_source", "compare", "make_data"]
