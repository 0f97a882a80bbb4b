"""How much a train step's time moves, and why: kcompile against PyTorch eager, interleaved.

    python benchmarks/step_variance.py [--model lstm|gru] [--rounds 8] [--steps 25]
                                       [--threads 1 2]

Each framework and thread count runs in a process of its own that stays alive for the
whole run; the driver asks them in turn for a block of ``--steps`` steps, round after
round, so a slow phase of the host hits every one of them. Per step each worker
records the wall time, its process's CPU time, and its involuntary context switches
and minor page faults (``getrusage``): a step with a switch had a thread taken off its
core. The report gives min / median / max over every step of every round, the median
of each round's median (how much a whole benchmark run moves), and the share of steps
that were switched out. ``--hogs N`` alternates rounds without and with N busy-looping
processes beside the workers (a controlled stand-in for a shared host's other jobs) and
reports each kind of round apart.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
sys.path.insert(0, os.path.join(HERE, ".."))


def _step_fn(framework: str, model: str):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    if framework == "torch":
        import torch
        from peers import torch_train_step
        from torch import nn

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        torch.manual_seed(0)
        layer = nn.LSTM if model == "lstm" else nn.GRU

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = layer(28, 128, batch_first=True)
                self.head = nn.Linear(128, 10)

            def forward(self, seq):
                return self.head(self.rnn(seq)[0][:, -1])

        return torch_train_step(Net(), torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
    from run import _build

    net = _build(model)
    return lambda: net.train_on_batch(x, y)


def worker(framework: str, model: str) -> None:
    step = _step_fn("torch" if framework == "torch" else "kcompile", model)
    for _ in range(5):
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        count = int(line)
        rows = []
        for _ in range(count):
            before = resource.getrusage(resource.RUSAGE_SELF)
            c0, w0 = time.process_time(), time.perf_counter()
            step()
            w1, c1 = time.perf_counter(), time.process_time()
            after = resource.getrusage(resource.RUSAGE_SELF)
            rows.append(
                (
                    w1 - w0,
                    c1 - c0,
                    after.ru_nivcsw - before.ru_nivcsw,
                    after.ru_minflt - before.ru_minflt,
                )
            )
        print(json.dumps(rows), flush=True)


def _start(framework: str, model: str, threads: int) -> subprocess.Popen:
    env = dict(os.environ)
    for var in ("KCOMPILE_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env[var] = str(threads)
    script = __file__
    if framework.startswith("kcompile@"):  # another checkout's kcompile (an A/B)
        script = os.path.join(framework.split("@", 1)[1], "benchmarks", "step_variance.py")
    command = [sys.executable, script, "--worker", framework, "--model", model]
    proc = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    while proc.stdout.readline().strip() != "ready":
        if proc.poll() is not None:
            raise RuntimeError(f"{framework} worker failed")
    return proc


def _report(name: str, rounds: list[list[tuple]]) -> str:
    rows = [r for block in rounds for r in block]
    wall = sorted(r[0] * 1e3 for r in rows)
    cpu = [r[1] * 1e3 for r in rows]
    switched = sum(1 for r in rows if r[2]) / len(rows)
    faults = statistics.mean(r[3] for r in rows)
    per_round = [statistics.median(r[0] for r in block) * 1e3 for block in rounds]
    return (
        f"{name:22s} wall ms min {wall[0]:6.2f} med {statistics.median(wall):6.2f} "
        f"p90 {wall[int(0.9 * len(wall))]:6.2f} max {wall[-1]:6.2f} | "
        f"round medians {min(per_round):6.2f}-{max(per_round):6.2f} | "
        f"cpu ms med {statistics.median(cpu):6.2f} | switched {switched:4.0%} | "
        f"faults/step {faults:5.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    # kcompile@PATH: the kcompile of the checkout at PATH (for an A/B of two versions).
    parser.add_argument("--frameworks", nargs="+", default=["kcompile", "torch"])
    parser.add_argument("--hogs", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.model)
        return
    from run import wait_idle

    procs = {f"{f} t{t}": _start(f, args.model, t) for t in args.threads for f in args.frameworks}
    kinds = ["quiet", f"{args.hogs} hogs"] if args.hogs else ["quiet"]
    results: dict[str, list] = {f"{name} {k}": [] for k in kinds for name in procs}
    for r in range(args.rounds):
        kind = kinds[r % len(kinds)]
        hogs = [_hog() for _ in range(args.hogs)] if kind != "quiet" else []
        for name, proc in procs.items():
            # the previous worker's threads (PyTorch's OpenMP ones spin ~30 ms) go to sleep
            wait_idle([p.pid for p in procs.values() if p is not proc])
            proc.stdin.write(f"{args.steps}\n")
            proc.stdin.flush()
            results[f"{name} {kind}"].append(json.loads(proc.stdout.readline()))
        for hog in hogs:
            hog.kill()
            hog.wait()
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"{args.model}, {args.rounds} rounds of {args.steps} steps, load {os.getloadavg()}")
    for name, rounds in results.items():
        print(_report(name, rounds))
    medians = {n: [statistics.median(r[0] for r in b) for b in rs] for n, rs in results.items()}
    for t in args.threads:
        for kind in kinds:
            ours, peer = medians.get(f"kcompile t{t} {kind}"), medians.get(f"torch t{t} {kind}")
            if ours and peer:
                ratios = [a / b for a, b in zip(ours, peer)]
                print(f"t{t} {kind} ratio per round: " + " ".join(f"{r:.2f}" for r in ratios))


def _hog() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


if __name__ == "__main__":
    main()
