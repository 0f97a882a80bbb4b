"""benchmarks/run.py's model table: per-round ratios, their median, and issue 27's targets,
on made-up samples (nothing is timed here)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _results(run, ours: list[float], torch: list[float], jax: list[float] | None) -> dict:
    """Every measure of MODEL_ROWS with one block per round: kcompile's blocks have the
    medians ``ours``, PyTorch's ``torch``, JAX's ``jax`` (None: not installed)."""
    keys = {k for row in run.MODEL_ROWS for k in (row.ours, row.their_key)}

    def blocks(medians):  # three samples a block, the middle one the median
        return [[m * 0.5, m, m * 3] for m in medians]

    out = {"kcompile": {k: blocks(ours) for k in keys}}
    out["PyTorch eager"] = {k: blocks(torch) for k in keys if k != "mlp epoch (jit per step)"}
    out["JAX"] = None if jax is None else {k: blocks(jax) for k in keys}
    return out


def _row(lines: list[str], label: str) -> list[str]:
    row = next(line for line in lines if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_the_ratio_is_the_median_of_the_rounds_ratios_not_the_ratio_of_medians():
    run = _run()
    # Rounds' ratios 0.5, 0.4, 1.0: their median is 0.5. The medians over all samples
    # (4 and 5) would give 0.8.
    ours, torch = [1.0, 4.0, 10.0], [2.0, 10.0, 10.0]
    assert run.round_ratios([[a] for a in ours], [[b] for b in torch]) == [0.5, 0.4, 1.0]
    lines = run.model_table(_results(run, ours, torch, None))
    cells = _row(lines, "LSTM train step (64), ms")
    assert cells[3] == "0.50× (0.40–1.00)"
    assert cells[4:] == ["≤ 0.6× PyTorch eager", "yes"]
    assert "JAX" not in lines[0]
    # a target against a peer that did not run is neither met nor missed
    assert _row(lines, "CNN predict, batch 256, ms")[-1] == "–"


def test_every_target_of_the_issue_is_checked_against_its_peer():
    run = _run()
    results = _results(run, [1.0, 1.0], [1.6, 1.6], [0.9, 0.9])
    checks = {
        (label, peer): (bound, ratio) for label, peer, bound, ratio in run.target_checks(results)
    }
    assert len(checks) == 9
    assert checks[("MLP epoch (1875 steps of 32), s", "JAX")][0] == 0.5
    bound, ratio = checks[("Encoder block train step (32), ms", "PyTorch eager")]
    assert (bound, round(ratio, 3)) == (0.7, 0.625)
    assert checks[("Encoder block train step (32), ms", "JAX")][0] == 1.0
    assert checks[("Small ResNet train step (128), ms", "PyTorch eager")][0] == 0.7
    assert checks[("Conv1D time series train step (32), ms", "PyTorch eager")][0] == 0.7
    lines = run.model_table(results)
    # 0.625 is within 0.7 of PyTorch; 1.11 is over 1 of JAX
    assert _row(lines, "Encoder block train step (32), ms")[-2:] == [
        "≤ 0.7× PyTorch eager, ≤ 1× JAX",
        "yes, NO",
    ]
    assert _row(lines, "GRU train step (64), ms")[-1] == "NO"  # 0.625 > 0.6


def test_the_runs_agree_only_where_a_target_held_in_every_run():
    run = _run()
    # 0.5x PyTorch, 0.67x JAX: all held but the MLP epoch's (0.5x JAX)
    first = _results(run, [1.0], [2.0], [1.5])
    second = _results(run, [1.0], [1.5], [1.5])  # 0.67x PyTorch: LSTM's and GRU's missed
    lines = run.agreement([first, second])
    assert _row(lines, "LSTM train step (64), ms") == [
        "LSTM train step (64), ms", "≤ 0.6× PyTorch eager", "0.50×", "0.67×", "NO"
    ]  # fmt: skip
    assert _row(lines, "Small ResNet train step (128), ms")[-1] == "yes"
    assert _row(lines, "MLP epoch (1875 steps of 32), s")[-1] == "NO"
    assert lines[-1] == "6 of 9 targets held in all 2 runs."


def test_a_block_holds_one_to_five_times_repeats_samples():
    run = _run()
    assert run.block_count(2.0, 3) == 1
    assert run.block_count(1e-6, 3) == 15
    assert run.block_count(0.01, 3) == 11  # about 0.035 s x 3 of samples


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads /proc")
def test_the_driver_waits_for_a_busy_worker_and_not_for_an_idle_one():
    """What keeps an idle worker's spinning threads off the cores while another is timed:
    a thread that spins is in state R, and wait_idle returns only once none is."""
    run = _run()
    started = "print('started', flush=True)\n"
    busy = subprocess.Popen([sys.executable, "-c", started + "while True: pass"], stdout=PIPE)
    idle = subprocess.Popen(
        [sys.executable, "-c", started + "import sys; sys.stdin.read()"], stdin=PIPE, stdout=PIPE
    )
    try:
        assert busy.stdout.readline() == idle.stdout.readline() == b"started\n"
        assert "R" in [state for state, _ in run._threads(busy.pid)]
        run.wait_idle([idle.pid])
        assert "R" not in [state for state, _ in run._threads(idle.pid)]
    finally:
        busy.kill()
        idle.stdin.close()
        busy.wait()
        idle.wait()


def test_a_target_whose_peer_did_not_run_is_not_counted_as_held():
    run = _run()
    lines = run.agreement([_results(run, [1.0], [2.0], None)] * 2)
    assert _row(lines, "CNN predict, batch 256, ms")[-1] == "–"
    assert lines[-1] == "5 of 9 targets held in all 2 runs (4 not measured)."
