"""Data-parallel training over MPI (kcompile.distribution): the API, the sharing of a
batch, and real ``mpiexec -n 2`` jobs checked against one process on the global batch."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile.distribution import mpi
from kcompile.distribution.step import share

PROGRAM = Path(__file__).with_name("distributed_program.py")


def test_a_batch_is_shared_in_contiguous_near_equal_parts():
    for rows in range(0, 30):
        for size in (1, 2, 3, 4):
            parts = [share(rows, rank, size) for rank in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == rows
            assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
            counts = [end - begin for begin, end in parts]
            assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)


def test_one_process_is_a_job_of_one_and_changes_nothing():
    dp = keras.distribution.DataParallel()
    assert dp.num_processes == 1 and dp.process_id == 0
    assert keras.distribution.list_devices() == ["cpu:0"]
    with dp.scope():
        assert keras.distribution.distribution() is dp
        assert keras.distribution.active() is None  # one process: nothing to share
    assert keras.distribution.distribution() is None


def test_what_kcompile_cannot_distribute_is_refused_by_name():
    with pytest.raises(NotImplementedError, match="ModelParallel"):
        keras.distribution.ModelParallel()
    with pytest.raises(NotImplementedError, match="device_mesh"):
        keras.distribution.DataParallel(device_mesh=object())
    with pytest.raises(ValueError, match="num_processes=3"):
        keras.distribution.initialize(num_processes=3)
    with pytest.raises(TypeError, match="DataParallel or None"):
        keras.distribution.set_distribution("data")


def test_started_by_mpiexec_without_a_distribution_warns(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    monkeypatch.setattr(mpi, "_warned", False)
    with pytest.warns(RuntimeWarning, match="rank 1 of 2 .* no distribution is set"):
        mpi.warn_if_alone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mpi.warn_if_alone()  # once per process


def _mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return shutil.which("mpiexec") is not None


needs_mpi = pytest.mark.skipif(not _mpi_available(), reason="needs mpi4py and mpiexec")


def _run(mode: str, out: Path, ranks: int | None, **env) -> subprocess.CompletedProcess:
    command = [sys.executable, str(PROGRAM), mode, str(out)]
    if ranks is not None:
        command = ["mpiexec", "-n", str(ranks), *command, "--dp"]
    environment = dict(os.environ, KCOMPILE_NUM_THREADS="1", **env)
    environment.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)


def _records(out: Path, ranks: int) -> list[dict]:
    return [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(ranks)]


def _close(a, b) -> None:
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=2e-4, atol=2e-5)


@needs_mpi
@pytest.mark.parametrize("mode", ["plain", "batchnorm", "short", "loss_scale"])
def test_two_ranks_train_as_one_process_on_the_global_batch(tmp_path, mode):
    """Two ranks with half of each global batch of 24 (a short last batch of 4: two rows
    each): identical weights on both, bit for bit; the weights (BatchNormalization's
    moving statistics included), the history's losses and metrics and evaluate's results
    those of one process on the whole batches; ``short``: a last batch of one row, which
    leaves rank 1 none (it still takes its part in BatchNormalization's sums)."""
    done = _run(mode, tmp_path / "dp", 2)
    assert done.returncode == 0, done.stderr[-3000:]
    one = _run(mode, tmp_path / "one", None)
    assert one.returncode == 0, one.stderr[-3000:]
    first, second = _records(tmp_path / "dp", 2)
    (alone,) = _records(tmp_path / "one", 1)
    assert first["digest"] == second["digest"]
    assert first["history"] == second["history"]
    # BatchNormalization's statistics are the global batch's (synchronized), so it too
    # trains as one process does.
    _close(first["weights"], alone["weights"])
    for key, values in alone["history"].items():
        _close(first["history"][key], values)
    _close(first["evaluate"], alone["evaluate"])
    if mode == "loss_scale":  # 5 steps an epoch, 3 epochs: doubled 5 times from 2^10
        assert first["dynamic_scale"] == second["dynamic_scale"] == alone["dynamic_scale"]
        assert alone["dynamic_scale"] == 2.0**15
    assert first["calls"] == 3 and second["calls"] == 0  # callbacks on rank 0 only


@needs_mpi
def test_a_checkpoint_from_two_ranks_resumes_in_one_process_and_in_two(tmp_path):
    checkpoint = tmp_path / "model.keras"
    done = _run("checkpoint", tmp_path / "first", 2, CHECKPOINT=str(checkpoint))
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkpoint.exists()
    assert not list(tmp_path.glob("*.tmp*")), "a temporary file was left behind"
    two = _run("resume", tmp_path / "two", 2, CHECKPOINT=str(checkpoint))
    assert two.returncode == 0, two.stderr[-3000:]
    one = _run("resume", tmp_path / "one", None, CHECKPOINT=str(checkpoint))
    assert one.returncode == 0, one.stderr[-3000:]
    resumed_two, resumed_one = _records(tmp_path / "two", 2)[0], _records(tmp_path / "one", 1)[0]
    _close(resumed_two["weights"], resumed_one["weights"])
    first = _records(tmp_path / "first", 2)[0]
    assert resumed_one["history"]["loss"][0] < first["history"]["loss"][0]  # it went on


@needs_mpi
def test_rank_0s_early_stopping_stops_every_rank(tmp_path):
    done = _run("stop", tmp_path / "dp", 2)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = _records(tmp_path / "dp", 2)
    assert len(first["history"]["loss"]) == len(second["history"]["loss"]) < 3
    assert first["digest"] == second["digest"]


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    done = _run("fail", tmp_path / "dp", 2)
    assert done.returncode != 0
    assert "rank 1 of 2 failed" in done.stderr and "this rank's data is bad" in done.stderr


@needs_mpi
def test_a_killed_rank_ends_the_job(tmp_path):
    done = _run("killed", tmp_path / "dp", 2)  # a hang would time out instead
    assert done.returncode != 0


@needs_mpi
def test_mpiexec_without_a_distribution_warns_each_rank(tmp_path):
    command = [sys.executable, str(PROGRAM), "plain", str(tmp_path / "alone")]
    done = subprocess.run(
        ["mpiexec", "-n", "2", *command],
        env=dict(os.environ, KCOMPILE_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("no distribution is set") == 2


@needs_mpi
def test_kcompile_run_trains_an_artifact_data_parallel_and_resumes_with_any_ranks(tmp_path):
    """``mpiexec -n 2 kcompile run``: two epochs in two ranks, then a third resumed from
    its checkpoint in one process, equal (within float tolerance) to three epochs in one
    process; the two ranks' checkpoint is written once, by rank 0."""
    sys.path.insert(0, str(PROGRAM.parent))
    import distributed_program as program

    model = program.model_for("plain")
    x, y = program.data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    artifact = tmp_path / "model.kc"
    model.export(str(artifact), probe=x, seed=3)
    environment = dict(os.environ, KCOMPILE_NUM_THREADS="1")
    kc = [sys.executable, "-m", "kcompile.tools.cli", "run"]

    def run(ranks, path, epochs):
        command = [*kc, str(path), "--data", str(tmp_path), "--epochs", str(epochs)]
        command += ["--verbose", "0", "--batch-size", str(program.GLOBAL_BATCH)]
        if ranks:
            command = ["mpiexec", "-n", str(ranks), *command]
        done = subprocess.run(command, env=environment, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    alone = tmp_path / "alone.kc"
    shutil.copy(artifact, alone)
    run(None, alone, 3)
    out = run(2, artifact, 2)
    assert out.count("checkpoint:") == 1  # rank 0 speaks
    run(None, artifact, 3)  # resumed in one process
    resumed, straight = keras.load(str(artifact)), keras.load(str(alone))
    assert resumed.epochs_done == straight.epochs_done == 3
    _close(resumed.get_weights(), straight.get_weights())


def test_predict_on_batch_keeps_its_short_path(monkeypatch):
    """Steps are kept by a key that says whether they run across ranks; the batch-1
    predict path must look them up by the same key (one copy in, one call, one out)."""
    from kcompile.runtime.program import NativeProgram

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    x = np.ones((1, 4), np.float32)
    model.predict_on_batch(x)
    calls = []
    original = NativeProgram.call_single
    monkeypatch.setattr(
        NativeProgram, "call_single", lambda self, a: calls.append(1) or original(self, a)
    )
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict(x, verbose=0))
    assert calls, "predict_on_batch did not take the short path"


def test_compiled_replica_sums_go_through_the_job_hook():
    """In-process, a job whose sum doubles (two replicas holding the same values): the
    forward's replica_sum and its gradient, in compiled code, call the hook in graph
    order; without it, the identity."""
    from kcompile.distribution import hooks
    from kcompile.ir import BATCH, DType, Graph, TensorType
    from kcompile.ir import build as B
    from kcompile.ir.grad import append_gradients
    from kcompile.tools.fuzz.oracle import run_compiled

    class Doubling(mpi.Solo):
        def __init__(self) -> None:
            self.calls = []

        def allreduce_sum(self, array):
            self.calls.append(array.size)
            array *= 2

    g = Graph("replicas")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 3)), "data")
    w = g.add_input("w", TensorType(DType.f32, (3,)), "param")
    total = B.replica_sum(B.reduce_sum(x * w, (0,)))
    g.set_outputs([("y", B.reduce_sum(B.square(total), (0,)))])
    (grad,) = append_gradients(g, g.outputs[0][1], [w])
    g.set_outputs([*g.outputs, ("dw", grad)])
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "w": np.ones(3, np.float32)}
    alone = run_compiled(g, feeds)
    job = Doubling()
    hooks.install(job)
    try:
        together = run_compiled(g, feeds)
    finally:
        hooks.uninstall()
    assert job.calls == [3, 3]  # the forward sum, then its gradient's
    np.testing.assert_allclose(together["y"], 4 * alone["y"], rtol=1e-6)
    np.testing.assert_allclose(together["dw"], 4 * alone["dw"], rtol=1e-6)
    np.testing.assert_allclose(run_compiled(g, feeds)["y"], alone["y"], rtol=1e-6)
