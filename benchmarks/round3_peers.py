"""The workloads round three of the speed work added, in PyTorch eager and JAX: the
small residual network (examples/small_resnet.py: train at batch 128, predict at 256),
the Conv1D time-series classifier (examples/timeseries_conv1d.py, train at batch 32)
and a GRU(128) on Fashion-MNIST's rows (train at batch 64). Same shapes, Adam (lr 1e-3,
eps 1e-7), Keras's BatchNormalization epsilon (1e-3) and momentum (0.99), as
``Measure``s for ``benchmarks/run.py``'s workers. Each function returns None when its
framework is not installed."""

from __future__ import annotations

import numpy as np
from peers import torch_train_step
from timing import Measure

RESNET_TRAIN, RESNET_PREDICT, SERIES_TRAIN = 128, 256, 32
STAGES = ((32, 1), (64, 2), (128, 2))


def resnet_data(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((count, 32, 32, 3)).astype(np.float32)
    return x, rng.integers(0, 10, count).astype(np.int32)


def series_data(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((count, 500, 1)).astype(np.float32)
    return x, rng.integers(0, 2, count).astype(np.int32)


def torch_measures(rows: np.ndarray, threads: int) -> dict[str, Measure] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def bn(c, dims=2):
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        return norm(c, eps=1e-3, momentum=0.01)

    class Residual(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout),
            )  # fmt: skip
            self.short = nn.Identity()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    blocks, cin = [], 32
    for cout, stride in STAGES:
        blocks.append(Residual(cin, cout, stride))
        cin = cout
    resnet = nn.Sequential(
        nn.Conv2d(3, 32, 3, 1, 1, bias=False), bn(32), nn.ReLU(), *blocks,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip
    series = nn.Sequential(
        *(m for c in (1, 64, 64) for m in (nn.Conv1d(c, 64, 3, padding=1), bn(64, 1), nn.ReLU())),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, 2),
    )  # fmt: skip

    class Gru(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(28, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, seq):
            return self.head(self.gru(seq)[0][:, -1])

    def trainer(model, data, labels):
        # train mode before each block: the ResNet's predict blocks (eval mode) alternate
        # with its train blocks
        step = torch_train_step(
            model, torch.from_numpy(data), torch.from_numpy(labels.astype(np.int64))
        )
        return Measure(step, prepare=model.train)

    x, y = resnet_data(RESNET_PREDICT)
    images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    s, sy = series_data(SERIES_TRAIN)
    batch = torch.from_numpy(images)

    def predict():
        with torch.no_grad():
            torch.softmax(resnet(batch), 1)

    return {
        "resnet train step": trainer(resnet, images[:RESNET_TRAIN], y[:RESNET_TRAIN]),
        "conv1d train step": trainer(series, np.ascontiguousarray(s.transpose(0, 2, 1)), sy),
        "gru train step": trainer(Gru(), rows[:64], y[:64] % 10),
        "resnet predict batch 256": Measure(predict, prepare=resnet.eval),
    }


def jax_resnet_predict():
    """examples/small_resnet.py's inference under jax.jit (XLA: NHWC convolutions, the
    BatchNormalizations in inference mode as a scale and shift)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    keys = iter(jax.random.split(jax.random.PRNGKey(3), 32))

    def conv_params(k, cin, cout):
        return jax.random.normal(next(keys), (k, k, cin, cout)) / (k * k * cin) ** 0.5

    def conv(h, kernel, stride):
        pad = "SAME" if kernel.shape[0] == 3 else "VALID"
        dims = ("NHWC", "HWIO", "NHWC")
        return lax.conv_general_dilated(h, kernel, (stride, stride), pad, dimension_numbers=dims)

    def norm(h, c):
        return h * jnp.ones(c) * 0.9 + jnp.full(c, 0.01)

    params = {"stem": conv_params(3, 3, 32), "blocks": []}
    cin = 32
    for cout, stride in STAGES:
        block = {"a": conv_params(3, cin, cout), "b": conv_params(3, cout, cout)}
        if stride != 1 or cin != cout:
            block["short"] = conv_params(1, cin, cout)
        params["blocks"].append((block, stride))
        cin = cout
    head_w = jax.random.normal(next(keys), (128, 10)) * 0.1

    @jax.jit
    def predict(h):
        h = jax.nn.relu(norm(conv(h, params["stem"], 1), 32))
        for block, stride in params["blocks"]:
            c = block["a"].shape[-1]
            short = h
            if "short" in block:
                short = norm(conv(h, block["short"], stride), c)
            body = jax.nn.relu(norm(conv(h, block["a"], stride), c))
            h = jax.nn.relu(norm(conv(body, block["b"], 1), c) + short)
        return jax.nn.softmax(h.mean((1, 2)) @ head_w)

    images = jnp.asarray(resnet_data(RESNET_PREDICT)[0])
    return lambda: predict(images).block_until_ready()


def jax_measures() -> dict[str, Measure] | None:
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    return {"resnet predict batch 256": Measure(jax_resnet_predict())}
