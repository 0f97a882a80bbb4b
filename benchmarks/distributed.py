"""Data-parallel training on this machine, and a cost model for a cluster.

    python benchmarks/distributed.py [--steps-cnn 300]

For the example MLP and CNN on Fashion-MNIST: one process with two threads against two
MPI ranks with one thread each (``mpiexec -n 2``), the same global batch; seconds per
epoch (the CNN's first ``--steps-cnn`` steps, scaled to an epoch) and, for the ranks,
where a step's time goes (the rank's gradient step, the allreduce, the optimizer
update). Then the ring-allreduce cost model for 2-64 machines on 10 and 100 Gbit/s,
with each model's gradient size and its measured one-thread compute per sample.
Writes ``benchmarks/DISTRIBUTED.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = {"mlp": 32, "cnn": 64}
# Latency per message and link bandwidth: TCP over 10 GbE, and RDMA over 100 Gbit/s.
NETWORKS = {"10 Gbit/s (TCP, 25 µs)": (1.25e9, 25e-6), "100 Gbit/s (RDMA, 3 µs)": (12.5e9, 3e-6)}


def build(model: str):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    if model == "mlp":
        from mnist_mlp import build_model
    else:
        from fashion_cnn import build_model
    return build_model()


def worker(model: str, distributed: bool, steps: int | None) -> dict:
    import numpy as np

    import kcompile as keras

    if distributed:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    keras.utils.set_random_seed(1)
    net = build(model)
    (x, y), _ = keras.datasets.fashion_mnist.load_data()
    x = (x / 255.0).astype(np.float32)
    if model == "cnn":
        x = x[..., None]
    batch = BATCH[model]
    net.fit(x[: batch * 4], y[: batch * 4], batch_size=batch, verbose=0)  # compile
    exe = next(e for k, e in net.compiled_steps.executables.items() if k[0] == "train")
    seconds = getattr(exe, "seconds", None)
    if seconds:
        for part in seconds:
            seconds[part] = 0.0
    start = time.perf_counter()
    history = net.fit(x, y, batch_size=batch, epochs=1, verbose=0, steps_per_epoch=steps)
    elapsed = time.perf_counter() - start
    ran = steps or -(-len(x) // batch)
    job = keras.distribution.active()
    return {
        "rank": job.rank if job else 0,
        "epoch_seconds": elapsed * (-(-len(x) // batch)) / ran,
        "step_ms": 1e3 * elapsed / ran,
        "parts_ms": {k: 1e3 * v / ran for k, v in (seconds or {}).items()},
        "gradient_bytes": sum(w.value.nbytes for w in net.trainable_weights),
        "loss": history.history["loss"][-1],
    }


def run(model: str, distributed: bool, steps: int | None) -> dict:
    command = [sys.executable, __file__, "--worker", model, "--steps", str(steps or 0)]
    environment = dict(os.environ)
    if distributed:
        command = ["mpiexec", "-n", "2", *command, "--distributed"]
        environment["KCOMPILE_NUM_THREADS"] = "1"
    else:
        environment["KCOMPILE_NUM_THREADS"] = "2"
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{model} ({'2 ranks' if distributed else '1 process'}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_thread_step_ms(model: str) -> dict:
    """The one-thread step at the model's batch, for the cost model's compute term."""
    command = [sys.executable, __file__, "--worker", model, "--steps", "100"]
    environment = dict(os.environ, KCOMPILE_NUM_THREADS="1")
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def ring_allreduce(nbytes: float, ranks: int, bandwidth: float, latency: float) -> float:
    """Seconds of a ring allreduce: 2(P-1) messages of nbytes/P each (reduce-scatter,
    then allgather), every link busy at once."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes / bandwidth


def cost_table(name: str, nbytes: int, per_sample: float, batch: int) -> list[str]:
    lines = [
        f"**{name}**: {nbytes / 1e6:.2f} MB of gradients, {per_sample * 1e6:.1f} µs of "
        f"one-thread compute per sample (per-rank batch {batch}: "
        f"{per_sample * batch * 1e3:.2f} ms)",
        "",
        "| machines | network | allreduce, ms | efficiency | speedup over one machine |",
        "|---|---|---|---|---|",
    ]
    compute = per_sample * batch
    for ranks in (2, 4, 8, 16, 32, 64):
        for network, (bandwidth, latency) in NETWORKS.items():
            reduce = ring_allreduce(nbytes, ranks, bandwidth, latency)
            efficiency = compute / (compute + reduce)
            lines.append(
                f"| {ranks} | {network} | {reduce * 1e3:.3f} | {efficiency:.0%} | "
                f"{ranks * efficiency:.1f}× |"
            )
    # The per-rank batch at which the allreduce costs as much as the compute (50%).
    for network, (bandwidth, latency) in NETWORKS.items():
        even = ring_allreduce(nbytes, 64, bandwidth, latency) / per_sample
        lines.append("")
        lines.append(
            f"At 64 machines on {network}, half the step is communication below a per-rank "
            f"batch of {even:.0f}."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--steps-cnn", type=int, default=300)
    parser.add_argument("--out", default=os.path.join(HERE, "DISTRIBUTED.md"))
    args = parser.parse_args()
    if args.worker:
        record = worker(args.worker, args.distributed, args.steps or None)
        if record["rank"] == 0:  # one line: two ranks' prints could interleave
            print(json.dumps(record))
        return
    from kcompile.tools.machine import machine

    lines = [
        "# Data-parallel training: measured here, and a cost model",
        "",
        f"`python benchmarks/distributed.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, {machine().describe()}.",
        "",
        "## One process with 2 threads against 2 ranks with 1 thread each",
        "",
        "| model | global batch | 1 × 2 threads, s/epoch | 2 ranks × 1 thread, s/epoch | "
        "ratio | rank's step: gradients / allreduce / update, ms |",
        "|---|---|---|---|---|---|",
    ]
    measured = {}
    for model in ("mlp", "cnn"):
        steps = args.steps_cnn if model == "cnn" else None
        one, two = run(model, False, steps), run(model, True, steps)
        parts = " / ".join(f"{v:.3f}" for v in two["parts_ms"].values())
        lines.append(
            f"| {model} | {BATCH[model]} | {one['epoch_seconds']:.2f} | "
            f"{two['epoch_seconds']:.2f} | {two['epoch_seconds'] / one['epoch_seconds']:.2f}× | "
            f"{parts} |"
        )
        measured[model] = one_thread_step_ms(model)
        print(lines[-1], flush=True)
    lines += [
        "",
        "## Cost model",
        "",
        "Step time = compute(per-rank batch) + ring allreduce(gradient bytes), the "
        "allreduce 2(P−1)·latency + 2(P−1)/P · bytes / bandwidth; compute measured here "
        "with one thread (the per-rank batch as in the table above). Efficiency = compute /"
        " step; speedup = P × efficiency, for the global batch P × per-rank batch.",
        "",
    ]
    for model, record in measured.items():
        per_sample = record["step_ms"] / 1e3 / BATCH[model]
        lines += [*cost_table(model, record["gradient_bytes"], per_sample, BATCH[model]), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
