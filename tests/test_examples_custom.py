"""The examples written with custom layers and a subclassed model train to their stated
accuracy (with fewer epochs than their defaults, and a bound below what they reach)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_transformer_classifier_learns_a_task_that_needs_attention():
    assert _load("transformer_classifier").main(epochs=40) > 0.9


def test_the_subclassed_model_example_separates_the_rings():
    assert _load("subclassed_model").main(epochs=8) > 0.95


@pytest.mark.slow
def test_the_multi_head_attention_transformer_learns_the_task():
    assert _load("transformer_mha").main(epochs=40) > 0.8


@pytest.mark.slow
def test_the_denoising_autoencoder_removes_most_of_the_noise():
    loss, noisy = _load("denoising_autoencoder").main(epochs=5)
    assert loss < 0.5 * noisy


@pytest.mark.slow
def test_the_conv1d_time_series_classifier_tells_the_periods_apart():
    # 320 steps: BatchNormalization's moving statistics (momentum 0.99) have caught up.
    assert _load("timeseries_conv1d").main(epochs=5) > 0.95


@pytest.mark.slow
def test_the_small_resnet_finds_the_class_patches():
    # 16 steps: far above chance (0.1), though BatchNormalization's moving statistics
    # (momentum 0.99) still lag the training batches' (0.92 accuracy), as in Keras.
    assert _load("small_resnet").main(epochs=2, train=1024) > 0.6
