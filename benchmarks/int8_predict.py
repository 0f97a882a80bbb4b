"""``model.quantize("int8")`` and ``("int4")`` against float32: predictions of the
784-512-512-10 MLP and of the encoder block (``examples/encoder_block.py``), each in
kcompile float32, kcompile int8 on ``kc_igemm`` (the CPU's integer multiply-adds) and int8
on exact f32 products (``passes.int8_products.INTEGER_KERNEL`` off), int4 (the kernel
unpacked as ``kc_sgemm`` packs it) and int4 with its f32 kernel made first
(``hold_int4_products`` disabled), and PyTorch's dynamic int8 quantization
(``torch.ao.quantization.quantize_dynamic``) of the same MLP beside its float32; all in
one process, interleaved call by call (the machine is shared), medians of wall time.
With ``--keras-python`` (a Python that has Keras 3 and JAX; kcompile never imports it)
Keras's own quantized models run too, in that interpreter, after the rest
(``keras_int8_peer.py``: the same model files, only the import changed).

    python benchmarks/int8_predict.py [--batches 256 1] [--calls 200] [--rounds 3]
        [--keras-python /path/to/keras-env/bin/python]

Prints the CPU, then per model and batch the milliseconds a call and the speedups of
int8 over float32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import encoder_block
from mlp_mixed_bfloat16 import build_wide_model
from timing import cpu_name

from kcompile.passes import int8_products

# Variants compiled otherwise than by default, to measure what the default buys:
# (``int8_products.INTEGER_KERNEL``, passes disabled). Neither is in the prepared-graph
# cache's key: they compile with the cache off.
OTHERWISE = {
    "int8, f32 products": (False, ""),
    # dequantize_int4 lowered on its own: the f32 kernel made every call, then the product
    "int4, f32 kernel": (True, "hold_int4_products"),
}
MODES = {"int8": "int8", "int8, f32 products": "int8", "int4": "int4", "int4, f32 kernel": "int4"}


def _copies(build) -> dict:
    """The model in float32 and quantized (same weights), each compiled for predict."""
    base = build()
    base.compile(loss="sparse_categorical_crossentropy")
    weights = base.get_weights()
    variants = {"float32": base}
    for name, mode in MODES.items():
        model = build()
        model.set_weights(weights)
        model.quantize(mode)
        model.compile(loss="sparse_categorical_crossentropy")
        variants[name] = model
    return variants


def _warm(variants: dict, x: np.ndarray) -> None:
    """Compile every variant's predict at this batch (the settings read at compile time)."""
    for name, model in variants.items():
        integer_kernel, disabled = OTHERWISE.get(name, (True, ""))
        int8_products.INTEGER_KERNEL = integer_kernel
        os.environ["KCOMPILE_DISABLE"] = disabled
        os.environ["KCOMPILE_CACHE"] = "0" if name in OTHERWISE else "1"
        model.predict_on_batch(x)
    os.environ["KCOMPILE_CACHE"] = "1"
    os.environ.pop("KCOMPILE_DISABLE")
    int8_products.INTEGER_KERNEL = True


def _torch_variants(batch: int, weights: list) -> dict:
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    w1, b1, w2, b2, w3, b3 = (torch.from_numpy(np.ascontiguousarray(w)) for w in weights)
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
        torch.nn.Softmax(-1),
    ).eval()
    with torch.no_grad():
        for layer, (w, b) in zip((net[1], net[3], net[5]), ((w1, b1), (w2, b2), (w3, b3))):
            layer.weight.copy_(w.T)
            layer.bias.copy_(b)
    quantized = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, torch.qint8)

    def run(module):
        def call(x):
            with torch.no_grad():
                return module(torch.from_numpy(x))

        return call

    return {"PyTorch float32": run(net), "PyTorch dynamic int8": run(quantized)}


def measure(name: str, build, shape: tuple, batches, calls: int, rounds: int) -> dict:
    """Prints the table of ``name`` and returns its medians (batch -> variant -> ms)."""
    medians = {}
    variants = _copies(build)
    rng = np.random.default_rng(0)
    for batch in batches:
        x = rng.normal(size=(batch, *shape)).astype(np.float32)
        _warm(variants, x)
        runs = {v: (lambda m=m, x=x: m.predict_on_batch(x)) for v, m in variants.items()}
        if name == "mlp":
            for label, call in _torch_variants(batch, variants["float32"].get_weights()).items():
                runs[label] = lambda call=call, x=x: call(x)
        times = {v: [] for v in runs}
        order = list(runs)
        for r in range(rounds):
            for i in range(calls):
                for v in order if (i + r) % 2 else order[::-1]:
                    start = time.perf_counter()
                    runs[v]()
                    times[v].append(time.perf_counter() - start)
        med = {v: statistics.median(t) * 1e3 for v, t in times.items()}
        medians[batch] = med
        print(f"\n{name}, predict at batch {batch} (median ms a call over {rounds * calls}):")
        for v, ms in med.items():
            base = "PyTorch float32" if v.startswith("PyTorch") else "float32"
            print(f"  {v:<22} {ms:8.3f} ms   {med[base] / ms:5.2f}x its float32")
        if "PyTorch dynamic int8" in med:
            ratio = med["PyTorch dynamic int8"] / med["int8"]
            print(f"  kcompile int8 against PyTorch dynamic int8: {ratio:.2f}x faster")
    return medians


def keras_peer(python: str, models, batches, calls: int, ours: dict) -> None:
    """Keras 3's own float32 and quantized models in ``python`` (a separate process, run
    after ours: not interleaved), against kcompile int8's medians ``ours``."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_int8_peer.py")
    command = [python, script, "--models", *models, "--batches", *map(str, batches)]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [*command, "--calls", str(calls)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        print(f"\nKeras peer failed: {done.stderr.strip().splitlines()[-1:]}")
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nKeras peer ({result.pop('versions')}), separate process, median ms a call:")
    for name, by_batch in result.items():
        for batch, times in by_batch.items():
            mine = ours[name][int(batch)]["int8"]
            print(
                f"  {name} at {batch}: float32 {times['float32']:.3f}, int8 {times['int8']:.3f}"
                f"; kcompile int8 {mine:.3f} ({times['int8'] / mine:.2f}x Keras's int8)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mlp", "encoder"])
    parser.add_argument("--keras-python", help="a Python with Keras 3 and JAX, for its peer")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}, {len(os.sched_getaffinity(0))} cores")
    builds = {
        "mlp": (build_wide_model, (28, 28)),
        "encoder": (encoder_block.build_model, (encoder_block.SEQ, encoder_block.WIDTH)),
    }
    ours = {}
    for name in args.models:
        build, shape = builds[name]
        ours[name] = measure(name, build, shape, args.batches, args.calls, args.rounds)
    if args.keras_python:
        keras_peer(args.keras_python, args.models, args.batches, args.calls, ours)


if __name__ == "__main__":
    main()
