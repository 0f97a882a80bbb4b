"""The compiled steps of a model that overrides ``train_step``, ``test_step`` or
``predict_step``: each step is the model's method (or Keras's default, written with the
same API) traced by ``custom_step`` and compiled as one native step, which the training
loop runs as it runs the built-in ones.

Such a model's steps take the batch as ``fit`` was given it, not as its Inputs describe
it (a GAN has no Inputs): ``x`` (an array, or a list or dict of them), ``y`` and
``sample_weight``, each array named by where it sits (``x``, ``x/0``, ``x/image``, ``y``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kcompile import tree
from kcompile.distribution import active as active_job
from kcompile.ir import BATCH, DType, TensorType
from kcompile.ir.signature import result_columns
from kcompile.ir.types import ShapeError
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import make_executable
from kcompile.trainers import custom_step as CS
from kcompile.trainers.logs import RunningLogs
from kcompile.trainers.step_methods import StepMethods
from kcompile.trainers.trainer import ModelSteps


def overrides_steps(cls: type) -> bool:
    """Whether a model class defines its own train_step, test_step or predict_step."""
    return any(
        getattr(cls, name, None) is not getattr(StepMethods, name)
        for name in CS.STEP_METHODS.values()
    )


def _array(a: Any, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected numeric arrays, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{what}: expected arrays with a batch axis, got a scalar")
    dtype = np.float32 if a.dtype.kind == "f" else np.int32
    return np.ascontiguousarray(a, dtype=dtype)


def _named(structure: Any, prefix: str) -> list[tuple[str, Any]]:
    """The leaves of one part of the batch with their step input names."""
    if structure is None:
        return []
    if not tree.is_nested(structure):
        return [(prefix, structure)]
    return [
        (prefix + "/" + "/".join(str(p) for p in path), leaf)
        for path, leaf in tree.flatten_with_path(structure)
    ]


class CustomSteps(ModelSteps):
    """``ModelSteps`` whose steps are the model's own methods."""

    def __init__(self, model: Any, pack_outputs) -> None:
        super().__init__(model, pack_outputs)
        self.counter = CS.new_counter()  # steps taken: what random draws are keyed by
        self._layout: tuple = (None, None)  # the structures of x and y last given
        self._predict_structures: dict = {}
        self._last_predict: Any = None
        self.pack_outputs = self.pack_predictions
        self.running = SyncedLogs(self.metric_objects)

    # --- the batch as given -----------------------------------------------------------

    def _split(self, x: Any, y: Any, what: str) -> tuple[list, list]:
        xs = [_array(a, f"{what}: x") for _, a in _named(x, "x")]
        ys = [_array(a, f"{what}: y") for _, a in _named(y, "y")]
        if not xs:
            raise ValueError(f"{what}: no input data (x is None)")
        self._layout = (
            tree.map_structure(lambda a: 0, x, none_is_leaf=False),
            None if y is None else tree.map_structure(lambda a: 0, y, none_is_leaf=False),
        )
        return xs, ys

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in _named(self._layout[0], "x")]

    @property
    def label_names(self) -> list[str]:
        return [name for name, _ in _named(self._layout[1], "y")]

    def data_for(self, method: str, x: Any, y: Any):
        self.require_compiled(method)
        return self._split(x, y, method)

    def labelled(self, x: Any, y: Any):
        return self._split(x, y, "validation")

    def inputs_for(self, x: Any) -> list[np.ndarray]:
        return self._split(x, None, "predict")[0]

    def build_for(self, x: Any) -> None:
        """The model's own step builds what it calls, as Keras's does."""

    def input_shapes(self, xs: list[np.ndarray]) -> tuple:
        return tuple(tuple(x.shape[1:]) for x in xs)

    @property
    def metrics_names(self) -> list[str]:
        return list(self.config.metric_order if self.config else [])

    # --- the steps ----------------------------------------------------------------------

    def step(self, kind: str, xs: list[np.ndarray], ys: list[np.ndarray]):
        types = tuple(_leaf_type(a) for a in [*xs, *ys])
        return self.executable(kind, types, self._layout_key())

    def _layout_key(self) -> tuple:
        return tuple(repr(s) for s in self._layout)

    def _data(self, types: list[TensorType]) -> Any:
        """The batch as the step receives it: ``x``, ``(x, y)`` or ``(x, y, sample
        weight)``, each array a ``DataLeaf``."""
        x_struct, y_struct = self._layout
        names = self.input_names + self.label_names
        leaves = [CS.DataLeaf(n, t) for n, t in zip(names, types)]
        x_leaves = leaves[: len(self.input_names)]
        y_leaves = leaves[len(self.input_names) : len(names)]
        x = tree.pack_sequence_as(x_struct, x_leaves) if tree.is_nested(x_struct) else x_leaves[0]
        y = None
        if y_struct is not None:
            y = (
                tree.pack_sequence_as(y_struct, y_leaves)
                if tree.is_nested(y_struct)
                else y_leaves[0]
            )
        weight = None
        if len(types) > len(names):
            weight = CS.DataLeaf("sample_weight", types[len(names)])
        if y is None and weight is None:
            return x if not isinstance(x, tuple | list) else (x,)
        return (x, y) if weight is None else (x, y, weight)

    def _make_executable(self, kind: str, label_types: list, input_shapes: tuple = ()):
        if active_job() is not None:
            raise NotImplementedError(
                f"model '{self.model.name}' defines its own {CS.STEP_METHODS[kind]}: kcompile "
                "does not run a model's own steps data-parallel yet (the gradients would "
                "have to be summed inside it); use the built-in steps with a distribution"
            )
        try:
            return self._compile_step(kind, list(label_types))
        except ShapeError as error:
            if "batch dimension" not in str(error):
                raise
        # The step changes the batch's size (a GAN concatenates real and generated
        # images): it is traced for each batch size met, as JAX's jit retraces.
        return BatchSpecialized(
            lambda n: self._compile_step(kind, [_sized(t, n) for t in label_types])
        )

    def _compile_step(self, kind: str, types: list[TensorType]):
        backend = self.config.backend if self.config else "llvm"
        manager = PassManager(default_passes())
        traced = CS.trace_custom_step(
            self.model, kind, self._data(types), self.counter, manager.stage
        )
        exe = make_executable(traced.graph, backend, manager)
        exe.lock = self.lock
        for name, array in traced.bindings.items():
            exe.bind(name, array)
        if kind == "predict":
            self._predict_structures[id(exe)] = traced.structure
        else:
            self._register_metrics(traced.metrics)
            if self.config is not None and not self.config.metric_order:
                self.config.metric_order = list(traced.log_keys)
        return exe

    def predict_batch(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        exe = self.step("predict", xs, [])
        out = exe.results(dict(zip(self.input_names, xs)))
        self._last_predict = self._predict_structures[id(exe)]
        return [out[f"out/{i}"] for i in range(len(tree.flatten(self._last_predict)))]

    def predict_on_batch(self, x: Any) -> Any:
        return self.pack_outputs(self.predict_batch(self.inputs_for(x)))

    def pack_predictions(self, arrays: list[np.ndarray]) -> Any:
        """Predictions in the structure predict_step returned."""
        structure = self._last_predict
        if not tree.is_nested(structure):
            return arrays[0]
        return tree.pack_sequence_as(structure, arrays)


class SyncedLogs(RunningLogs):
    """The running logs of a model's own steps, which also leave each metric object the
    step updated holding its running statistics: ``tracker.result()`` after ``fit`` is
    the value fit reported, as Keras's metric objects are."""

    def __init__(self, owners: dict[str, Any]) -> None:
        super().__init__()
        self.owners = owners  # log key -> the metric object whose result it is

    def logs(self) -> dict[str, float]:
        logs = super().logs()
        for key, metric in self.owners.items():
            acc = self._acc.get(key)
            if acc is not None and isinstance(getattr(metric, "_acc", None), dict):
                metric._acc = dict(acc)
        return logs


def _sized(t: TensorType, n: int) -> TensorType:
    return TensorType(t.dtype, (n, *t.shape[1:]))


class BatchSpecialized:
    """A step compiled once per batch size (``make(n)``), with the executable interface
    the training loop uses; ``run_epoch`` steps through the batches in Python."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        self._make = make
        self._by_size: dict[int, Any] = {}
        self.lock = None

    def for_size(self, n: int):
        exe = self._by_size.get(n)
        if exe is None:
            exe = self._by_size[n] = self._make(n)
        return exe

    @property
    def graph(self):
        return next(iter(self._by_size.values())).graph

    def _rows(self, data: Mapping[str, np.ndarray]) -> int:
        return len(next(iter(data.values())))

    def results(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.for_size(self._rows(data)).results(data)

    def check_data(self, data: Mapping[str, np.ndarray]) -> None:
        """Checked when the batch size is known (``run_epoch``, ``results``): not worth a
        compile for the whole data's size here."""
        self._unchecked = data

    @property
    def log_columns(self) -> Callable[[], list[str]]:
        """The columns of a step's log, once a step is compiled; until then there is
        none (an AttributeError: the progress bar then shows no running logs)."""
        if not self._by_size:
            raise AttributeError("log_columns: no step compiled yet")
        return lambda: result_columns(self.graph)

    def run_epoch(
        self, sources, order, batch, first=0, steps=None, progress=None, stop=None, logs=None
    ):
        """As ``EpochLoop.run_epoch``: steps ``first, first + 1, ...`` of the epoch."""
        left = -(-len(order) // batch) - first
        steps = max(0, left if steps is None else min(steps, left))
        exe = self.for_size(min(batch, len(order)))
        if getattr(self, "_unchecked", None) is not None:
            exe.check_data(self._unchecked)
            self._unchecked = None
        names = result_columns(exe.graph)
        rows = np.zeros((steps, len(names)), np.float32) if logs is None else logs
        done = 0
        for k in range(steps):
            index = order[(first + k) * batch : (first + k + 1) * batch]
            out = self.results({name: a[index] for name, a in sources.items()})
            rows[k] = [float(np.asarray(out[c])) for c in names]
            done = k + 1
            if progress is not None:
                progress[0] = done
            if stop is not None and stop[0]:
                break
        return names, rows[:done]


def _leaf_type(a: np.ndarray) -> TensorType:
    dtype = DType.f32 if a.dtype == np.float32 else DType.i32
    return TensorType(dtype, (BATCH, *a.shape[1:]))
