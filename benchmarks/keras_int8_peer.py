"""The peer of ``int8_predict.py`` in real Keras 3 (JAX backend): the same model files
with ``kcompile`` mapped to ``keras`` (only the import changed), float32 and after
``model.quantize("int8")``, ``predict_on_batch`` timed per call, medians; prints one JSON
object (model -> batch -> variant -> ms). Run by ``int8_predict.py --keras-python`` in
an environment that has Keras (kcompile never imports it):

    KERAS_BACKEND=jax /path/to/keras-env/bin/python benchmarks/keras_int8_peer.py \\
        --models mlp encoder --batches 256 1 --calls 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

sys.modules["kcompile"] = keras  # the programs' only change, undone
sys.modules["kcompile.layers"] = keras.layers
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "examples")]

import encoder_block  # noqa: E402
from mlp_mixed_bfloat16 import build_wide_model  # noqa: E402

BUILDS = {
    "mlp": (build_wide_model, (28, 28)),
    "encoder": (encoder_block.build_model, (encoder_block.SEQ, encoder_block.WIDTH)),
}


def _times(model, x, calls: int) -> float:
    for _ in range(3):
        model.predict_on_batch(x)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        np.asarray(model.predict_on_batch(x))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=list(BUILDS))
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1])
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    out: dict = {"versions": f"keras {keras.__version__}, {keras.backend.backend()}"}
    rng = np.random.default_rng(0)
    for name in args.models:
        build, shape = BUILDS[name]
        base = build()
        quantized = build()
        quantized.set_weights(base.get_weights())
        quantized.quantize("int8")
        out[name] = {}
        for batch in args.batches:
            x = rng.normal(size=(batch, *shape)).astype(np.float32)
            out[name][batch] = {
                "float32": _times(base, x, args.calls),
                "int8": _times(quantized, x, args.calls),
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
