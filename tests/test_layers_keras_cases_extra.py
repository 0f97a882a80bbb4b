"""Keras 3.15's numbers for the layers of issue 26's ``misc_layer_cases.py``
(EinsumDense, GroupQueryAttention, AdditiveAttention, RMSNormalization,
SpectralNormalization, ELU, PReLU, Identity, AlphaDropout, ReversibleEmbedding, Pipeline,
CategoryEncoding, Discretization): the same weights and inputs
(``keras_fixtures/misc_layers.npz``, made by ``make_misc_layer_fixtures.py``) give the same
outputs called on data (the reference interpreter) and in compiled models (one model per
batch size, natively and on the reference interpreter); ``compute_output_shape`` is
Keras's; ``get_config`` / ``from_config`` make the same layer again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.misc_layer_cases import ADAPT_CASES, CASES, build_layer, call_layer

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "misc_layers.npz")


def _case(name: str):
    """The case's kcompile layer, built and given Keras's weights, and its inputs."""
    spec = CASES[name]
    arrays = [FIXTURES[f"{name}/x{j}"] for j in range(len(spec["inputs"]))]
    layer = build_layer(layers, spec)
    probe = dict(spec, kwargs={k: v for k, v in spec.get("kwargs", {}).items() if k != "training"})
    call_layer(layer, probe, arrays)
    weights = [FIXTURES[f"{name}/w{j}"] for j in range(len(layer.weights))]
    assert f"{name}/w{len(weights)}" not in FIXTURES  # as many weights as Keras's
    for w, want in zip(layer.weights, weights):
        assert w.shape == want.shape, (name, w.path)
    layer.set_weights(weights)
    return spec, layer, arrays


def _expected(name: str) -> list[np.ndarray]:
    return [FIXTURES[f"{name}/y{j}"] for j in range(4) if f"{name}/y{j}" in FIXTURES]


def _close(got, want, name):
    got = got if isinstance(got, list | tuple) else [got]
    assert len(got) == len(want), name
    for g, w in zip(got, want):
        g = np.asarray(g)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        if w.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w, err_msg=name)
        else:
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("name", list(CASES))
def test_called_on_data_gives_kerass_numbers(name):
    spec, layer, arrays = _case(name)
    _close(call_layer(layer, spec, arrays), _expected(name), name)
    if f"{name}/vector_u" in FIXTURES:
        np.testing.assert_allclose(layer.vector_u.numpy(), FIXTURES[f"{name}/vector_u"], rtol=1e-5)
    if f"{name}/shape" in FIXTURES:
        want = tuple(None if d == -1 else int(d) for d in FIXTURES[f"{name}/shape"])
        assert tuple(layer.compute_output_shape((None, *arrays[0].shape[1:]))) == want


@pytest.mark.parametrize("name", list(CASES))
def test_config_round_trip(name):
    spec, layer, arrays = _case(name)
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config
    probe = dict(spec, kwargs={k: v for k, v in spec.get("kwargs", {}).items() if k != "training"})
    call_layer(again, probe, arrays)
    again.set_weights(layer.get_weights())
    _close(call_layer(again, spec, arrays), _expected(name), name)


def _compiled_cases() -> dict[int, list[str]]:
    """The cases a predict step can hold (no training-mode call), by batch size."""
    groups: dict[int, list[str]] = {}
    for name, spec in CASES.items():
        if spec.get("kwargs", {}).get("training"):
            continue
        batch = FIXTURES[f"{name}/x0"].shape[0]
        groups.setdefault(batch, []).append(name)
    return groups


@pytest.mark.slow
@pytest.mark.parametrize("batch", sorted(_compiled_cases()))
def test_compiled_models_give_kerass_numbers(batch):
    """Every case of one batch size in one model: compiled natively and on the reference
    interpreter, both equal to Keras's numbers."""
    names = _compiled_cases()[batch]
    inputs, outputs, feeds, wanted = [], [], [], []
    for name in names:
        spec, layer, arrays = _case(name)
        symbols = [keras.Input(a.shape[1:], dtype=str(a.dtype)) for a in arrays]
        out = call_layer(layer, spec, symbols)
        inputs += symbols
        feeds += arrays
        outs = list(out) if isinstance(out, list | tuple) else [out]
        outputs += outs
        wanted += _expected(name)
        assert [tuple(o.shape[1:]) for o in outs] == [w.shape[1:] for w in _expected(name)]
    model = keras.Model(inputs, outputs)
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        got = model.predict(feeds, verbose=0)
        got = got if isinstance(got, list) else [got]
        for g, w, where in zip(got, wanted, [n for n in names for _ in _expected(n)]):
            _close([g.astype(w.dtype) if w.dtype.kind in "iu" else g], [w], f"{where} {backend}")


@pytest.mark.parametrize("name", list(ADAPT_CASES))
def test_discretization_adapt_finds_kerass_boundaries(name):
    spec = ADAPT_CASES[name]
    data = FIXTURES[f"{name}/data"]
    layer = layers.Discretization(num_bins=spec["num_bins"], epsilon=spec["epsilon"])
    layer.adapt(list(data) if name == "adapt_batches" else data)
    np.testing.assert_allclose(layer.bin_boundaries, FIXTURES[f"{name}/boundaries"], rtol=1e-6)


def test_configs_have_kerass_keys_and_values():
    """Where Keras itself is installed: each layer's config has Keras's keys (dtype policies
    aside: kcompile computes in float32) and Keras's values for its plain arguments."""
    real = pytest.importorskip("keras")
    seen = set()
    for name, spec in CASES.items():
        if spec["layer"] in seen:
            continue
        seen.add(spec["layer"])
        arrays = [FIXTURES[f"{name}/x{j}"] for j in range(len(spec["inputs"]))]
        probe = dict(
            spec, kwargs={k: v for k, v in spec.get("kwargs", {}).items() if k != "training"}
        )
        theirs, ours = build_layer(real.layers, spec), build_layer(layers, spec)
        call_layer(theirs, probe, arrays)
        call_layer(ours, probe, arrays)
        want, got = theirs.get_config(), ours.get_config()
        assert set(want) - {"dtype"} == set(got) - {"dtype"}, spec["layer"]
        for key, value in want.items():
            if key not in ("dtype", "name") and not isinstance(value, dict | list):
                assert got[key] == value or tuple(got[key] or ()) == tuple(value or ()), key
