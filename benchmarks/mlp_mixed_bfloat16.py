"""The MNIST MLP (``examples/mnist_mlp.py``) under ``mixed_bfloat16``: its train step
with the bf16 products on ``kc_bgemm`` (the matrix engines) against ``kc_sgemm``,
interleaved in one process (the machine is shared), best of the rounds.

    python benchmarks/mlp_mixed_bfloat16.py [--batch 256] [--rounds 30] [--width 128|512]
        [--compare engine|rounding]

``--compare rounding`` times the pipeline's ``bf16_engine`` option (``round_in_products``
moves a rounding several products read only with it) on and off, with codegen's engine
and without, so each target's setting can be checked against the other.

It also serves ``kcompile profile``'s model file (``build_model``):

    python -m kcompile.tools.cli profile benchmarks/mlp_mixed_bfloat16.py --step train
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import mnist_mlp

import kcompile as keras

# The mixed-precision benchmark's "512-wide MLP" (``benchmarks/run.py --mixed-only``):
# Fashion-MNIST's images through two hidden Dense(512, relu) layers, trained at batch 256.
WIDE, WIDE_BATCH = 512, 256


def build_wide_model(policy: str = "float32"):
    """The 784-512-512-10 MLP under ``policy`` (Adam, sparse cross-entropy)."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                keras.layers.Flatten(),
                keras.layers.Dense(WIDE, activation="relu"),
                keras.layers.Dense(WIDE, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return model
    finally:
        keras.mixed_precision.set_global_policy("float32")


def build_model():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        return mnist_mlp.build_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")


# The variants each comparison times: name -> (codegen told the CPU has a bf16 engine,
# the pipeline told it has one: ``round_in_products`` moves roundings that several
# products read only then).
COMPARISONS = {
    "engine": {"kc_sgemm": (False, False), "kc_bgemm": (True, True)},
    "rounding": {
        "engine, option on": (True, True),
        "engine, option off": (True, False),
        "no engine, option on": (False, True),
        "no engine, option off": (False, False),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--width", type=int, choices=(128, WIDE), default=128)
    parser.add_argument(
        "--compare",
        choices=tuple(COMPARISONS),
        default="engine",
        help="engine: kc_sgemm against kc_bgemm; rounding: the pipeline's bf16_engine "
        "option on and off, with codegen's engine and without",
    )
    args = parser.parse_args()
    os.environ["KCOMPILE_CACHE"] = "0"  # the variants differ in codegen and options only
    import kcompile.codegen.lowering.products as products
    from kcompile.passes.manager import PipelineOptions
    from kcompile.runtime import prepared

    rng = np.random.default_rng(0)
    models = {}
    for name, (engine, option) in COMPARISONS[args.compare].items():
        products.has_engine = lambda features, engine=engine: engine
        prepared.target_options = lambda option=option: PipelineOptions(bf16_engine=option)
        model = build_model() if args.width == 128 else build_wide_model("mixed_bfloat16")
        x = rng.random((args.batch, *model.input_shape[1:])).astype("float32")
        y = rng.integers(0, 10, args.batch)
        model.train_on_batch(x, y)  # compiles
        models[name] = (model, x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (model, x, y) in models.items():
            t0 = time.perf_counter()
            for _ in range(10):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - t0) / 10)
    for name, t in times.items():
        print(f"{name}: train step batch {args.batch}: best {min(t) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
