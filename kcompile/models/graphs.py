"""The three step graphs of a compiled model, traced into IR.

- ``predict``: inputs, weights -> outputs.
- ``eval_step``: inputs, labels, weights -> loss, per-output losses, metric statistics.
- ``train_step``: as ``eval_step`` with training behaviour (dropout on), plus the
  gradients (``passes.autodiff``) and the optimizer's update, returning every
  updated weight and optimizer slot under the name of the input it replaces.

Names in the graphs: model inputs by their Input layer names; labels ``y``
(or ``y/<output>``); weights by their paths (``dense/kernel``); optimizer
slots ``<optimizer>/<weight path>/<slot>``; the scalars ``iterations`` and
``learning_rate``; metric statistics ``metric/<name>/<stat>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kcompile import losses as losses_mod
from kcompile import metrics as metrics_mod
from kcompile.backend.variables import Variable
from kcompile.distribution.step import GRADIENT, REPLICA_WEIGHT
from kcompile.ir import BATCH, DType, Graph, TensorType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import TraceContext
from kcompile.losses.loss import apply_mask
from kcompile.passes import append_gradients

SAMPLE_WEIGHT = "sample_weight"  # the step input of per-sample weights


@dataclass
class OutputSpec:
    """How one model output is scored: its loss, weight, metrics and weighted metrics."""

    name: str
    loss: losses_mod.Loss | None
    weight: float
    metric_ids: list = field(default_factory=list)
    weighted_metric_ids: list = field(default_factory=list)


def _add_model_inputs(model, graph: Graph, input_shapes: tuple = ()) -> list[Value]:
    """The model's inputs; ``input_shapes`` (each input's shape without the batch) sizes
    the dimensions its Inputs leave unknown."""
    sizes = input_shapes or [None] * len(model.inputs)
    return [
        graph.add_input(name, t.ir_type(s), "data")
        for t, name, s in zip(model.compiled_inputs, model.input_names, sizes)
    ]


def _with_inputs_batch(types: list[TensorType], inputs: list[Value]) -> list[TensorType]:
    """``types`` (labels, sample weights) with the batch the model's Inputs fix
    (``Input(batch_size=8)``: a stateful RNN's), so that they meet its predictions."""
    fixed = {v.shape[0] for v in inputs if v.shape and v.shape[0] != BATCH}
    if len(fixed) != 1 or any(v.shape and v.shape[0] == BATCH for v in inputs):
        return types
    (batch,) = fixed
    return [
        t.with_shape((batch, *t.shape[1:])) if t.shape and t.shape[0] == BATCH else t for t in types
    ]


def label_names(model) -> list[str]:
    names = model.output_names
    return ["y"] if len(names) == 1 else [f"y/{n}" for n in names]


def trace_predict(model, record=None, input_shapes: tuple = ()) -> Graph:
    graph = Graph("predict")
    ctx = TraceContext(graph, training=False)
    outs = model.trace_graph(ctx, _add_model_inputs(model, graph, input_shapes))
    graph.set_outputs([(f"out/{n}", v) for n, v in zip(model.output_names, outs)])
    if record:
        record("traced", graph)
    return graph


@dataclass
class ScoredGraph:
    graph: Graph
    ctx: TraceContext
    loss: Value
    metrics: list[tuple[str, metrics_mod.Metric]]


def _trace_scored(
    model,
    name: str,
    training: bool,
    specs: list[OutputSpec],
    label_types: list[TensorType],
    input_shapes: tuple = (),
) -> ScoredGraph:
    graph = Graph(name)
    ctx = TraceContext(graph, training=training)
    inputs = _add_model_inputs(model, graph, input_shapes)
    preds = model.trace_graph(ctx, inputs)
    names = label_names(model)
    label_types = _with_inputs_batch(label_types, inputs)
    labels = [graph.add_input(n, t, "data") for n, t in zip(names, label_types)]
    # One more label type than outputs: per-sample weights (sample_weight, class_weight)
    weights = (
        graph.add_input(SAMPLE_WEIGHT, label_types[len(names)], "data")
        if len(label_types) > len(names)
        else None
    )
    metrics: list[tuple[str, metrics_mod.Metric]] = []
    many = len(specs) > 1
    custom = _custom_loss(model)
    with graph.layer_scope("loss"):
        total, per_output = compiled_loss(
            specs, labels, preds, [] if custom else ctx.losses, weights, ctx.mask_of
        )
        if custom:
            total = _traced_compute_loss(model, ctx, inputs, labels, preds, training)
    if total is None:
        raise ValueError(
            f"model '{model.name}' was compiled without a loss, and its layers add none (add_loss)"
        )
    outputs = [(f"loss/{name}", value) for name, value in per_output] if many else []
    with graph.layer_scope("metrics"):
        for key, metric, stats in compiled_metric_stats(specs, labels, preds, weights, ctx.mask_of):
            outputs += [(f"metric/{key}/{stat}", v) for stat, v in stats.items()]
            metrics.append((key, metric))
    graph.set_outputs([("loss", total), *outputs])
    return ScoredGraph(graph, ctx, total, metrics)


def compiled_metric_stats(
    specs: list[OutputSpec],
    labels: list[Value],
    preds: list[Value],
    sample_weight: Value | None = None,
    mask_of: Callable[[Value], Value | None] = lambda p: None,
) -> list[tuple[str, metrics_mod.Metric, dict[str, Value]]]:
    """Each compiled metric of one batch: its key in the logs (``<output>_<name>`` for a
    model of several outputs), the metric, and its statistics."""
    out = []
    many = len(specs) > 1
    for spec, y, p in zip(specs, labels, preds):
        plain = [(ident, False) for ident in spec.metric_ids]
        weighted = [(ident, True) for ident in spec.weighted_metric_ids]
        taken = set()
        for ident, is_weighted in plain + weighted:
            metric = metrics_mod.get(ident, y.type, p.type)
            if is_weighted and metric.name in taken:
                metric.name = f"weighted_{metric.name}"  # Keras's name beside the plain one
            taken.add(metric.name)
            key = f"{spec.name}_{metric.name}" if many else metric.name
            w = sample_weight if is_weighted else None
            if isinstance(metric, metrics_mod.MeanMetricWrapper):  # Keras masks these
                w = apply_mask(w, mask_of(p), "sum")
            out.append((key, metric, metric.stats(_float32(y), _float32(p), w)))
    return out


def _float32(v: Value) -> Value:
    """Losses and metrics compute in float32 under every dtype policy, as Keras's do
    (their own policy is float32): narrow predictions and labels are widened."""
    return B.cast(v, DType.f32) if v.dtype.is_narrow_float else v


def compiled_loss(
    specs: list[OutputSpec],
    labels: list[Value],
    preds: list[Value],
    extras: list[Value],
    sample_weight: Value | None = None,
    mask_of: Callable[[Value], Value | None] = lambda p: None,
) -> tuple[Value | None, list[tuple[str, Value]]]:
    """The weighted sum of the outputs' compiled losses (each of its samples weighted by
    ``sample_weight``, masked values left out: ``mask_of(prediction)``) plus ``extras``
    (add_loss and regularization penalties, as Keras adds them), and each output's loss
    by name."""
    total = None
    per_output = []
    for spec, y, p in zip(specs, labels, preds):
        if spec.loss is None:
            continue
        value = spec.loss.ir(_float32(y), _float32(p), sample_weight, mask_of(p))
        per_output.append((spec.name, value))
        weighted = value * spec.weight if spec.weight != 1.0 else value
        total = weighted if total is None else total + weighted
    for extra in extras:
        extra = _float32(extra)
        total = extra if total is None else total + extra
    return total, per_output


def _custom_loss(model) -> bool:
    """Whether the model overrides Keras 3's backend-agnostic ``compute_loss`` hook."""
    return not getattr(type(model).compute_loss, "keras_default", False)


def _traced_compute_loss(model, ctx, inputs, labels, preds, training) -> Value:
    """The model's own ``compute_loss(x, y, y_pred, training=...)``, written with
    keras.ops (``super().compute_loss(...)`` gives the compiled loss and ``self.losses``)."""
    from kcompile.backend.symbolic import TracedTensor, tracing

    def one(values):
        traced = [TracedTensor(v) for v in values]
        return traced[0] if len(traced) == 1 else traced

    with tracing(ctx):
        out = model._compute_loss(one(inputs), one(labels), one(preds), None, training=training)
    if not isinstance(out, TracedTensor) or out.value.rank != 0:
        raise ValueError(
            f"model '{model.name}': compute_loss must return a scalar tensor, got {out!r}"
        )
    return out.value


def trace_eval(model, specs, label_types, record=None, input_shapes=()) -> ScoredGraph:
    scored = _trace_scored(model, "eval_step", False, specs, label_types, input_shapes)
    if record:
        record("traced", scored.graph)
    return scored


def trace_train(model, specs, label_types, optimizer, record=None, input_shapes=()) -> ScoredGraph:
    """The train step; ``record(stage, graph)`` sees it traced, then after autodiff."""
    scored, params, grads = _trace_gradients(
        model, specs, label_types, record, input_shapes, optimizer=optimizer
    )
    graph, ctx = scored.graph, scored.ctx
    iterations = ctx.step_counter()
    updates = _apply_optimizer(graph, optimizer, params, grads, iterations)
    state = [(var.path, value) for var, value in ctx.state_updates.items()]
    graph.set_outputs(graph.outputs + list(updates.items()) + state)
    if record:
        record("autodiff", graph)
    return scored


def trace_grad(
    model, specs, label_types, record=None, input_shapes=(), optimizer=None
) -> ScoredGraph:
    """The train step without the optimizer (data-parallel training sums the gradients
    across processes between the two): loss, metric statistics, the state updates and
    each trainable weight's gradient as output ``grad/<path>``. That name is also an
    input, so the step writes the gradients into the arrays bound to it."""
    scored, params, grads = _trace_gradients(
        model, specs, label_types, record, input_shapes, weighted=True, optimizer=optimizer
    )
    graph, ctx = scored.graph, scored.ctx
    outputs = []
    for (var, _), g in zip(params, grads):
        graph.add_input(f"{GRADIENT}{var.path}", TensorType(DType.f32, var.shape), "param")
        outputs.append((f"{GRADIENT}{var.path}", g))
    state = [(var.path, value) for var, value in ctx.state_updates.items()]
    graph.set_outputs(graph.outputs + outputs + state)
    if record:
        record("autodiff", graph)
    return scored


def trace_apply(model, optimizer, record=None) -> Graph:
    """The optimizer's update alone: weights, slots and gradients (inputs ``grad/<path>``)
    to the new weights and slots."""
    graph = Graph("apply_step")
    ctx = TraceContext(graph, training=True)
    params = [(var, ctx.weight(var)) for var in model.trainable_weights]
    grads = [
        graph.add_input(f"{GRADIENT}{var.path}", TensorType(DType.f32, var.shape), "param")
        for var, _ in params
    ]
    updates = _apply_optimizer(graph, optimizer, params, grads, ctx.step_counter())
    graph.set_outputs(list(updates.items()))
    if record:
        record("traced", graph)
    return graph


def _trace_gradients(
    model, specs, label_types, record, input_shapes, weighted=False, optimizer=None
):
    """The scored train-mode graph with every trainable weight's gradient appended:
    (scored, [(variable, its value)], [gradient]). ``weighted``: the gradients are those
    of the loss times input ``replica_weight`` (this replica's rows over the global
    batch's), so that summed over the replicas they are the global batch's, through
    ``replica_sum``'s gradient too. The gradients are those of the loss as ``optimizer``
    scales it (Keras's ``scale_loss``; its update divides them by the scale again); the
    loss the step reports is not scaled."""
    scored = _trace_scored(model, "train_step", True, specs, label_types, input_shapes)
    if record:
        record("traced", scored.graph)
    ctx = scored.ctx
    trainable = list(model.trainable_weights)
    for var in trainable:
        ctx.weight(var)  # a weight the loss does not reach still gets its (zero) update
    params = [(var, ctx.weights[var]) for var in trainable]
    loss = scored.loss
    if weighted:
        loss = loss * scored.graph.add_input(REPLICA_WEIGHT, TensorType(DType.f32, ()), "param")
    if optimizer is not None:
        loss = optimizer.scale_loss_ir(
            loss, lambda path: _optimizer_input(scored.graph, path, optimizer, trainable)
        )
    grads = append_gradients(scored.graph, loss, [w for _, w in params])
    return scored, params, grads


def _apply_optimizer(graph: Graph, optimizer, params, grads, iterations: Value) -> dict:
    trainable = [var for var, _ in params]
    lr = optimizer.step_learning_rate(graph, iterations)

    def slot_value(path: str) -> Value:
        return _optimizer_input(graph, path, optimizer, trainable)

    return optimizer.apply_ir(
        [(v, w, g) for (v, w), g in zip(params, grads)], slot_value, lr, iterations
    )


STEPS = ("train", "eval", "predict")


@dataclass
class TracedStep:
    """A step's traced graph and the metrics its statistics feed (none for predict)."""

    graph: Graph
    metrics: list = field(default_factory=list)


def trace_step(
    model, kind: str, label_types=None, record=None, input_shapes: tuple = ()
) -> TracedStep:
    """The traced graph of step ``kind`` of ``model`` (``predict``, ``eval`` or ``train``),
    for labels of ``label_types`` (by default those its losses expect) and inputs of
    ``input_shapes`` (needed where an Input leaves a dimension unknown); ``record(stage,
    graph)`` sees the traced graph, and the one with gradients for ``train``."""
    if kind == "predict":
        return TracedStep(trace_predict(model, record, input_shapes))
    if kind not in (*STEPS, "grad"):
        raise ValueError(f"unknown step {kind!r}; expected one of {STEPS}")
    compiled = model.compiled_steps.require_compiled("train" if kind == "grad" else kind)
    label_types = label_types or model.default_label_types(input_shapes)
    if kind == "eval":
        scored = trace_eval(model, compiled.specs, label_types, record, input_shapes)
    elif kind == "grad":
        compiled.optimizer.build(model.trainable_weights)  # its state is bound to the step
        scored = trace_grad(
            model, compiled.specs, label_types, record, input_shapes, compiled.optimizer
        )
    else:
        compiled.optimizer.build(model.trainable_weights)
        scored = trace_train(
            model, compiled.specs, label_types, compiled.optimizer, record, input_shapes
        )
    return TracedStep(scored.graph, scored.metrics)


def _optimizer_input(graph: Graph, path: str, optimizer, trainable: list) -> Value:
    """The step's input of optimizer array ``path`` (a slot, or a loss scale), made on
    first use."""
    try:
        return graph.input(path)
    except KeyError:
        shape = _slot_shape(path, trainable, optimizer)
        return graph.add_input(path, TensorType(DType.f32, shape), "opt")


def _slot_shape(path: str, variables: list[Variable], optimizer) -> tuple:
    if path in optimizer.slots:
        return optimizer.slots[path].shape
    for var in variables:
        for slot in optimizer.all_slots():
            if optimizer.slot_path(var, slot) == path:
                return optimizer.slot_shape(var, slot)
    raise KeyError(path)


def label_type_for(array_dtype, shape: tuple) -> TensorType:
    kind = array_dtype.kind
    dtype = DType.i32 if kind in "iub" else DType.f32
    return TensorType(dtype, (BATCH, *shape[1:]))
