"""The peers of ``benchmarks/run.py``'s mixed-precision section (issue 28): the CNN
(train at batch 64, predict at 256), the 784-512-512-10 MLP (train at batch 256,
``mlp_mixed_bfloat16.build_wide_model``) and the encoder block (train at batch 32) in
PyTorch eager under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (oneDNN's bf16
kernels: AMX where the CPU has it), and the CNN's float32 inference in JAX (XLA's CPU
backend does not use the engines: the issue's images-per-second target is against it).
Same shapes and optimizer as peers.py; each function returns None when its framework
is not installed."""

from __future__ import annotations

import numpy as np
from peers import encoder_data, jax_cnn_predict, torch_cnn, torch_encoder, torch_train_step
from timing import Measure

CNN_TRAIN, CNN_PREDICT, MLP_WIDTH, MLP_BATCH = 64, 256, 512, 256


def torch_measures(x: np.ndarray, y: np.ndarray, threads: int) -> dict[str, Measure] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    cnn = torch_cnn(nn)
    images, labels = xt[:CNN_TRAIN].reshape(CNN_TRAIN, 1, 28, 28), yt[:CNN_TRAIN]
    many = xt[:CNN_PREDICT].reshape(CNN_PREDICT, 1, 28, 28)
    mlp = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, MLP_WIDTH), nn.ReLU(),
        nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU(),
        nn.Linear(MLP_WIDTH, 10),
    )  # fmt: skip
    seqs, classes = (torch.from_numpy(v) for v in encoder_data())

    def cnn_predict():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.softmax(cnn(many), 1)

    return {
        "mixed cnn train step": Measure(
            torch_train_step(cnn, images, labels, autocast=True), prepare=cnn.train
        ),
        # Dropout off, as in Keras's predict
        "mixed cnn predict batch 256": Measure(cnn_predict, group=3, prepare=cnn.eval),
        "mixed mlp512 train step": Measure(
            torch_train_step(mlp, xt[:MLP_BATCH], yt[:MLP_BATCH], autocast=True)
        ),
        "mixed encoder train step": Measure(
            torch_train_step(torch_encoder(nn), seqs, classes, autocast=True)
        ),
    }


def jax_measures(x: np.ndarray) -> dict[str, Measure] | None:
    try:
        import jax.numpy as jnp
    except ImportError:
        return None
    images = jnp.asarray(x[:CNN_PREDICT].reshape(CNN_PREDICT, 28, 28, 1))
    return {"cnn predict batch 256": Measure(jax_cnn_predict(images), group=3)}
