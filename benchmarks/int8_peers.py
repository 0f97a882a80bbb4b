"""The peers of ``benchmarks/run.py``'s int8 section (issue 29): the 784-512-512-10 MLP
and the encoder block predicting at batch 256 and 1 in PyTorch eager after dynamic int8
quantization (``torch.ao.quantization.quantize_dynamic`` of their ``nn.Linear`` layers:
fbgemm's int8 products, activations quantized per call), the same models as peers.py's
and mixed_peers.py's. None when PyTorch is not installed."""

from __future__ import annotations

import warnings

import numpy as np
from peers import torch_encoder
from timing import Measure

MLP_WIDTH = 512
BATCHES = (256, 1)


def torch_measures(x: np.ndarray, encoder_x: np.ndarray, threads: int) -> dict | None:
    """``"int8 mlp512 predict batch B"`` and ``"int8 encoder predict batch B"``, with
    ``x`` Fashion-MNIST rows and ``encoder_x`` the encoder's sequences (at least 256)."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, MLP_WIDTH), nn.ReLU(),
        nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU(),
        nn.Linear(MLP_WIDTH, 10), nn.Softmax(-1),
    ).eval()  # fmt: skip
    encoder = torch_encoder(nn).eval()
    with warnings.catch_warnings():  # (its deprecation notice for torchao)
        warnings.simplefilter("ignore")
        quantized = {
            "mlp512": torch.ao.quantization.quantize_dynamic(mlp, {nn.Linear}, torch.qint8),
            "encoder": torch.ao.quantization.quantize_dynamic(encoder, {nn.Linear}, torch.qint8),
        }
    inputs = {"mlp512": torch.from_numpy(x), "encoder": torch.from_numpy(encoder_x)}
    out = {}
    for name, model in quantized.items():
        for batch in BATCHES:

            def predict(model=model, data=inputs[name][:batch]):
                with torch.no_grad():
                    model(data)

            out[f"int8 {name} predict batch {batch}"] = Measure(
                predict, group=3 if batch > 1 else 20
            )
    return out
