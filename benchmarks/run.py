"""kcompile's benchmark suite: one command, one table, ratios measured in one run.

    python benchmarks/run.py [--repeats 3] [--rounds 5] [--runs 1] [--out benchmarks/RESULTS.md]
    python benchmarks/run.py --models-only [--repeats 3] [--rounds 5] [--runs 2]
    python benchmarks/run.py --mixed-only [--repeats 3] [--rounds 5] [--runs 2]
    python benchmarks/run.py --int8-only [--repeats 3] [--rounds 5] [--runs 2]

1. Matrix products, kcompile's runtime GEMM vs numpy (OpenBLAS), with one thread
   and with all threads, every shape in SHAPES and all three transpositions.
2. The example models (MODEL_ROWS) in kcompile, PyTorch eager and JAX (jit per step,
   and the MLP's epoch under ``lax.scan``; peers.py and round3_peers.py) when installed
   (``pip install -e '.[bench]'``), interleaved: one long-lived worker process per
   framework with its own thread settings, started once (models built, compiled and
   warmed up once); the driver asks them in turn for a block of samples of one
   measure, round after round (``--rounds``), so a slow phase of the shared host hits
   every framework. Before each block the driver waits until the other workers'
   threads sleep (PyTorch's OpenMP threads spin ~30 ms after a parallel region; no
   framework's wait policy is changed, so none is slowed) and reports the CPU the idle
   workers took meanwhile; a block of a measure whose call is under 50 ms starts with
   one untimed call. A block lasts about 0.035 s x ``--repeats`` (1 to 5 x ``--repeats``
   samples). Each framework's time is the median (min–max) over every sample; the ratio
   kcompile / peer is the median over the rounds of each round's ratio of medians, with
   the rounds' (min–max); the columns "target" and "met?" check issue 27's targets.
   ``--runs N`` repeats the whole section with fresh workers and adds a table of each
   target's ratio in every run and whether it held in all ("two runs agreeing").
   Mixed precision (issue 28), in the same interleaved scheme with workers of its own
   (``--mixed-only`` runs this section alone): the CNN (train step at 64, predict at 256),
   the 784-512-512-10 MLP (train step at 256) and the encoder block (train step at 32)
   in kcompile under ``mixed_bfloat16`` against kcompile's own float32 (at least 3x with
   AMX-BF16, 1.6x with AVX512_BF16 alone, 1x without), PyTorch eager under
   ``torch.autocast("cpu", dtype=torch.bfloat16)`` (kcompile faster) and, for the CNN's
   inference, JAX's float32 (4x its images per second); mixed_peers.py has the peers.
   Speedups (the other's time / kcompile mixed's) are medians over the rounds as above.
   Quantized inference (issue 29; ``--int8-only``): the 784-512-512-10 MLP and the
   encoder block predicting at batch 256 and 1 after ``model.quantize("int8")``, against
   the same models in kcompile's float32 (at batch 256 at least 3x with AMX-INT8, 1.8x
   with VNNI alone; at batch 1 no slower) and PyTorch eager's dynamic int8 (kcompile
   faster); int8_peers.py has the peer.
3. The epoch loop: the MLP's step per batch inside one native call per epoch,
   against the same step called once per batch, and against ``fit``.
4. The example MLP as an artifact: build time, size, load time.
5. Cold (empty cache, fresh process) and warm (cache hit, fresh process) compile
   time of each model's train, eval and predict functions.

Sections other than the models run each framework in a process of its own (so no
thread pool spins while another framework is timed), one after another. Nothing here
is asserted: the machines are shared and noisy, so read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

from timing import Measure, cpu_name, samples, summary  # noqa: E402

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
    from kcompile.codegen.library.runtime_library import runtime

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


def kcompile_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure]:
    """The example models in kcompile, on the data the peers use (peers.py and
    round3_peers.py; the GRU: fashion_lstm.py with a GRU(128) in the LSTM's place)."""
    from encoder_block import make_data
    from round3_peers import RESNET_TRAIN, SERIES_TRAIN, resnet_data, series_data

    mlp = _build("mlp")
    mlp.fit(x[:64], y[:64], epochs=1, verbose=0)  # compile before the warm-up epoch
    one, images, labels = x[:1], x[:64, :, :, None], y[:64]
    batch = x[:CNN_PREDICT_BATCH, :, :, None]
    cnn, lstm, encoder = _build("cnn"), _build("lstm"), _build("encoder")
    seqs, classes = make_data(32, seed=0)
    pictures, picture_classes = resnet_data(256)
    train = pictures[:RESNET_TRAIN], picture_classes[:RESNET_TRAIN]
    resnet, series, gru = _build("resnet"), _build("conv1d"), _build("gru")
    s, sy = series_data(SERIES_TRAIN)
    return {
        "mlp epoch": Measure(lambda: mlp.fit(x, y, batch_size=32, epochs=1, verbose=0), warmup=1),
        "mlp predict batch 1": Measure(lambda: mlp.predict_on_batch(one), group=200),
        "cnn train step": Measure(lambda: cnn.train_on_batch(images, labels)),
        "lstm train step": Measure(lambda: lstm.train_on_batch(x[:64], labels)),
        "cnn predict batch 256": Measure(lambda: cnn.predict_on_batch(batch), group=3),
        "encoder train step": Measure(lambda: encoder.train_on_batch(seqs, classes)),
        "resnet train step": Measure(lambda: resnet.train_on_batch(*train)),
        "resnet predict batch 256": Measure(lambda: resnet.predict_on_batch(pictures)),
        "conv1d train step": Measure(lambda: series.train_on_batch(s, sy)),
        "gru train step": Measure(lambda: gru.train_on_batch(x[:64], picture_classes[:64])),
    }


def torch_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure] | None:
    import round3_peers
    from peers import torch_measures as first_rounds

    threads = len(os.sched_getaffinity(0))
    out = first_rounds(x, y, threads)
    if out is not None:
        out.update(round3_peers.torch_measures(x, threads))
    return out


def jax_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure] | None:
    import round3_peers
    from peers import jax_measures as first_rounds

    out = first_rounds(x, y)
    if out is not None:
        out.update(round3_peers.jax_measures())
    return out


def kcompile_mixed_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure]:
    """The mixed-precision section's workloads in kcompile, each under ``mixed_bfloat16``
    (keys ``mixed ...``) and in float32: the CNN's train step (64) and predict (256), the
    784-512-512-10 MLP's train step (256) and the encoder block's train step (32)."""
    from encoder_block import make_data
    from mlp_mixed_bfloat16 import WIDE_BATCH, build_wide_model

    import kcompile as keras

    images, labels = x[:64, :, :, None], y[:64]
    batch = x[:CNN_PREDICT_BATCH, :, :, None]
    flat, flat_labels = x[:WIDE_BATCH], y[:WIDE_BATCH]
    seqs, classes = make_data(32, seed=0)
    out = {}
    for policy, prefix in (("float32", ""), ("mixed_bfloat16", "mixed ")):
        keras.mixed_precision.set_global_policy(policy)
        try:
            cnn, encoder = _build("cnn"), _build("encoder")
        finally:
            keras.mixed_precision.set_global_policy("float32")
        mlp = build_wide_model(policy)
        out |= {
            f"{prefix}cnn train step": Measure(lambda m=cnn: m.train_on_batch(images, labels)),
            f"{prefix}cnn predict batch 256": Measure(
                lambda m=cnn: m.predict_on_batch(batch), group=3
            ),
            f"{prefix}mlp512 train step": Measure(
                lambda m=mlp: m.train_on_batch(flat, flat_labels)
            ),
            f"{prefix}encoder train step": Measure(
                lambda m=encoder: m.train_on_batch(seqs, classes)
            ),
        }
    return out


def torch_mixed_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure] | None:
    import mixed_peers

    return mixed_peers.torch_measures(x, y, len(os.sched_getaffinity(0)))


def jax_mixed_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure] | None:
    import mixed_peers

    return mixed_peers.jax_measures(x)


def _int8_inputs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The int8 section's inputs: 256 Fashion-MNIST rows and 256 of the encoder's
    sequences' shape (examples/encoder_block.py's; peers.py's copy of its sizes, so that
    a peer's Python needs no kcompile)."""
    from peers import SEQ, WIDTH

    rng = np.random.default_rng(0)
    return x[:256], rng.standard_normal((256, SEQ, WIDTH)).astype(np.float32)


def kcompile_int8_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure]:
    """The int8 section's workloads in kcompile: the 784-512-512-10 MLP and the encoder
    block predicting at batch 256 and 1, in float32 and after ``model.quantize("int8")``
    (the same weights; keys ``int8 ...``)."""
    import encoder_block
    from mlp_mixed_bfloat16 import build_wide_model

    rows, seqs = _int8_inputs(x)
    out = {}
    for name, build, data in (
        ("mlp512", build_wide_model, rows),
        ("encoder", encoder_block.build_model, seqs),
    ):
        base = build()
        quantized = build()
        quantized.set_weights(base.get_weights())
        quantized.quantize("int8")
        for prefix, model in (("", base), ("int8 ", quantized)):
            for batch in (256, 1):
                key = f"{prefix}{name} predict batch {batch}"
                part = data[:batch]
                group = 3 if batch > 1 else 20
                out[key] = Measure(lambda m=model, d=part: m.predict_on_batch(d), group=group)
    return out


def torch_int8_measures(x: np.ndarray, y: np.ndarray) -> dict[str, Measure] | None:
    import int8_peers

    return int8_peers.torch_measures(*_int8_inputs(x), len(os.sched_getaffinity(0)))


# Each framework of a section's table: its worker's measures (None: not installed).
FRAMEWORKS = {"kcompile": kcompile_measures, "PyTorch eager": torch_measures, "JAX": jax_measures}
MIXED_FRAMEWORKS = {
    "kcompile": kcompile_mixed_measures,
    "PyTorch eager": torch_mixed_measures,
    "JAX": jax_mixed_measures,
}
INT8_FRAMEWORKS = {
    "kcompile": kcompile_int8_measures,
    "PyTorch eager": torch_int8_measures,
    "JAX": lambda x, y: None,  # (JAX has no int8 model of its own to run here)
}
SECTIONS = {"models": FRAMEWORKS, "mixed": MIXED_FRAMEWORKS, "int8": INT8_FRAMEWORKS}
# A measure whose call is shorter than this gets one untimed call at the start of each
# block: its threads were asleep and its caches another framework's.
BLOCK_WARMUP_BELOW = 0.05


def serve(framework: str, section: str = "models") -> None:
    """A model worker: builds and warms ``framework``'s measures of ``section`` once,
    reports each one's seconds per sample, then answers the driver's requests
    (``{"measure", "count"}``, one JSON line each on stdin) with a block of samples until
    stdin closes."""
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the libraries' own prints go to stderr, not into the protocol
    x, y, _ = _data()
    measures = SECTIONS[section][framework](x, y)
    if measures is None:
        protocol.write(json.dumps({"ready": None}) + "\n")
        protocol.flush()
        return
    per_call = {key: m.warm() for key, m in measures.items()}
    sample = {key: t * measures[key].group for key, t in per_call.items()}
    protocol.write(json.dumps({"ready": sample}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        key = request["measure"]
        warmup = 1 if per_call[key] < BLOCK_WARMUP_BELOW else 0
        protocol.write(json.dumps(measures[key].block(request["count"], warmup)) + "\n")
        protocol.flush()


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
    from kcompile.codegen.library.runtime_library import PIECES, runtime

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
    "epoch-loop": worker_epoch_loop,
    "artifact": worker_artifact,
    "torch-matmul": worker_torch_matmul,
    "versions": worker_versions,
}


# --- the driver ---------------------------------------------------------------------


# The environment's OpenBLAS overrides (an AVX2 core type on AVX-512 machines): unset
# for numpy's baseline, in its own process only.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PEER_PYTHON = sys.executable  # --peer-python: a Python with torch and jax
THREAD_VARIABLES = ("KCOMPILE_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


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
        for var in THREAD_VARIABLES:
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
    from kcompile.codegen.library.runtime_library import tile

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


@dataclass(frozen=True)
class ModelRow:
    """A row of the model table: kcompile's measure against the peers' ``theirs``
    (default: the same name), its label and unit (``scale``, ``digits``), and issue 27's
    targets: peer -> the largest kcompile / peer time ratio asked for."""

    ours: str
    label: str
    scale: float
    digits: int
    targets: dict[str, float] = field(default_factory=dict)
    theirs: str | None = None

    @property
    def their_key(self) -> str:
        return self.theirs or self.ours


MODEL_ROWS = [
    ModelRow("mlp epoch", "MLP epoch (1875 steps of 32), s", 1.0, 2, {"JAX": 0.5}),
    ModelRow(
        "mlp epoch", "MLP epoch vs JAX jit per step, s", 1.0, 2, theirs="mlp epoch (jit per step)"
    ),
    ModelRow("cnn train step", "CNN train step (64), ms", 1e3, 1),
    ModelRow("lstm train step", "LSTM train step (64), ms", 1e3, 1, {"PyTorch eager": 0.6}),
    ModelRow("mlp predict batch 1", "MLP predict, batch 1, µs", 1e6, 1),
    ModelRow("cnn predict batch 256", "CNN predict, batch 256, ms", 1e3, 2, {"JAX": 0.83}),
    ModelRow(
        "encoder train step",
        "Encoder block train step (32), ms",
        1e3,
        1,
        {"PyTorch eager": 0.7, "JAX": 1.0},
    ),
    ModelRow("gru train step", "GRU train step (64), ms", 1e3, 1, {"PyTorch eager": 0.6}),
    ModelRow(
        "resnet train step", "Small ResNet train step (128), ms", 1e3, 1, {"PyTorch eager": 0.7}
    ),
    ModelRow(
        "resnet predict batch 256", "Small ResNet predict, batch 256, ms", 1e3, 1, {"JAX": 0.83}
    ),
    ModelRow(
        "conv1d train step",
        "Conv1D time series train step (32), ms",
        1e3,
        2,
        {"PyTorch eager": 0.7},
    ),
]
# A block of samples lasts about BLOCK_SECONDS x --repeats (at least one sample, at most
# 5 x --repeats).
BLOCK_SECONDS = 0.035
# The longest the driver waits for the idle workers' threads to sleep before a block.
IDLE_LIMIT = 0.5

# Results of one interleaved run: framework -> measure -> one block of samples per round
# (None: the framework is not installed).
Rounds = dict[str, dict[str, list[list[float]]] | None]


def block_count(sample_seconds: float, repeats: int) -> int:
    """Samples in a block of a measure whose sample takes ``sample_seconds``."""
    wanted = math.ceil(BLOCK_SECONDS * repeats / max(sample_seconds, 1e-9))
    return max(1, min(5 * repeats, wanted))


def round_ratios(ours: list[list[float]], theirs: list[list[float]]) -> list[float]:
    """Per round: kcompile's median over its block / the peer's over its block (blocks
    of one round ran back to back, so both saw the same phase of the host)."""
    return [_median(a) / _median(b) for a, b in zip(ours, theirs, strict=True)]


def peers_of(results: Rounds) -> list[str]:
    return [n for n, v in results.items() if n != "kcompile" and v is not None]


def row_ratios(results: Rounds, row: ModelRow) -> dict[str, list[float]]:
    """The row's per-round ratios against each peer that has its measure."""
    ours = results["kcompile"][row.ours]
    return {
        n: round_ratios(ours, results[n][row.their_key])
        for n in peers_of(results)
        if row.their_key in results[n]
    }


def target_checks(results: Rounds) -> list[tuple[str, str, float, float | None]]:
    """(row label, peer, target, the ratio: median over rounds, or None when the peer
    did not run) for every target of MODEL_ROWS."""
    checks = []
    for row in MODEL_ROWS:
        ratios = row_ratios(results, row)
        for peer, bound in row.targets.items():
            found = ratios.get(peer)
            checks.append((row.label, peer, bound, _median(found) if found else None))
    return checks


def _flat(blocks: list[list[float]]) -> list[float]:
    return [t for block in blocks for t in block]


def _met(ratio: float | None, bound: float) -> str:
    return "–" if ratio is None else ("yes" if ratio <= bound else "NO")


def model_table(results: Rounds) -> list[str]:
    """One row per measure: each framework's median (min–max) over every sample of every
    round, and kcompile / peer as the median over the rounds of each round's ratio
    (round_ratios), with the rounds' (min–max). JAX's epoch is under lax.scan, its
    per-step epoch a row of its own."""
    names = peers_of(results)
    header = "| measure | kcompile | " + " | ".join(f"{n} | kcompile / {n}" for n in names)
    lines = [header + " | target | met? |", "|---" * (4 + 2 * len(names)) + "|"]
    ours = results["kcompile"]
    for row in MODEL_ROWS:
        scale, digits, targets = row.scale, row.digits, row.targets
        cells = [row.label, summary(_flat(ours[row.ours]), scale, digits)]
        ratios = row_ratios(results, row)
        for n in names:
            if n not in ratios:
                cells += ["–", "–"]
                continue
            r = ratios[n]
            cells.append(summary(_flat(results[n][row.their_key]), scale, digits))
            cells.append(f"{_median(r):.2f}× ({min(r):.2f}–{max(r):.2f})")
        cells.append(", ".join(f"≤ {bound:g}× {peer}" for peer, bound in targets.items()))
        cells.append(
            ", ".join(
                _met(_median(ratios[p]) if p in ratios else None, b) for p, b in targets.items()
            )
        )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def agreement(runs: list[Rounds]) -> list[str]:
    """Each target's ratio in every run, and whether it held in all of them."""
    return _agreement([target_checks(r) for r in runs], "≤")


def _agreement(per_run: list[list[tuple]], sign: str) -> list[str]:
    """The agreement table of ``per_run`` (each run's (label, peer, bound, ratio or
    None) checks, in one order): a target holds where every ratio is ``sign`` (≤: at
    most, ≥: at least) its bound."""
    heads = " | ".join(f"run {i + 1}" for i in range(len(per_run)))
    lines = [f"| measure | target | {heads} | met in every run? |"]
    lines.append("|---" * (3 + len(per_run)) + "|")
    held = missing = 0
    for i, (label, peer, bound, _) in enumerate(per_run[0]):
        ratios = [checks[i][3] for checks in per_run]
        if None in ratios:  # the peer did not run
            missing += 1
            verdict = "–"
        else:
            verdict = "yes" if all(_holds(r, bound, sign) for r in ratios) else "NO"
            held += verdict == "yes"
        shown = " | ".join("–" if r is None else f"{r:.2f}×" for r in ratios)
        lines.append(f"| {label} | {sign} {bound:g}× {peer} | {shown} | {verdict} |")
    total = f"{held} of {len(per_run[0])} targets held in all {len(per_run)} runs"
    lines += ["", total + (f" ({missing} not measured)." if missing else ".")]
    return lines


def _holds(ratio: float, bound: float, sign: str) -> bool:
    return ratio <= bound if sign == "≤" else ratio >= bound


# --- the mixed-precision section (issue 28) ---------------------------------------------


@dataclass(frozen=True)
class Against:
    """A column of the mixed-precision table: ``framework``'s ``measure``, shown as
    ``name``; the speedup is its time over kcompile's mixed-precision time, ``target``
    the least speedup asked for (None: shown without a target)."""

    framework: str
    measure: str
    name: str
    target: float | None = None


@dataclass(frozen=True)
class MixedRow:
    """A row of the mixed-precision table: kcompile's measure under ``mixed_bfloat16``
    (``ours``), its label and unit (``scale``, ``digits``), and what it is held against."""

    ours: str
    label: str
    scale: float
    digits: int
    against: tuple[Against, ...]


def float32_target(features: Callable[[str], bool]) -> float:
    """Issue 28's least speedup of ``mixed_bfloat16`` over kcompile's own float32 on a
    CPU with ``features`` (``HostInfo.has``): 3x with AMX-BF16, 1.6x with AVX512_BF16
    alone, else no slower."""
    from kcompile.codegen.library.bf16_gemm import has_amx, has_dp

    return 3.0 if has_amx(features) else 1.6 if has_dp(features) else 1.0


def mixed_rows(f32_target: float) -> list[MixedRow]:
    """The mixed-precision rows, kcompile's float32 held to ``f32_target``
    (``float32_target``); PyTorch eager under autocast to 1x (kcompile faster); the
    CNN's inference, on a CPU with AMX-BF16 (``f32_target`` 3x), to 4x JAX's float32
    images per second (issue 28 asks it of AMX alone; elsewhere the column has no target)."""

    def row(key: str, label: str, digits: int, *more: Against) -> MixedRow:
        f32 = Against("kcompile", key, "kcompile float32", f32_target)
        torch = Against("PyTorch eager", f"mixed {key}", "PyTorch autocast", 1.0)
        return MixedRow(f"mixed {key}", label, 1e3, digits, (f32, torch, *more))

    jax = Against("JAX", "cnn predict batch 256", "JAX float32", 4.0 if f32_target >= 3 else None)
    return [
        row("cnn train step", "CNN train step (64), ms", 1),
        row("cnn predict batch 256", "CNN predict, batch 256, ms", 2, jax),
        row("mlp512 train step", "MLP 784-512-512-10 train step (256), ms", 2),
        row("encoder train step", "Encoder block train step (32), ms", 1),
    ]


def mixed_keys(rows: list[MixedRow]) -> list[str]:
    """Every measure the rows read, in table order (a worker times those it has)."""
    keys = (k for r in rows for k in (r.ours, *(a.measure for a in r.against)))
    return list(dict.fromkeys(keys))


def speedups(results: Rounds, row: MixedRow, against: Against) -> list[float] | None:
    """Per round: the other measure's median over its block / kcompile's mixed one's
    (above 1: mixed precision is faster); None when its framework did not run it."""
    theirs = (results.get(against.framework) or {}).get(against.measure)
    if theirs is None:
        return None
    return [1 / r for r in round_ratios(results["kcompile"][row.ours], theirs)]


def mixed_checks(
    results: Rounds, rows: list[MixedRow]
) -> list[tuple[str, str, float, float | None]]:
    """(row label, compared with, least speedup, the median speedup over the rounds or
    None) for every target of ``rows``."""
    checks = []
    for row in rows:
        for a in row.against:
            if a.target is not None:
                found = speedups(results, row, a)
                checks.append((row.label, a.name, a.target, _median(found) if found else None))
    return checks


def mixed_table(
    results: Rounds, rows: list[MixedRow], ours: str = "kcompile mixed_bfloat16"
) -> list[str]:
    """One row per workload: kcompile's time (mixed precision, or ``ours``), then per
    comparison its time and the speedup (the median over the rounds of each round's
    speedup, with the rounds' min–max), the targets and whether each was met."""
    columns = list(dict.fromkeys(a.name for r in rows for a in r.against))
    heads = " | ".join(f"{n} | speedup over {n}" for n in columns)
    lines = [f"| measure | {ours} | {heads} | target | met? |"]
    lines.append("|---" * (4 + 2 * len(columns)) + "|")
    ours = results["kcompile"]
    for row in rows:
        cells = [row.label, summary(_flat(ours[row.ours]), row.scale, row.digits)]
        by_name = {a.name: a for a in row.against}
        targets, met = [], []
        for name in columns:
            a = by_name.get(name)
            found = speedups(results, row, a) if a else None
            if found is None:
                cells += ["–", "–"]
            else:
                theirs = _flat(results[a.framework][a.measure])
                cells.append(summary(theirs, row.scale, row.digits))
                cells.append(f"{_median(found):.2f}× ({min(found):.2f}–{max(found):.2f})")
            if a is not None and a.target is not None:
                targets.append(f"≥ {a.target:g}× {name}")
                held = found is not None and _holds(_median(found), a.target, "≥")
                met.append("–" if found is None else "yes" if held else "NO")
        lines.append("| " + " | ".join([*cells, ", ".join(targets), ", ".join(met)]) + " |")
    return lines


# --- the interleaved model workers ----------------------------------------------------


def _threads(pid: int) -> list[tuple[str, int]]:
    """Each thread of process ``pid``: its state (``R``: running or runnable, as a
    spinning OpenMP thread is) and the nanoseconds it has run."""
    out = []
    folder = f"/proc/{pid}/task"
    for tid in os.listdir(folder):
        try:
            with open(f"{folder}/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"{folder}/{tid}/schedstat") as f:
                ran = int(f.read().split()[0])
        except (OSError, IndexError, ValueError):  # the thread ended meanwhile
            continue
        out.append((state, ran))
    return out


def _cpu_ns(pids: list[int]) -> int:
    return sum(ran for pid in pids for _, ran in _threads(pid))


def wait_idle(pids: list[int]) -> float:
    """Waits until no thread of ``pids`` runs (PyTorch's OpenMP threads spin ~30 ms after
    a parallel region before they sleep; kcompile's pool and XLA's park sooner), at
    most IDLE_LIMIT seconds; returns the seconds waited. Without /proc: a fixed 50 ms."""
    if not os.path.isdir("/proc/self/task"):
        time.sleep(0.05)
        return 0.05
    start = time.perf_counter()
    while time.perf_counter() - start < IDLE_LIMIT:
        if all(state != "R" for pid in pids for state, _ in _threads(pid)):
            break
        time.sleep(0.002)
    return time.perf_counter() - start


class ModelWorker:
    """One framework's long-lived worker process (``serve``), its own thread settings
    in its environment."""

    def __init__(self, framework: str, python: str, env: dict, section: str = "models") -> None:
        self.framework = framework
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        command = [python, __file__, "--worker", "serve", "--arg", framework]
        command += ["--section", section]
        pipe = subprocess.PIPE
        self.proc = subprocess.Popen(
            command, env=env, stdin=pipe, stdout=pipe, stderr=self.log, text=True
        )
        self.pid = self.proc.pid

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.seek(0)
            raise RuntimeError(f"{self.framework} worker failed:\n{self.log.read()[-3000:]}")
        return json.loads(line)

    def ready(self) -> dict[str, float] | None:
        """Each measure's seconds per sample after the warm-up (None: not installed)."""
        return self._reply()["ready"]

    def block(self, measure: str, count: int) -> list[float]:
        self.proc.stdin.write(json.dumps({"measure": measure, "count": count}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self, stop: bool = False) -> None:
        """Ends the worker: closing its stdin ends its loop; ``stop`` kills it (another
        worker failed, nothing more is wanted of this one)."""
        if stop:
            self.proc.kill()
        self.proc.stdin.close()
        self.proc.wait()
        self.log.close()


def model_keys() -> list[str]:
    """Every measure the model table reads, in its order."""
    return list(dict.fromkeys(k for row in MODEL_ROWS for k in (row.ours, row.their_key)))


def interleave(
    workers: dict[str, ModelWorker],
    sample_seconds: dict,
    rounds: int,
    repeats: int,
    keys: list[str] | None = None,
):
    """``rounds`` rounds; in each, every measure of ``keys`` (default: MODEL_ROWS's) in
    turn, each framework that has it timing one block, the frameworks' order rotating
    from round to round. Before a block the driver waits until the other workers'
    threads sleep, and it adds up the CPU they took while the block ran. Returns the
    Rounds and a note on that."""
    keys = model_keys() if keys is None else keys
    names = list(workers)
    out: Rounds = {n: {k: [] for k in sample_seconds[n]} for n in names}
    waited = idle = timed = 0.0
    load = os.getloadavg()[0]
    for r in range(rounds):
        print(f"  round {r + 1} of {rounds}", flush=True)
        order = names[r % len(names) :] + names[: r % len(names)]
        for key in keys:
            for name in (n for n in order if key in sample_seconds[n]):
                others = [w.pid for n, w in workers.items() if n != name]
                waited += wait_idle(others)
                before, start = _cpu_ns(others), time.perf_counter()
                count = block_count(sample_seconds[name][key], repeats)
                out[name][key].append(workers[name].block(key, count))
                timed += time.perf_counter() - start
                idle += (_cpu_ns(others) - before) / 1e9
    note = (
        f"{rounds} rounds; the idle workers ran {idle * 1e3:.1f} ms of CPU during "
        f"{timed:.1f} s of timed blocks ({idle / max(timed, 1e-9):.2%}); "
        f"waited {waited:.1f} s in all for their threads to sleep; the host's load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (PyTorch's 2-thread "
        "steps slow down many times over when the host has more runnable threads than cores)"
    )
    return out, note


def model_runs(
    rounds: int,
    repeats: int,
    cores: int,
    peer: str,
    section: str = "models",
    keys: list[str] | None = None,
) -> tuple[Rounds, str]:
    """One interleaved run of ``section``'s measures (``keys``, default the model
    table's): a worker per framework, started together (building and warming up
    overlap; nothing is timed until all are ready), then ``interleave``."""
    x, y, source = _data()
    threads = {var: str(cores) for var in THREAD_VARIABLES}
    environments = {  # JAX (XLA) sizes its pool from the cores it may use
        "kcompile": (sys.executable, threads),
        "PyTorch eager": (peer, threads),
        "JAX": (peer, {}),
    }
    with tempfile.TemporaryDirectory() as folder:
        data_file = os.path.join(folder, "fashion.npz")
        np.savez(data_file, x=x, y=y, source=source)
        workers = {
            name: ModelWorker(
                name,
                python,
                dict(os.environ, KCOMPILE_BENCH_DATA=data_file, **variables),
                section,
            )
            for name, (python, variables) in environments.items()
        }
        failed, start = True, time.perf_counter()
        try:
            ready = {name: w.ready() for name, w in workers.items()}
            print(f"  workers ready after {time.perf_counter() - start:.0f} s", flush=True)
            running = {n: w for n, w in workers.items() if ready[n] is not None}
            results, note = interleave(running, ready, rounds, repeats, keys)
            failed = False
        finally:
            for w in workers.values():
                w.close(stop=failed)
    results.update({n: None for n in workers if n not in running})
    return results, f"Data: {source}. {note}."


def models_section(runs: int, rounds: int, repeats: int, cores: int, peer: str) -> list[str]:
    """The model tables of ``runs`` interleaved runs, and with two or more, whether each
    target held in every one."""
    lines = [
        f"kcompile, PyTorch and JAX each with {cores} threads, each in a worker process "
        "of its own that builds and warms its models once; the driver asks them in turn "
        "for a block of samples of one measure, round after round, the frameworks' order "
        "rotating, so a slow phase of the host hits every framework. Times: median "
        "(min–max) over every sample. kcompile / peer: the median over the rounds of "
        "(kcompile's median in the round / the peer's median in the round), with the "
        "rounds' (min–max). A block starts once the other workers' threads sleep "
        "(PyTorch's OpenMP threads spin ~30 ms after a parallel region) and after one "
        "untimed call (for calls under 50 ms); no framework's wait policy is changed.",
        "",
    ]
    results = []
    for run in range(runs):
        print(f"models, run {run + 1} of {runs}: kcompile, torch, jax ...", flush=True)
        result, note = model_runs(rounds, repeats, cores, peer)
        results.append(result)
        if runs > 1:
            lines += [f"### Run {run + 1} of {runs}", ""]
        lines += [note, "", *model_table(result), ""]
    if runs > 1:
        lines += ["### Targets in every run", "", *agreement(results), ""]
    return lines


def mixed_section(runs: int, rounds: int, repeats: int, cores: int, peer: str) -> list[str]:
    """Issue 28's table of ``runs`` interleaved runs: kcompile under ``mixed_bfloat16``
    against its own float32, PyTorch eager under autocast and JAX's float32 inference;
    with two or more runs, whether each target held in every one."""
    from kcompile.codegen import host
    from kcompile.codegen.library.bf16_gemm import has_amx, has_dp

    features = host().has
    rows = mixed_rows(float32_target(features))
    engines = [n for n, has in (("AMX-BF16", has_amx), ("AVX512_BF16", has_dp)) if has(features)]
    lines = [
        f"kcompile under `mixed_bfloat16` against its own float32 step, PyTorch eager under "
        '`torch.autocast("cpu", dtype=torch.bfloat16)` and JAX (jit) in float32, each with '
        f"{cores} threads, interleaved as the model table is. The CPU's bf16 engines: "
        f"{', '.join(engines) or 'none'}, so the float32 target is "
        f"{float32_target(features):g}x. Speedup: the median over the rounds of (the "
        "other's median in the round / kcompile mixed_bfloat16's), with the rounds' "
        "(min–max); above 1, kcompile under mixed_bfloat16 is faster.",
        "",
    ]
    runs_of = (runs, rounds, repeats, cores, peer)
    return lines + speedup_runs("mixed", rows, "kcompile mixed_bfloat16", *runs_of)


def speedup_runs(
    section: str, rows: list[MixedRow], ours: str, runs: int, rounds: int, repeats: int,
    cores: int, peer: str,
) -> list[str]:  # fmt: skip
    """``runs`` interleaved runs of ``section``'s workers, each run's table of ``rows``
    (kcompile's column headed ``ours``) and, with two or more, whether each target held
    in every one."""
    lines, results = [], []
    for run in range(runs):
        print(f"{section}, run {run + 1} of {runs} ...", flush=True)
        result, note = model_runs(rounds, repeats, cores, peer, section, mixed_keys(rows))
        results.append(result)
        if runs > 1:
            lines += [f"### Run {run + 1} of {runs}", ""]
        lines += [note, "", *mixed_table(result, rows, ours), ""]
    if runs > 1:
        per_run = [mixed_checks(r, rows) for r in results]
        lines += ["### Targets in every run", "", *_agreement(per_run, "≥"), ""]
    return lines


# --- the int8 section (issue 29) -------------------------------------------------------


def int8_target(features: Callable[[str], bool]) -> float | None:
    """Issue 29's least speedup of int8 over kcompile's float32 at batch 256 on a CPU with
    ``features``: 3x with AMX-INT8, 1.8x with VNNI alone; none without either (the int8
    products then run on pmaddwd: ``codegen.library.int8_gemm``)."""
    if features("amx-int8"):
        return 3.0
    if features("avx512vnni") or features("avxvnni"):
        return 1.8
    return None


def int8_rows(target: float | None) -> list[MixedRow]:
    """Predict at batch 256 (against kcompile's float32, ``target``, and PyTorch's dynamic
    int8: kcompile faster) and at batch 1 (no slower than float32)."""

    def row(model: str, label: str, batch: int, f32_target: float | None) -> MixedRow:
        key = f"{model} predict batch {batch}"
        f32 = Against("kcompile", key, "kcompile float32", f32_target)
        torch = Against("PyTorch eager", f"int8 {key}", "PyTorch dynamic int8", 1.0)
        digits = 2 if batch > 1 else 3
        return MixedRow(f"int8 {key}", f"{label}, batch {batch}, ms", 1e3, digits, (f32, torch))

    return [
        row("mlp512", "MLP 784-512-512-10 predict", 256, target),
        row("mlp512", "MLP 784-512-512-10 predict", 1, 1.0),
        row("encoder", "Encoder block predict", 256, target),
        row("encoder", "Encoder block predict", 1, 1.0),
    ]


def int8_section(runs: int, rounds: int, repeats: int, cores: int, peer: str) -> list[str]:
    """Issue 29's table of ``runs`` interleaved runs: kcompile after
    ``model.quantize("int8")`` against its own float32 and PyTorch's dynamic int8."""
    from kcompile.codegen import host

    features = host().has
    target = int8_target(features)
    rows = int8_rows(target)
    engines = [
        n for n, f in (("AMX-INT8", "amx-int8"), ("AVX512_VNNI", "avx512vnni")) if features(f)
    ]
    shown = f"{target:g}x" if target else "none (no integer engine: pmaddwd)"
    lines = [
        'kcompile after `model.quantize("int8")` against the same model in float32 and '
        "PyTorch eager after `torch.ao.quantization.quantize_dynamic` (fbgemm), each with "
        f"{cores} threads, interleaved as the model table is. The CPU's integer engines: "
        f"{', '.join(engines) or 'none'}, so the float32 target at batch 256 is {shown}. "
        "Speedup: the median over the rounds of (the other's median in the round / "
        "kcompile int8's), with the rounds' (min–max); above 1, kcompile int8 is faster.",
        "",
    ]
    runs_of = (runs, rounds, repeats, cores, peer)
    return lines + speedup_runs("int8", rows, "kcompile int8", *runs_of)


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of the interleaved model measures (each round: a block of every "
        "measure from every framework)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="interleaved model runs, each with fresh workers; with 2 or more, a table of "
        "each target's ratio in every run and whether it held in all",
    )
    parser.add_argument(
        "--mixed-only",
        action="store_true",
        help="run only the mixed-precision section (issue 28's targets) and print its table",
    )
    parser.add_argument(
        "--int8-only",
        action="store_true",
        help="run only the int8 section (issue 29's targets) and print its table",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    parser.add_argument("--section", default="models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "compile":
        print(json.dumps(worker_compile(args.arg)))
        return
    if args.worker == "serve":
        serve(args.arg, args.section)
        return
    if args.worker:
        print(json.dumps(WORKERS[args.worker](int(args.arg))))
        return

    cores = len(os.sched_getaffinity(0))
    started = time.time()
    peer = args.peer_python
    models = (args.runs, args.rounds, args.repeats, cores, peer)
    if args.models_only or args.mixed_only or args.int8_only:
        lines = models_section(*models) if args.models_only else []
        lines += mixed_section(*models) if args.mixed_only else []
        lines += int8_section(*models) if args.int8_only else []
        print(f"{cpu_name()}, {cores} cores")
        print("\n".join(lines))
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
    model_lines = models_section(*models)
    mixed_lines = mixed_section(*models)
    int8_lines = int8_section(*models)
    peers_versions = run_worker("versions", 0, python=peer)
    print("the epoch loop ...", flush=True)
    loop = run_worker("epoch-loop", max(args.repeats, 5), threads=cores)
    artifact = run_worker("artifact", args.repeats, threads=cores)
    print("compile times ...", flush=True)
    compiles = compile_times(args.repeats)
    lines = [
        "# kcompile benchmark results",
        "",
        f"`python benchmarks/run.py --repeats {args.repeats} --rounds {args.rounds} "
        f"--runs {args.runs}`, "
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
        *model_lines,
        "## Mixed precision (issue 28)",
        "",
        *mixed_lines,
        "## Quantized inference (issue 29)",
        "",
        *int8_lines,
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
