"""kcompile's benchmark suite: one command, one table, ratios measured in one run.

    python benchmarks/run.py [--repeats 3] [--out benchmarks/RESULTS.md]

1. Matrix products, kcompile's runtime GEMM vs numpy (OpenBLAS), with one thread
   and with all threads, every shape in SHAPES and all three transpositions.
2. The example MLP (784-128-10, Adam, batch 32): seconds per epoch on
   Fashion-MNIST; the CNN and LSTM examples: ms per train step at batch 64; the
   MLP's predict latency at batch 1.
3. The same models in PyTorch eager and JAX (jit per step, and the epoch under
   ``lax.scan``) when installed: ``pip install -e '.[bench]'``.
4. The epoch loop: the MLP's step per batch inside one native call per epoch,
   against the same step called once per batch, and against ``fit``.
5. The example MLP as an artifact: build time, size, load time.
6. Cold (empty cache, fresh process) and warm (cache hit, fresh process) compile
   time of each model's train, eval and predict functions.

Every framework runs in its own process (so no thread pool spins while another
framework is timed), with the thread count set through its usual variables.
Results are medians with (min–max) over the samples. Nothing here is asserted:
the machines are shared and noisy, so read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

from timing import cpu_name, samples, summary  # noqa: E402

SHAPES = [
    (32, 784, 128),
    (128, 784, 128),
    (512, 512, 512),
    (1024, 1024, 1024),
    (37, 100, 50),
    (1, 784, 128),
]
PRODUCTS = {"A·B": (False, False), "Aᵀ·B": (True, False), "A·Bᵀ": (False, True)}
MODELS = ("mlp", "cnn", "lstm", "resnet", "conv1d")
# Each compiled model's input shape (without the batch) in the compile-time rows.
INPUT_SHAPES = {"cnn": (28, 28, 1), "resnet": (32, 32, 3), "conv1d": (500, 1)}
CNN_PREDICT_BATCH = 256


# --- workers (each runs in its own process) ---------------------------------------


def _operands(m: int, depth: int, n: int, ta: bool, tb: bool):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((depth, m) if ta else (m, depth)).astype(np.float32)
    b = rng.standard_normal((n, depth) if tb else (depth, n)).astype(np.float32)
    return (a.T if ta else a), (b.T if tb else b), np.empty((m, n), np.float32)


def _group_for(fn, target: float = 2e-3) -> int:
    """How many calls make one sample of about ``target`` seconds."""
    start = time.perf_counter()
    fn()
    return max(1, int(target / max(time.perf_counter() - start, 1e-7)))


def _matmul_times(repeats: int, call) -> dict:
    out = {}
    for m, depth, n in SHAPES:
        for name, (ta, tb) in PRODUCTS.items():
            a, b, c = _operands(m, depth, n, ta, tb)
            fn = call(a, b, c)
            out[f"{m}x{depth}x{n} {name}"] = samples(fn, 3 * repeats, group=_group_for(fn))
    return out


def worker_numpy_matmul(repeats: int) -> dict:
    out = _matmul_times(repeats, lambda a, b, c: lambda: np.matmul(a, b, out=c))
    out["openblas core"] = _openblas_core()
    return out


def _openblas_core() -> str:
    """The kernel family numpy's OpenBLAS runs (its own report of the core it chose)."""
    import ctypes
    import glob

    libs = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*")
    for path in glob.glob(libs):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "unknown"


def worker_torch_matmul(repeats: int) -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    def call(a, b, c):
        ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))
        return lambda: torch.mm(ta, tb, out=tc)

    return _matmul_times(repeats, call)


def worker_matmul(repeats: int) -> dict:
    """kcompile's GEMM; in a process of its own, as OpenBLAS's threads spin for a while
    after each call and would take the cores from kcompile's."""
    from kcompile.codegen.runtime_library import runtime

    return _matmul_times(repeats, runtime().sgemm_call)


def _data():
    """Fashion-MNIST's training images as floats in [0, 1] and labels: from the file the
    driver wrote (``KCOMPILE_BENCH_DATA``, so a peer's Python needs no kcompile), else
    loaded here."""
    path = os.environ.get("KCOMPILE_BENCH_DATA")
    if path:
        with np.load(path) as data:
            return data["x"], data["y"], str(data["source"])
    import kcompile as keras

    try:
        (x, y), _ = keras.datasets.fashion_mnist.load_data()
        source = "Fashion-MNIST (60000 training images)"
    except (OSError, ValueError) as error:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (60000, 28, 28)), rng.integers(0, 10, 60000)
        source = f"random images of Fashion-MNIST's shape (dataset not found: {error})"
    return (x / 255.0).astype(np.float32), y.astype(np.int32), source


def _build(name: str):
    import kcompile as keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    module = {
        "mlp": "mnist_mlp",
        "cnn": "fashion_cnn",
        "lstm": "fashion_lstm",
        "encoder": "encoder_block",
        "resnet": "small_resnet",
        "conv1d": "timeseries_conv1d",
    }.get(name)
    if module is None:  # "gru": fashion_lstm.py with a GRU(128) in the LSTM's place
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                keras.layers.GRU(128),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return model
    return __import__(module).build_model()


def worker_kcompile(repeats: int) -> dict:
    x, y, source = _data()
    mlp = _build("mlp")
    mlp.fit(x[:64], y[:64], epochs=1, verbose=0)  # compile outside the timing

    def epoch():
        mlp.fit(x, y, batch_size=32, epochs=1, verbose=0)

    one = x[:1]
    out = {
        "data": source,
        "mlp epoch": samples(epoch, repeats, warmup=0),
        "mlp predict batch 1": samples(lambda: mlp.predict_on_batch(one), 10, group=200),
    }
    images, labels = x[:64, :, :, None], y[:64]
    cnn = _build("cnn")
    out["cnn train step"] = samples(lambda: cnn.train_on_batch(images, labels), 20)
    lstm = _build("lstm")
    out["lstm train step"] = samples(lambda: lstm.train_on_batch(x[:64], labels), 20)
    batch = x[:CNN_PREDICT_BATCH, :, :, None]
    out["cnn predict batch 256"] = samples(lambda: cnn.predict_on_batch(batch), 10, group=3)
    from encoder_block import make_data

    encoder = _build("encoder")
    seqs, classes = make_data(32, seed=0)
    out["encoder train step"] = samples(lambda: encoder.train_on_batch(seqs, classes), 10)
    out.update(round_three(x, y))
    return out


def round_three(x: np.ndarray, y: np.ndarray) -> dict:
    """The small ResNet, the Conv1D time-series classifier and a GRU, on the peers'
    data (round3_peers.py)."""
    from round3_peers import RESNET_TRAIN, SERIES_TRAIN, resnet_data, series_data

    images, classes = resnet_data(256)
    resnet = _build("resnet")
    train = images[:RESNET_TRAIN], classes[:RESNET_TRAIN]
    out = {"resnet train step": samples(lambda: resnet.train_on_batch(*train), 8)}
    out["resnet predict batch 256"] = samples(lambda: resnet.predict_on_batch(images), 8)
    series = _build("conv1d")
    s, sy = series_data(SERIES_TRAIN)
    out["conv1d train step"] = samples(lambda: series.train_on_batch(s, sy), 20)
    gru = _build("gru")
    out["gru train step"] = samples(lambda: gru.train_on_batch(x[:64], classes[:64]), 20)
    return out


def worker_epoch_loop(repeats: int) -> dict:
    """The MLP's train step at batch 32, per step: one native call per epoch
    (``run_epoch``, rows gathered in native code) against the step called once per
    batch on batches gathered beforehand, and against ``fit`` (the epoch loop plus
    metric bookkeeping). The three alternate, so a slow phase of the machine hits
    all of them."""
    x, y, _ = _data()
    mlp = _build("mlp")
    mlp.fit(x[:64], y[:64], epochs=1, verbose=0)  # compile outside the timing
    exe = next(e for k, e in mlp.compiled_steps.executables.items() if k[0] == "train")
    name = mlp.input_names[0]
    order = np.random.default_rng(0).permutation(len(x))
    steps = -(-len(x) // 32)
    batches = [
        {name: x[order[s * 32 : (s + 1) * 32]], "y": y[order[s * 32 : (s + 1) * 32]]}
        for s in range(steps)
    ]

    def step_by_step():
        for batch in batches:
            exe(batch)

    runs = {
        "epoch loop": lambda: exe.run_epoch({name: x, "y": y}, order, 32),
        "step by step": step_by_step,
        "fit": lambda: mlp.fit(x, y, batch_size=32, epochs=1, verbose=0),
    }
    out = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            out[key] += samples(run, 1, warmup=0)
    return {key: [t / steps for t in times] for key, times in out.items()}


def worker_artifact(repeats: int) -> dict:
    """The example MLP as an ahead-of-time artifact: build time, size, and the time
    ``kcompile.load`` takes in a fresh process (checksums, parsing the three graphs,
    loading the libraries, binding the state), then in the same process again."""
    import kcompile as keras

    mlp = _build("mlp")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mlp.kc")
        manifest = mlp.export(path)
        size = os.path.getsize(path)
        code = (
            "import time, kcompile; t = time.perf_counter(); "
            f"kcompile.load({path!r}); print(time.perf_counter() - t)"
        )
        first = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(repeats)
        ]
        again = samples(lambda: keras.load(path), repeats * 3, warmup=1)
    return {"build": manifest["build_seconds"], "bytes": size, "first load": first, "load": again}


def worker_torch(repeats: int) -> dict | None:
    import round3_peers
    from peers import torch_times

    x, y, _ = _data()
    threads = len(os.sched_getaffinity(0))
    out = torch_times(x, y, repeats, threads)
    if out is not None:
        out.update(round3_peers.torch_times(x, repeats, threads))
    return out


def worker_jax(repeats: int) -> dict | None:
    import round3_peers
    from peers import jax_times

    x, y, _ = _data()
    out = jax_times(x, y, repeats)
    if out is not None:
        out.update(round3_peers.jax_times(repeats))
    return out


def worker_versions(_: int) -> str:
    found = []
    for name in ("torch", "jax"):
        try:
            found.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def worker_compile(model: str) -> dict:
    """Seconds to build ``model``'s train, eval and predict functions (first calls), or
    only the runtime library, every piece of it, for ``model == "runtime"``."""
    from kcompile.codegen.runtime_library import PIECES, runtime

    if model == "runtime":
        start = time.perf_counter()
        loaded = runtime()
        for piece in PIECES:  # the bf16 product and the convolutions, built on demand
            loaded.load(piece)
        return {"seconds": time.perf_counter() - start}

    x = np.zeros((32, *INPUT_SHAPES.get(model, (28, 28))), np.float32)
    y = np.zeros(32, np.int32)
    net = _build(model)
    start = time.perf_counter()
    # The runtime library is built (empty cache: in a child, beside the first model
    # compile) or loaded as the first step needs it.
    net.train_on_batch(x, y)
    net.test_on_batch(x, y)
    net.predict_on_batch(x[:1])
    return {"seconds": time.perf_counter() - start}


WORKERS = {
    "matmul": worker_matmul,
    "numpy-matmul": worker_numpy_matmul,
    "kcompile": worker_kcompile,
    "epoch-loop": worker_epoch_loop,
    "artifact": worker_artifact,
    "torch": worker_torch,
    "torch-matmul": worker_torch_matmul,
    "versions": worker_versions,
    "jax": worker_jax,
}


# --- the driver ---------------------------------------------------------------------


# The environment's OpenBLAS overrides (an AVX2 core type on AVX-512 machines): unset
# for numpy's baseline, in its own process only.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PEER_PYTHON = sys.executable  # --peer-python: a Python with torch and jax


def run_worker(
    name: str,
    arg,
    threads: int | None = None,
    env: dict | None = None,
    python: str | None = None,
    unset: tuple[str, ...] = (),
):
    environment = dict(os.environ, **(env or {}))
    for var in unset:
        environment.pop(var, None)
    if threads is not None:
        for var in ("KCOMPILE_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            environment[var] = str(threads)
    command = [python or sys.executable, __file__, "--worker", name, "--arg", str(arg)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compile_times(repeats: int) -> dict:
    """Per model: cold with an empty cache (the runtime library is built too), cold with
    only the runtime library cached (as on a machine that has compiled any model
    before), and warm (everything cached); each in a fresh process."""
    out = {}
    for model in MODELS:
        times: dict[str, list[float]] = {"cold": [], "model": [], "warm": []}
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cache:
                env = {"KCOMPILE_CACHE_DIR": cache}
                times["cold"].append(run_worker("compile", model, env=env)["seconds"])
            with tempfile.TemporaryDirectory() as cache:
                env = {"KCOMPILE_CACHE_DIR": cache}
                run_worker("compile", "runtime", env=env)
                times["model"].append(run_worker("compile", model, env=env)["seconds"])
                times["warm"].append(run_worker("compile", model, env=env)["seconds"])
        out[model] = times
    return out


def machine(peer_versions: str) -> list[str]:
    import llvmlite
    import llvmlite.binding as llvm

    cpu = cpu_name()
    from kcompile.codegen import host
    from kcompile.codegen.runtime_library import tile

    versions = [
        f"python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"llvmlite {llvmlite.__version__} (LLVM {'.'.join(map(str, llvm.llvm_version_info))})",
    ]
    versions.append(peer_versions)
    t = tile()
    from kcompile.tools.machine import machine as measured

    return [
        f"- CPU: {cpu} (LLVM cpu `{host().cpu}`), {len(os.sched_getaffinity(0))} cores",
        f"- {measured().describe()}",
        f"- GEMM tile: {t.mr} x {t.nr} floats, {t.vw}-float vectors, KC {t.kc}",
        "- " + ", ".join(versions),
    ]


def _median(values) -> float:
    return statistics.median(values)


def _ratio(theirs: list[float], ours: list[float]) -> str:
    return f"{_median(theirs) / _median(ours):.2f}×"


def matmul_table(one: dict, all_: dict, cores: int) -> list[str]:
    """Per product and thread count: numpy's time, kcompile's, and their ratio; with
    torch.mm's time and ratio when torch ran."""
    with_torch = one.get("torch") is not None
    lines, rule = ["| product |"], "|---|"
    for t in (1, cores):
        lines[0] += f" numpy {t}t µs | kcompile {t}t µs | ratio |"
        rule += "---|---|---|"
        if with_torch:
            lines[0] += f" torch.mm {t}t µs | ratio |"
            rule += "---|---|"
    lines[0] += f" kcompile speedup from {cores} threads |"
    lines.append(rule + "---|")
    for key in one["kcompile"]:
        row = [key]
        for res in (one, all_):
            ours, numpy_t = res["kcompile"][key], res["numpy"][key]
            row += [summary(numpy_t, 1e6), summary(ours, 1e6), _ratio(numpy_t, ours)]
            if with_torch:
                row += [summary(res["torch"][key], 1e6), _ratio(res["torch"][key], ours)]
        speedup = _median(one["kcompile"][key]) / _median(all_["kcompile"][key])
        row.append(f"{speedup:.2f}×")
        lines.append("| " + " | ".join(row) + " |")
    return lines


MODEL_ROWS = [  # (kcompile's key, the peers' key, label, scale, digits)
    ("mlp epoch", "mlp epoch", "MLP epoch (1875 steps of 32), s", 1.0, 2),
    ("mlp epoch", "mlp epoch (jit per step)", "MLP epoch vs JAX jit per step, s", 1.0, 2),
    ("cnn train step", "cnn train step", "CNN train step (64), ms", 1e3, 1),
    ("lstm train step", "lstm train step", "LSTM train step (64), ms", 1e3, 1),
    ("mlp predict batch 1", "mlp predict batch 1", "MLP predict, batch 1, µs", 1e6, 1),
    ("cnn predict batch 256", "cnn predict batch 256", "CNN predict, batch 256, ms", 1e3, 2),
    ("encoder train step", "encoder train step", "Encoder block train step (32), ms", 1e3, 1),
    ("gru train step", "gru train step", "GRU train step (64), ms", 1e3, 1),
    ("resnet train step", "resnet train step", "Small ResNet train step (128), ms", 1e3, 1),
    (
        "resnet predict batch 256",
        "resnet predict batch 256",
        "Small ResNet predict, batch 256, ms",
        1e3,
        1,
    ),
    ("conv1d train step", "conv1d train step", "Conv1D time series train step (32), ms", 1e3, 2),
]


def model_table(ours: dict, peers: dict) -> list[str]:
    """One row per measure; JAX's epoch is under lax.scan, its per-step epoch a row
    of its own."""
    names = [n for n, v in peers.items() if v is not None]
    header = "| measure | kcompile | " + " | ".join(f"{n} | kcompile / {n}" for n in names)
    lines = [header + " |", "|---" * (2 + 2 * len(names)) + "|"]
    for our_key, their_key, label, scale, digits in MODEL_ROWS:
        row = [label, summary(ours[our_key], scale, digits)]
        for n in names:
            theirs = peers[n].get(their_key)
            if theirs is None:
                row += ["–", "–"]
            else:
                ratio = _median(ours[our_key]) / _median(theirs)
                row += [summary(theirs, scale, digits), f"{ratio:.2f}×"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def model_runs(repeats: int, cores: int, peer: str) -> tuple[dict, dict, str]:
    """kcompile's model measures, and each peer's, in processes of their own."""
    print("models: kcompile, torch, jax ...", flush=True)
    x, y, source = _data()
    data_file = os.path.join(tempfile.mkdtemp(), "fashion.npz")
    np.savez(data_file, x=x, y=y, source=source)
    with_data = {"KCOMPILE_BENCH_DATA": data_file}
    ours = run_worker("kcompile", repeats, threads=cores, env=with_data)
    peers = {
        "PyTorch eager": run_worker("torch", repeats, threads=cores, env=with_data, python=peer),
        "JAX": run_worker("jax", repeats, env=with_data, python=peer),
    }
    return ours, peers, run_worker("versions", 0, python=peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument(
        "--peer-python",
        default=sys.executable,
        help="the Python that runs PyTorch and JAX (a separate venv; default: this one)",
    )
    parser.add_argument(
        "--models-only",
        action="store_true",
        help="run only the models against their peers and print that table (nothing written)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "compile":
        print(json.dumps(worker_compile(args.arg)))
        return
    if args.worker:
        print(json.dumps(WORKERS[args.worker](int(args.arg))))
        return

    cores = len(os.sched_getaffinity(0))
    started = time.time()
    peer = args.peer_python
    if args.models_only:
        ours, peers, _ = model_runs(args.repeats, cores, peer)
        print(f"{cpu_name()}, {cores} cores")
        print("\n".join(model_table(ours, peers)))
        return
    print("matrix products ...", flush=True)
    one, all_ = (
        {
            "numpy": run_worker("numpy-matmul", args.repeats, threads=t, unset=OPENBLAS_OVERRIDES),
            "kcompile": run_worker("matmul", args.repeats, threads=t),
            "torch": run_worker("torch-matmul", args.repeats, threads=t, python=peer),
        }
        for t in (1, cores)
    )
    ours, peers, peers_versions = model_runs(args.repeats, cores, peer)
    print("the epoch loop ...", flush=True)
    loop = run_worker("epoch-loop", max(args.repeats, 5), threads=cores)
    artifact = run_worker("artifact", args.repeats, threads=cores)
    print("compile times ...", flush=True)
    compiles = compile_times(args.repeats)
    lines = [
        "# kcompile benchmark results",
        "",
        f"`python benchmarks/run.py --repeats {args.repeats}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; "
        "medians with (min–max); a ratio below 1 means kcompile takes less time "
        "(matrix products: numpy time / kcompile time, above 1 means kcompile is faster).",
        "",
        *machine(peers_versions),
        "",
        "## Matrix products (C = op(A)·op(B), M×K×N)",
        "",
        f"numpy's OpenBLAS ran its `{one['numpy']['openblas core']}` kernels (the "
        "environment's OpenBLAS overrides unset for it). Ratios: the peer's time / "
        "kcompile's (above 1: kcompile is faster).",
        "",
        *matmul_table(one, all_, cores),
        "",
        "## Models",
        "",
        f"Data: {ours['data']}. kcompile, PyTorch and JAX each with {cores} threads.",
        "",
        *model_table(ours, peers),
        "",
        "## The epoch loop (MLP train step, batch 32, µs per step over a whole epoch)",
        "",
        "| one native call per epoch | the step called per batch | `fit` | loop / step |",
        "|---|---|---|---|",
        f"| {summary(loop['epoch loop'], 1e6)} | {summary(loop['step by step'], 1e6)} "
        f"| {summary(loop['fit'], 1e6)} "
        f"| {_median(loop['epoch loop']) / _median(loop['step by step']):.2f}× |",
        "",
        "## The example MLP as an ahead-of-time artifact",
        "",
        "| build, s | size, KiB | `kcompile.load` in a fresh process, ms | load again, ms |",
        "|---|---|---|---|",
        f"| {artifact['build']:.1f} | {artifact['bytes'] / 1024:.0f} "
        f"| {summary(artifact['first load'], 1e3)} | {summary(artifact['load'], 1e3)} |",
        "",
        "## Compile time (train + eval + predict, fresh process)",
        "",
        "| model | cold: empty cache, s | cold: runtime library cached, s | warm, s |",
        "|---|---|---|---|",
        *(
            f"| {m} | {summary(c['cold'], 1, 2)} | {summary(c['model'], 1, 2)} "
            f"| {summary(c['warm'], 1, 3)} |"
            for m, c in compiles.items()
        ),
        "",
    ]
    text = "\n".join(lines)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
