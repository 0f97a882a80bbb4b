"""Keras's ``fit``, ``evaluate`` and ``predict`` loops over checked arrays, shared by
compiled models and by loaded artifacts.

A ``TrainingLoop`` is a component: a model (``models.Model``, ``artifact.LoadedModel``)
holds one and its Keras methods delegate to it (``delegate_to_loop``). The loop owns
its ``StepProvider`` (the compiled model's traces and compiles the steps, an artifact's
holds its loaded programs), which also owns the epoch's ``RunningLogs`` and knows the
metric names. What callbacks see stays on the model, as Keras has it: callbacks get the
model, and the loop reads and writes its public ``stop_training`` and ``history``.
"""

from __future__ import annotations

import functools
import math
import threading
import warnings
from typing import Any, Protocol

import numpy as np

from kcompile import config, distribution
from kcompile.callbacks import CallbackList
from kcompile.distribution.mpi import warn_if_alone
from kcompile.runtime.epoch import EpochLoop
from kcompile.trainers import data as D
from kcompile.trainers.batches import BatchSource, is_batch_source, unpack
from kcompile.trainers.logs import RunningLogs, step_columns
from kcompile.trainers.steps import chunk_size, run_steps
from kcompile.utils.traceback_utils import filter_traceback


class StepProvider(Protocol):
    """What the loops need of a model: its data checked, its steps, and the running
    logs those steps' metrics are computed in."""

    @property
    def input_names(self) -> list[str]: ...

    @property
    def label_names(self) -> list[str]: ...

    @property
    def steps_per_execution(self) -> int:
        """Steps per native call (Keras's compile setting)."""

    @property
    def running(self) -> RunningLogs:
        """The epoch's running loss and metrics, knowing how each metric is computed."""

    @property
    def metrics_names(self) -> list[str]:
        """Keras's ``metrics_names``: ``loss``, then the compiled metrics in order."""

    def pack_outputs(self, arrays: list[np.ndarray]) -> Any:
        """What ``predict`` returns for the outputs' arrays (one array, a list, a dict)."""

    def replica_arrays(self) -> list[np.ndarray]:
        """The arrays every rank of a data-parallel job must hold the same: weights and
        optimizer state."""

    def data_for(self, method: str, x: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Checked input and label arrays for ``fit`` or ``evaluate`` (``method``)."""

    def labelled(self, x: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Checked input and label arrays of validation data."""

    def inputs_for(self, x: Any) -> list[np.ndarray]:
        """Checked input arrays for ``predict``."""

    def step(self, kind: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> EpochLoop:
        """The ``train`` or ``eval`` step for inputs like ``xs`` and labels like ``ys``."""

    def predict_batch(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """The outputs for one batch of inputs."""

    def epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """The order of the ``n`` rows in a shuffled epoch."""

    def epoch_finished(self, epoch: int) -> None:
        """Called after each epoch's steps and validation, before ``on_epoch_end``."""


def one_call_at_a_time(method):
    """``method`` holding the loop's call lock: fit, evaluate and the on-batch calls
    share the running logs, so from several threads they take turns."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.calls_lock:
            return method(self, *args, **kwargs)

    return run


def delegate_to_loop(method):
    """A model's Keras method (``fit``, ``evaluate``, ...) that runs ``method`` of the
    model's ``TrainingLoop`` (held as ``_loop``), with its signature and docstring."""
    name = method.__name__

    @functools.wraps(method)
    def delegate(self, *args, **kwargs):
        return getattr(self._loop, name)(*args, **kwargs)

    return filter_traceback(delegate)


def keras_verbosity(verbose: Any) -> int:
    """Keras's ``verbose``: 0 silent, 1 a progress bar, 2 one line per epoch; ``"auto"``
    is 1."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f'verbose must be 0, 1, 2 or "auto", got {verbose!r}')
    return int(verbose)


def limited_epochs(epochs: int) -> int:
    """``epochs``, at most ``keras.config.max_epochs()`` (a debugging limit), as Keras's
    fit does."""
    limit = config.max_epochs()
    if limit and limit < epochs:
        warnings.warn(f"Limiting epochs to {limit}", stacklevel=3)
        return limit
    return epochs


def limited_steps(steps: int | None) -> int | None:
    """``steps``, at most ``keras.config.max_steps_per_epoch()``, as Keras's epoch
    iterator limits fit's, evaluate's and predict's steps."""
    limit = config.max_steps_per_epoch()
    if limit and (not steps or limit < steps):
        warnings.warn(f"Limiting steps_per_epoch to {limit}", stacklevel=3)
        return limit
    return steps


class TrainingLoop:
    """Keras's fit/evaluate/predict for ``model`` over ``steps``."""

    def __init__(self, model: Any, steps: StepProvider, default_batch_size: int = 32) -> None:
        """``model`` is what callbacks get and holds ``stop_training`` and ``history``;
        ``steps`` gives the loop its data checks, steps and running logs. The call lock
        (``one_call_at_a_time``) makes calls from several threads take turns."""
        self.model = model
        self.steps = steps
        self.default_batch_size = default_batch_size
        self.calls_lock = threading.RLock()

    @property
    def running(self) -> RunningLogs:
        return self.steps.running

    @one_call_at_a_time
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: list | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: Any = None,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
    ):
        epochs = limited_epochs(epochs)
        steps_per_epoch = limited_steps(steps_per_epoch)
        validation_steps = limited_steps(validation_steps)
        if is_batch_source(x):
            _refuse_with_batches("fit", y, sample_weight, batch_size)
            source = BatchSource(x, steps_per_epoch, shuffle, "fit")
            return self._fit_batches(
                source,
                epochs,
                keras_verbosity(verbose),
                callbacks,
                validation_data,
                initial_epoch,
                validation_steps,
                class_weight,
            )
        batch_size = self._batch_size(batch_size)
        xs, ys = self.steps.data_for("fit", x, y)
        _refuse_empty("fit", xs)
        ys = D.with_sample_weights(ys, sample_weight, class_weight, "fit")
        xs, ys, val = self._validation(xs, ys, validation_data, validation_split)
        if epochs > initial_epoch:
            self._check_indices("train", xs, ys)
            if val is not None:
                self._check_indices("eval", *val)
        return self._fit_arrays(
            xs,
            ys,
            val,
            batch_size,
            epochs,
            keras_verbosity(verbose),
            callbacks,
            shuffle,
            initial_epoch,
            steps_per_epoch,
            validation_steps,
            validation_batch_size,
            validation_freq,
        )

    @one_call_at_a_time
    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        verbose: Any = "auto",
        sample_weight: Any = None,
        steps: int | None = None,
        callbacks: list | None = None,
        return_dict: bool = False,
        **kwargs: Any,
    ):
        callbacks, verbose = _off_root(callbacks, keras_verbosity(verbose))
        steps = limited_steps(steps)
        if is_batch_source(x):
            _refuse_with_batches("evaluate", y, sample_weight, batch_size)
            source = BatchSource(x, steps, False, "evaluate")
            cbs = CallbackList(
                callbacks,
                model=self.model,
                add_progbar=verbose != 0,
                verbose=verbose,
                epochs=1,
                steps=source.steps,
            )
            logs = self._evaluate_batches(source, cbs)
            return dict(logs) if return_dict else self._flatten_in_order(logs)
        batch_size = self._batch_size(batch_size)
        xs, ys = self.steps.data_for("evaluate", x, y)
        _refuse_empty("evaluate", xs)
        ys = D.with_sample_weights(ys, sample_weight, None, "evaluate")
        self._check_indices("eval", xs, ys)
        total = math.ceil(len(xs[0]) / batch_size)
        cbs = CallbackList(
            callbacks,
            model=self.model,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=1,
            steps=total if steps is None else min(steps, total),
        )
        logs = self._evaluate_arrays(xs, ys, batch_size, steps, cbs)
        return dict(logs) if return_dict else self._flatten_in_order(logs)

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        verbose: Any = "auto",
        steps: int | None = None,
        callbacks: list | None = None,
    ):
        callbacks, verbose = _off_root(callbacks, keras_verbosity(verbose))
        steps = limited_steps(steps)
        if is_batch_source(x):
            source = BatchSource(x, steps, False, "predict")
            chunks = [
                self.steps.predict_batch(self.steps.inputs_for(unpack(b, "predict")[0]))
                for b in source.epoch()
            ]
            if not chunks:
                raise ValueError("predict got no batches")
            return self.steps.pack_outputs([np.concatenate(parts) for parts in zip(*chunks)])
        batch_size = self._batch_size(batch_size)
        xs = self.steps.inputs_for(x)
        n = len(xs[0])
        total = math.ceil(n / batch_size)
        if steps is not None:
            total = min(total, int(steps))
        cbs = CallbackList(
            callbacks,
            model=self.model,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=1,
            steps=total,
        )
        cbs.on_predict_begin()
        chunks: list[list[np.ndarray]] = []
        for step in range(total):
            sl = slice(step * batch_size, min((step + 1) * batch_size, n))
            cbs.on_predict_batch_begin(step)
            chunks.append(self.steps.predict_batch([a[sl] for a in xs]))
            cbs.on_predict_batch_end(step, {"outputs": chunks[-1]})
        cbs.on_predict_end()
        if not chunks:
            raise ValueError("predict got no samples")
        outs = [np.concatenate(parts) for parts in zip(*chunks)]
        return self.steps.pack_outputs(outs)

    @one_call_at_a_time
    def train_on_batch(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        class_weight: Any = None,
        return_dict: bool = False,
    ):
        xs, ys = self.steps.data_for("train_on_batch", x, y)
        self.reset_metrics()  # as recent Keras 3 trainers do: the logs are this batch's
        ys = D.with_sample_weights(ys, sample_weight, class_weight, "train_on_batch")
        logs = self._one_step("train", xs, ys)
        return logs if return_dict else self._flatten_in_order(logs)

    @one_call_at_a_time
    def test_on_batch(
        self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False
    ):
        xs, ys = self.steps.data_for("test_on_batch", x, y)
        self.reset_metrics()
        ys = D.with_sample_weights(ys, sample_weight, None, "test_on_batch")
        logs = self._one_step("eval", xs, ys)
        return logs if return_dict else self._flatten_in_order(logs)

    def predict_on_batch(self, x: Any):
        outs = self.steps.predict_batch(self.steps.inputs_for(x))
        return self.steps.pack_outputs(outs)

    @one_call_at_a_time
    def step_logs(self, kind: str, x: Any, y: Any = None, sample_weight: Any = None) -> dict:
        """One train or eval step on a batch, its statistics added to the running ones:
        the logs since the last ``reset_metrics`` (Keras's ``train_function``)."""
        method = "train_function" if kind == "train" else "test_function"
        xs, ys = self.steps.data_for(method, x, y)
        ys = D.with_sample_weights(ys, sample_weight, None, method)
        return self._one_step(kind, xs, ys)

    def _one_step(self, kind: str, xs: list[np.ndarray], ys: list[np.ndarray]) -> dict:
        out = self.steps.step(kind, xs, ys).results(self._feeds(xs, ys))
        names, values = step_columns(out)
        self._accumulate(names, values, np.array([len(xs[0])]))
        return self._logs()

    def _batch_size(self, batch_size: int | None) -> int:
        if batch_size is None:
            return self.default_batch_size
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    # --- the epoch's running loss and metrics ------------------------------------------

    def reset_metrics(self) -> None:
        self.running.reset()

    def _accumulate(self, names: list[str], values: np.ndarray, sizes: np.ndarray) -> None:
        self.running.add(names, values, sizes)

    def _logs(self) -> dict[str, float]:
        return self.running.logs()

    def _flatten_in_order(self, logs: dict[str, float]):
        names = self.steps.metrics_names
        results = [logs[n] for n in names if n in logs]
        results += [logs[k] for k in sorted(logs) if k not in names]
        return results[0] if len(results) == 1 else results

    # --- fit ------------------------------------------------------------------------------

    def _validation(self, xs, ys, validation_data: Any, validation_split: float):
        """(training xs, ys, validation (xs, ys) or None): ``validation_data`` wins over
        ``validation_split``, which takes the last samples, before shuffling."""
        if validation_data is not None:
            vx, vy, vw = D.unpack_validation(validation_data)
            vxs, vys = self.steps.labelled(vx, vy)
            return xs, ys, (vxs, D.with_sample_weights(vys, vw, None, "validation_data"))
        if validation_split:
            (xs, vxs), (ys, vys) = (
                D.split_tail(xs, validation_split),
                D.split_tail(ys, validation_split),
            )
            return xs, ys, (vxs, vys)
        return xs, ys, None

    def _fit_arrays(
        self,
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        val,
        batch_size: int,
        epochs: int,
        verbose: int,
        callbacks: list | None,
        shuffle: bool,
        initial_epoch: int,
        steps_per_epoch: int | None,
        validation_steps: int | None,
        validation_batch_size: int | None,
        validation_freq: int,
    ):
        n = len(xs[0])
        steps = math.ceil(n / batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, int(steps_per_epoch))
        self._start_replicas(batch_size)
        cbs = self._fit_callbacks(callbacks, verbose, epochs, steps)
        self.model.stop_training = False
        cbs.on_train_begin()
        initial_epoch = self._share_start(cbs, initial_epoch)
        logs: dict = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            order = self.steps.epoch_order(epoch, n) if shuffle else np.arange(n)
            order = self._same_order(order)
            logs = self._run_steps("train", xs, ys, order, batch_size, steps, cbs)
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(
                    val[0], val[1], validation_batch_size or batch_size, validation_steps, cbs
                )
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            self.steps.epoch_finished(epoch)
            cbs.on_epoch_end(epoch, epoch_logs)
            self._follow_root()
            if self.model.stop_training:
                break
        if epochs > initial_epoch:
            self._finalize_fit()
        cbs.on_train_end(logs)
        self._follow_root(weights=True)
        return self.model.history

    # --- data-parallel training (kcompile.distribution) --------------------------------

    def _start_replicas(self, batch_size: int | None) -> None:
        """Before fit: the global batch must split evenly (Keras's rule for
        ``DataParallel``); started by mpiexec without a distribution, warn."""
        job = distribution.active()
        if job is None:
            warn_if_alone()
            return
        if batch_size is not None and batch_size % job.size:
            raise ValueError(
                f"fit: the global batch size ({batch_size}) must be divisible by the number "
                f"of processes ({job.size}) under DataParallel"
            )

    def _share_start(self, cbs: CallbackList, initial_epoch: int) -> int:
        """After ``on_train_begin``: the epoch to start from (a callback that restored a
        run, BackupAndRestore, names it with ``resume_epoch``). In a data-parallel job
        (rank 0's callbacks) every rank starts from rank 0's weights, optimizer state
        (an unseeded initialization differs between processes) and epoch."""
        resume = cbs.resume_epoch()
        job = distribution.active()
        if job is not None:
            resume = job.broadcast_object(resume)
            self._broadcast_replicas(job)
        return initial_epoch if resume is None else max(initial_epoch, resume)

    def _same_order(self, order: np.ndarray) -> np.ndarray:
        """Rank 0's shuffle of the epoch, on every rank (each then reads its share)."""
        job = distribution.active()
        if job is not None:
            order = np.ascontiguousarray(order, dtype=np.int64)
            job.broadcast(order)
        return order

    def _follow_root(self, weights: bool = False) -> None:
        """After callbacks, which run on rank 0 alone: every rank takes rank 0's decision
        to stop and its learning rate (a scheduler's), and with ``weights`` (at the end
        of training: EarlyStopping may restore the best) its weights."""
        job = distribution.active()
        if job is None:
            return
        self.model.stop_training = bool(job.broadcast_object(bool(self.model.stop_training)))
        optimizer = getattr(self.model, "optimizer", None)  # an artifact has none
        if optimizer is not None and getattr(optimizer, "built", False):
            job.broadcast(optimizer.state_arrays()["learning_rate"])
        if weights:
            self._broadcast_replicas(job)

    def _broadcast_replicas(self, job) -> None:
        """Rank 0's weights and optimizer state into every rank's arrays."""
        for array in self.steps.replica_arrays():
            job.broadcast(array)

    def _finalize_fit(self) -> None:
        """After the last epoch (Keras's ``finalize_variable_values``): an optimizer with
        ``use_ema`` puts the moving averages into the weights."""
        optimizer = getattr(self.model, "optimizer", None)  # an artifact has none
        if optimizer is not None and hasattr(optimizer, "finalize_variable_values"):
            optimizer.finalize_variable_values(self.model.trainable_weights)

    def _fit_callbacks(self, callbacks, verbose: int, epochs: int, steps) -> CallbackList:
        """fit's callbacks: the user's, History and (unless silent) the progress bar; in
        a data-parallel job, the user's and the progress bar on rank 0 only."""
        callbacks, verbose = _off_root(callbacks, verbose)
        return CallbackList(
            callbacks,
            model=self.model,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=steps,
        )

    def _run_steps(self, kind: str, xs, ys, order, batch_size: int, steps: int, cbs) -> dict:
        """Steps ``0 .. steps - 1`` of an epoch (batch ``s`` is rows
        ``order[s*batch_size : (s+1)*batch_size]``) through the step's epoch loop, in
        chunks of ``chunk_size`` steps, each one native call; the batch hooks run once
        per chunk with its first and last step, as Keras's do with
        ``steps_per_execution``. Returns the logs."""
        if kind == "train":
            begin, end = cbs.on_train_batch_begin, cbs.on_train_batch_end
        else:
            begin, end = cbs.on_test_batch_begin, cbs.on_test_batch_end
        fixed = _fixed_batch(self.model)
        if fixed is not None:  # (a call a batch: the epoch loop's step is not made)
            hooks = (begin, end)
            return self._run_fixed_batches(kind, xs, ys, order, batch_size, steps, fixed, hooks)
        exe = self.steps.step(kind, xs, ys)
        sources = self._feeds(xs, ys)
        chunk = chunk_size(self.steps.steps_per_execution, cbs, kind, steps)
        job = distribution.active()
        if job is not None:  # rank 0's callbacks decide where the batch hooks run
            chunk = job.broadcast_object(chunk)
        n, logs, step = len(order), {}, 0
        while step < steps:
            count = min(chunk, steps - step)
            begin(step)
            run = run_steps(
                exe, sources, order, batch_size, step, count, cbs.show_progress, self.running
            )
            starts = (step + np.arange(len(run.values))) * batch_size
            self._accumulate(run.names, run.values, np.minimum(batch_size, n - starts))
            if run.interrupted:
                raise KeyboardInterrupt
            logs = self._logs()
            end(step + count - 1, logs)
            step += count
            if kind == "train" and step < steps:
                self._follow_root()
            if kind == "train" and self.model.stop_training:
                break
        return logs

    def _run_fixed_batches(self, kind, xs, ys, order, batch_size, steps, fixed, hooks) -> dict:
        """``_run_steps`` for a model whose Inputs fix the batch size (``Input(batch_size=8)``):
        its step has no batch axis to loop over, so each batch is one call, and every batch
        must have that many rows (Keras refuses another shape too)."""
        if batch_size != fixed or len(order) % fixed:
            raise ValueError(
                f"{self.model.name}: its Inputs fix the batch size to {fixed}, so "
                f"{'fit' if kind == 'train' else 'evaluate'} takes batches of {fixed} rows; "
                f"got batch_size={batch_size} for {len(order)} samples (use batch_size={fixed} "
                f"and a multiple of {fixed} samples)"
            )
        begin, end = hooks
        logs: dict = {}
        for step in range(steps):
            rows = order[step * fixed : (step + 1) * fixed]
            begin(step)
            self._batch_step(kind, [x[rows] for x in xs], [y[rows] for y in ys])
            logs = self._logs()
            end(step, logs)
            if kind == "train" and self.model.stop_training:
                break
        return logs

    # --- data in batches (PyDataset, generators) -------------------------------------------

    def _batch_arrays(self, batch, method: str, class_weight: Any = None):
        """Checked input and label arrays (weights after the labels) of one batch."""
        x, y, w = unpack(batch, method)
        xs, ys = self.steps.data_for(method, x, y)  # which says if labels were needed
        return xs, D.with_sample_weights(ys, w, class_weight, method)

    def _batch_step(self, kind: str, xs, ys) -> None:
        exe = self.steps.step(kind, xs, ys)
        feeds = self._feeds(xs, ys)
        exe.check_data(feeds)
        out = exe.results(feeds)
        names, values = step_columns(out)
        self._accumulate(names, values, np.array([len(xs[0])]))

    def _fit_batches(
        self,
        source: BatchSource,
        epochs: int,
        verbose: int,
        callbacks,
        validation_data,
        initial_epoch: int,
        validation_steps,
        class_weight,
    ):
        self._batch_arrays(source.peek(), "fit", class_weight)  # builds an unbuilt model
        self._start_replicas(None)
        cbs = self._fit_callbacks(callbacks, verbose, epochs, source.steps)
        self.model.stop_training = False
        cbs.on_train_begin()
        initial_epoch = self._share_start(cbs, initial_epoch)
        logs: dict = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            ran = False
            for step, batch in enumerate(source.epoch()):
                xs, ys = self._batch_arrays(batch, "fit", class_weight)
                cbs.on_train_batch_begin(step)
                self._batch_step("train", xs, ys)
                logs, ran = self._logs(), True
                cbs.on_train_batch_end(step, logs)
                self._follow_root()
                if self.model.stop_training:
                    break
            if not ran:  # the generator ran out before this epoch: Keras stops here
                break
            epoch_logs = dict(logs)
            if validation_data is not None:
                epoch_logs.update(
                    {
                        f"val_{k}": v
                        for k, v in self._validate(validation_data, validation_steps, cbs).items()
                    }
                )
            source.epoch_finished()
            self.steps.epoch_finished(epoch)
            cbs.on_epoch_end(epoch, epoch_logs)
            self._follow_root()
            if self.model.stop_training or source.exhausted:
                break
        if epochs > initial_epoch:
            self._finalize_fit()
        cbs.on_train_end(logs)
        self._follow_root(weights=True)
        return self.model.history

    def _validate(self, validation_data, validation_steps, cbs) -> dict:
        if is_batch_source(validation_data):
            return self._evaluate_batches(
                BatchSource(validation_data, validation_steps, False, "validation_data"), cbs
            )
        vx, vy, vw = D.unpack_validation(validation_data)
        vxs, vys = self.steps.labelled(vx, vy)
        vys = D.with_sample_weights(vys, vw, None, "validation_data")
        return self._evaluate_arrays(vxs, vys, self.default_batch_size, validation_steps, cbs)

    def _evaluate_batches(self, source: BatchSource, cbs) -> dict:
        self.reset_metrics()
        cbs.on_test_begin()
        logs: dict = {}
        for step, batch in enumerate(source.epoch()):
            xs, ys = self._batch_arrays(batch, "evaluate")
            cbs.on_test_batch_begin(step)
            self._batch_step("eval", xs, ys)
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def _check_indices(self, kind: str, xs, ys) -> None:
        """Class ids and looked-up ids within their bounds, before any step runs."""
        self.steps.step(kind, xs, ys).check_data(self._feeds(xs, ys))

    def _feeds(self, xs, ys) -> dict[str, np.ndarray]:
        """The step's data inputs by name (per-sample weights after the labels)."""
        steps = self.steps
        feeds = {**dict(zip(steps.input_names, xs)), **dict(zip(steps.label_names, ys))}
        if len(ys) > len(steps.label_names):
            feeds[D.SAMPLE_WEIGHT] = ys[len(steps.label_names)]
        return feeds

    # --- evaluate --------------------------------------------------------------------------

    def _evaluate_arrays(self, xs, ys, batch_size: int, steps: int | None, cbs) -> dict:
        self.reset_metrics()
        n = len(xs[0])
        total = math.ceil(n / batch_size)
        if steps is not None:
            total = min(total, int(steps))
        cbs.on_test_begin()
        logs = self._run_steps("eval", xs, ys, np.arange(n), batch_size, total, cbs)
        cbs.on_test_end(logs)
        return logs


def _fixed_batch(model) -> int | None:
    """The batch size a functional model's Inputs fix (``Input(shape, batch_size=8)``);
    None when any leaves it open (or the model has no Inputs: a subclassed one's steps
    are traced at the batch sizes they meet)."""
    inputs = getattr(model, "inputs", None) or []
    sizes = {t.shape[0] if t.shape else None for t in inputs}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def _off_root(callbacks, verbose):
    """A data-parallel job's ranks other than 0 run no user callbacks and stay silent."""
    job = distribution.active()
    if job is not None and job.rank != 0:
        return None, 0
    return callbacks, verbose


def _refuse_with_batches(method: str, y: Any, sample_weight: Any, batch_size: Any) -> None:
    """Keras's rule: batches carry their labels and weights, and have their own size."""
    given = [
        n
        for n, v in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size))
        if v is not None
    ]
    if given:
        raise ValueError(
            f"{method}: with a PyDataset or a generator, the batches carry the labels, "
            f"weights and size; do not pass {', '.join(given)}"
        )


def _refuse_empty(method: str, xs: list[np.ndarray]) -> None:
    if len(xs[0]) == 0:
        raise ValueError(f"{method}: the data has no samples (inputs of shape {xs[0].shape})")
