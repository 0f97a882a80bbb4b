"""Loading an artifact and training or predicting with it: numpy and ctypes only.

Loading an artifact runs the native code inside it, with this process's rights:
load only artifacts you trust, as with pickle.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from typing import Any

import numpy as np

from kcompile.artifact.container import (
    ArtifactError,
    npz_arrays,
    npz_bytes,
    read_artifact,
    write_artifact,
)
from kcompile.artifact.cpu import machine_arch, missing_flags
from kcompile.artifact.info import describe
from kcompile.artifact.native import STEPS, load_code
from kcompile.backend.variables import stable_array
from kcompile.distribution import active as active_job
from kcompile.distribution import root_writes
from kcompile.distribution.step import DataParallelStep
from kcompile.ir import Interpreter, parse_graph
from kcompile.ir.interpreter import FeedError
from kcompile.runtime.program import NativeProgram
from kcompile.trainers import data as D
from kcompile.trainers.logs import RunningLogs
from kcompile.trainers.training_loop import TrainingLoop, delegate_to_loop
from kcompile.utils.traceback_utils import filter_traceback


class SelfCheckError(RuntimeError):
    """The loaded code does not reproduce the artifact's probe outputs."""


@filter_traceback
def load(path: str) -> LoadedModel:
    """The artifact at ``path``, checked (checksums, format version, CPU features) and
    loaded. Loading runs the native code inside it: load only artifacts you trust."""
    path = os.fspath(path)
    manifest, members = read_artifact(path)
    _check_schema(path, manifest)
    _check_steps(path, manifest)
    _check_machine(path, manifest)
    graphs = {
        kind: parse_graph(members[manifest["steps"][kind]["graph"]].decode())
        for kind in manifest["steps"]
    }
    code = load_code(path, manifest, members)
    return LoadedModel(path, manifest, members, graphs, code)


_STEP = {"graph": str, "code": str}
DATA_PARALLEL_STEPS = ("grad", "apply")  # the train step in two (kcompile.distribution)
# What loading reads of the manifest, and the type of each: a key missing or mistyped is
# an ArtifactError naming it, never a KeyError or TypeError from inside.
_SCHEMA = {
    "target": {"arch": str, "triple": str, "cpu": str, "requires": list},
    "library": {"kind": str, "runtime": str},
    "model": {"inputs": list, "outputs": list, "labels": list, "weights": list},
    "steps": {"train": _STEP, "eval": _STEP, "predict": _STEP},
    "state": list,
    "optimizer": {"class": str, "config": dict},
    "metrics": dict,
    "training": {"seed": int, "epochs_done": int, "batch_size": int},
    "probe": {"inputs": int},
}


def _check_steps(path: str, manifest: dict) -> None:
    """Every step the manifest lists (train, eval, predict, and grad and apply in newer
    artifacts) has a graph and code that are members."""
    for kind, entry in manifest["steps"].items():
        if kind not in (*STEPS, *DATA_PARALLEL_STEPS):
            raise ArtifactError(f"{path}: member 'manifest.json' lists an unknown step {kind!r}")
        _check_schema(path, entry, _STEP, f"steps.{kind}.")


def _check_schema(path: str, manifest: dict, schema=None, where: str = "") -> None:
    for key, expected in (schema or _SCHEMA).items():
        name = f"{where}{key}"
        if key not in manifest:
            raise ArtifactError(f"{path}: member 'manifest.json' lacks {name!r}")
        value = manifest[key]
        kind = dict if isinstance(expected, dict) else expected
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ArtifactError(
                f"{path}: member 'manifest.json': {name!r} should be a {kind.__name__}, "
                f"got {value!r:.60}"
            )
        if isinstance(expected, dict):
            _check_schema(path, value, expected, f"{name}.")


def _check_machine(path: str, manifest: dict) -> None:
    target = manifest["target"]
    if target["arch"] != machine_arch():
        raise ArtifactError(
            f"{path}: built for {target['arch']} ({target['triple']}), this machine is "
            f"{machine_arch()}"
        )
    missing = missing_flags(target["requires"])
    if missing:
        raise ArtifactError(
            f"{path}: the code needs CPU features this machine lacks: {', '.join(missing)} "
            f"(built for {target['cpu']}); rebuild it here, or build it with "
            "--cpu x86-64-v3 (or -v2) for any CPU of that level"
        )


class ArtifactSteps:
    """A loaded artifact's programs, the ``StepProvider`` of its training loop: the
    train, eval and predict steps bound to the artifact's state, its data signature and
    its metrics' running logs."""

    steps_per_execution = 1  # Keras's compile setting: steps per native call

    def __init__(self, path: str, manifest: dict, graphs: dict, code: dict, state: dict):
        self.path = path
        self.manifest = manifest
        self.state = state  # weights and optimizer state by name, updated in place
        model = manifest["model"]
        self.input_names: list[str] = model["inputs"]
        self.output_names: list[str] = model["outputs"]
        self.label_names: list[str] = model["labels"]
        self.running = _running_logs(manifest["metrics"])
        self.metrics_names = ["loss", *manifest["metrics"]]
        self.epochs_done = int(manifest["training"]["epochs_done"])
        # Held by every program while it runs: predict from any thread never reads
        # weights while a training step writes them.
        self.lock = threading.RLock()
        self.programs: dict[str, NativeProgram] = {}
        for kind in graphs:
            entry, epoch, keep = code[kind]
            program = NativeProgram(graphs[kind], entry, epoch, keep)
            program.lock = self.lock
            self._bind_state(program)
            self.programs[kind] = program
        self._signature = {v.name: v for v in graphs["train"].inputs if v.role == "data"}
        for v in graphs["predict"].inputs:
            self._signature.setdefault(v.name, v)
        self._parallel_steps: dict[str, DataParallelStep] = {}

    def data_for(self, method: str, x, y):
        return self.labelled(x, y)

    def labelled(self, x, y) -> tuple[list[np.ndarray], list[np.ndarray]]:
        xs = self._arrays(x, self.input_names, "input")
        ys = self._arrays(y, self.label_names, "labels")
        if len(xs[0]) != len(ys[0]):
            raise FeedError(f"inputs have {len(xs[0])} samples, labels {len(ys[0])}")
        return xs, ys

    def inputs_for(self, x: Any) -> list[np.ndarray]:
        return self._arrays(x, self.input_names, "input")

    def step(self, kind: str, xs, ys):
        if len(ys) > len(self.label_names):
            raise NotImplementedError(
                "an artifact's steps were built without sample weights; sample_weight and "
                "class_weight need the model (kcompile.models), not the artifact"
            )
        job = active_job()
        if job is None:
            return self.programs[kind]
        return self._data_parallel(kind, job)

    def predict_batch(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        out = self.programs["predict"].results(dict(zip(self.input_names, xs)))
        return [out[f"out/{name}"] for name in self.output_names]

    def pack_outputs(self, arrays: list) -> Any:
        return arrays[0] if len(arrays) == 1 else arrays

    def epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """A permutation drawn from the artifact's seed and ``epoch`` alone, so training
        resumed from a checkpoint at ``initial_epoch`` repeats, bit for bit, what
        uninterrupted training does."""
        seed = self.manifest["training"]["seed"]
        return np.random.default_rng([seed, epoch]).permutation(n)

    def epoch_finished(self, epoch: int) -> None:
        self.epochs_done = epoch + 1

    def replica_arrays(self) -> list[np.ndarray]:
        return [self.state[entry["name"]] for entry in self.manifest["state"]]

    def _data_parallel(self, kind: str, job) -> DataParallelStep:
        """The ``train`` or ``eval`` step across the ranks of a data-parallel job."""
        made = self._parallel_steps.get(kind)
        if made is not None:
            return made
        programs = self.programs
        if kind == "train" and "grad" not in programs:
            raise ArtifactError(
                f"{self.path}: built before data-parallel training (it has no grad and apply "
                "steps); rebuild it with this kcompile to train it under mpiexec"
            )
        if kind == "train":
            made = DataParallelStep(programs["grad"], job, programs["apply"])
        else:
            made = DataParallelStep(programs[kind], job)
        made.lock = self.lock
        self._bind_state(made)
        self._parallel_steps[kind] = made
        return made

    def _bind_state(self, step) -> None:
        """Bind ``step``'s weights and optimizer state (a gradient buffer is not state:
        a data-parallel step binds its own)."""
        for v in step.graph.inputs:
            if v.role != "data" and v.name in self.state:
                step.bind(v.name, self.state[v.name])

    def _arrays(self, data: Any, names: list[str], what: str) -> list[np.ndarray]:
        """Arrays for the data inputs ``names``, converted as Keras converts them (floats
        to float32, integer class ids to int32) and checked against the signature."""
        out = []
        for name, array in zip(names, D.as_array_list(data, names, what)):
            v = self._signature[name]
            D.check_numeric(array, f"{what} {name!r}")
            want = v.dtype.numpy
            fractional = array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0)
            if np.dtype(want).kind in "iu" and fractional:
                raise FeedError(
                    f"{what} {name!r}: expected integer class ids ({v.type}), got "
                    f"fractional {array.dtype} values"
                )
            expected = v.type.concrete_shape(1)[1:]
            if array.ndim != len(v.shape) or array.shape[1:] != expected:
                raise FeedError(
                    f"{what} {name!r}: expected arrays of shape {(None, *expected)} "
                    f"({v.type}), got shape {array.shape}"
                )
            out.append(np.ascontiguousarray(array, dtype=want))
        if len({len(a) for a in out}) > 1:
            raise FeedError(f"{what}: arrays of different lengths {[len(a) for a in out]}")
        return out


class LoadedModel:
    """A loaded artifact, used as a Keras model is: ``fit``, ``evaluate``, ``predict``
    (and the on-batch methods), ``get_weights``/``set_weights``, ``save`` (a checkpoint:
    a new artifact with the current weights and optimizer state), and ``selfcheck``.

    Its programs are an ``ArtifactSteps``, run by the ``TrainingLoop`` it holds, as a
    compiled model's are."""

    def __init__(self, path: str, manifest: dict, members: dict, graphs: dict, code: dict):
        self.path = path
        self.manifest = manifest
        self._members = members
        self.graphs = graphs
        model = manifest["model"]
        self.name = model["name"]
        self.input_names: list[str] = model["inputs"]
        self.output_names: list[str] = model["outputs"]
        self.label_names: list[str] = model["labels"]
        self._state = self._read_state(members["state.npz"])
        self._steps = ArtifactSteps(path, manifest, graphs, code, self._state)
        self._loop = TrainingLoop(self, self._steps, manifest["training"]["batch_size"])
        self.stop_training = False  # Keras's: a callback sets it to end fit
        self.history = None  # Keras's: the History of the last fit
        self._loaded_weights = self._state_digest()

    fit = delegate_to_loop(TrainingLoop.fit)
    evaluate = delegate_to_loop(TrainingLoop.evaluate)
    predict = delegate_to_loop(TrainingLoop.predict)
    train_on_batch = delegate_to_loop(TrainingLoop.train_on_batch)
    test_on_batch = delegate_to_loop(TrainingLoop.test_on_batch)
    predict_on_batch = delegate_to_loop(TrainingLoop.predict_on_batch)
    reset_metrics = delegate_to_loop(TrainingLoop.reset_metrics)

    @property
    def metrics_names(self) -> list[str]:
        return self._steps.metrics_names

    @property
    def default_batch_size(self) -> int:
        """The batch size the artifact was built with: fit's and evaluate's default."""
        return self._loop.default_batch_size

    @property
    def epochs_done(self) -> int:
        """Epochs trained, from the artifact's and this process's fits."""
        return self._steps.epochs_done

    @epochs_done.setter
    def epochs_done(self, value: int) -> None:
        self._steps.epochs_done = int(value)

    def _read_state(self, data: bytes) -> dict[str, np.ndarray]:
        entries = self.manifest["state"]
        arrays = npz_arrays(data)
        if len(arrays) != len(entries):
            raise ArtifactError(
                f"{self.path}: the manifest lists {len(entries)} state arrays, "
                f"state.npz holds {len(arrays)}"
            )
        state = {}
        for entry, array in zip(entries, arrays):
            if list(array.shape) != entry["shape"] or str(array.dtype) != entry["dtype"]:
                raise ArtifactError(f"{self.path}: state {entry['name']!r} has the wrong shape")
            state[entry["name"]] = stable_array(array, array.dtype)
        return state

    # --- weights ------------------------------------------------------------------

    @property
    def weight_names(self) -> list[str]:
        return list(self.manifest["model"]["weights"])

    def get_weights(self) -> list[np.ndarray]:
        return [self._state[n].copy() for n in self.weight_names]

    def set_weights(self, weights: list) -> None:
        names = self.weight_names
        if len(weights) != len(names):
            raise ValueError(
                f"set_weights: model '{self.name}' has {len(names)} weights, got {len(weights)}"
            )
        arrays = [np.asarray(w) for w in weights]
        for name, array in zip(names, arrays):
            if array.shape != self._state[name].shape:
                raise ValueError(
                    f"set_weights: weight {name!r} has shape {self._state[name].shape}, "
                    f"got {array.shape}"
                )
        for name, array in zip(names, arrays):
            np.copyto(self._state[name], array, casting="same_kind")

    def _state_digest(self) -> str:
        digest = hashlib.sha256()
        for name in self.weight_names:
            digest.update(self._state[name].tobytes())
        return digest.hexdigest()

    # --- checkpoints and checks ------------------------------------------------------

    @root_writes
    def save(self, path: str) -> None:
        """A checkpoint: this artifact with the current weights, optimizer state, epoch
        count and the probe's outputs for these weights, written atomically (temporary
        file, fsync, rename)."""
        path = os.fspath(path)
        members = {k: v for k, v in self._members.items()}
        arrays = [self._state[e["name"]] for e in self.manifest["state"]]
        members["state.npz"] = npz_bytes(arrays)
        probe = self._probe()
        outputs = self._steps.programs["predict"](dict(zip(self.input_names, probe["inputs"])))
        members["probe.npz"] = npz_bytes(
            [*probe["inputs"], *(np.array(outputs[f"out/{n}"]) for n in self.output_names)]
        )
        manifest = {k: v for k, v in self.manifest.items() if k != "checksums"}
        manifest["training"] = {**manifest["training"], "epochs_done": self.epochs_done}
        write_artifact(path, manifest, members)

    def _probe(self) -> dict:
        count = self.manifest["probe"]["inputs"]
        arrays = npz_arrays(self._members["probe.npz"])
        return {"inputs": arrays[:count], "outputs": arrays[count:]}

    def selfcheck(self, rtol: float = 1e-5, atol: float = 1e-6) -> dict[str, float]:
        """Run the probe batch: against the outputs stored with these weights (when they
        are still the loaded ones), and against the numpy reference interpreter on the
        same graph and the current weights. Raises ``SelfCheckError`` on a mismatch;
        returns the largest differences."""
        probe = self._probe()
        feeds = dict(zip(self.input_names, probe["inputs"]))
        out = self._steps.programs["predict"](feeds)
        got = [np.array(out[f"out/{n}"]) for n in self.output_names]
        report = {}
        if self._state_digest() == self._loaded_weights:
            report["probe"] = _compare(
                got, probe["outputs"], rtol, atol, "the stored probe outputs"
            )
        graph = self.graphs["predict"]
        bound = {v.name: self._state[v.name] for v in graph.inputs if v.role != "data"}
        reference = Interpreter(graph).run({**bound, **feeds})
        expected = [reference[f"out/{n}"] for n in self.output_names]
        report["reference"] = _compare(got, expected, 1e-4, 1e-5, "the reference interpreter")
        return report

    def summary(self) -> str:
        return describe(self.manifest)


def _compare(got: list, expected: list, rtol: float, atol: float, what: str) -> float:
    worst = 0.0
    for a, b in zip(got, expected):
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else math.inf
            raise SelfCheckError(
                f"selfcheck: the compiled predict step differs from {what} "
                f"(largest difference {diff:.3g}, tolerance rtol={rtol}, atol={atol})"
            )
        worst = max(worst, float(np.max(np.abs(a - b))) if a.size else 0.0)
    return worst


def _running_logs(entries: dict) -> RunningLogs:
    """The running logs of the manifest's metrics: ratios, and built-in metrics (AUC,
    F1) rebuilt from their config to compute their result."""
    from kcompile.metrics.registry import VECTOR_METRICS

    logs = RunningLogs()
    for key, entry in entries.items():
        if isinstance(entry, dict):
            metric = VECTOR_METRICS[entry["class"]](**entry["config"])
            logs.results[key] = metric.result_from
        else:
            numerator, below = entry
            logs.ratios[key] = (numerator, tuple(below))
    return logs
