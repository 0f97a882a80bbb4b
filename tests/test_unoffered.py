"""Keras names kcompile does not offer are refused with the reason, not an AttributeError;
a name Keras does not have either stays an AttributeError."""

from __future__ import annotations

import importlib

import pytest

import kcompile
from kcompile.utils import unoffered

HOOKED = ("layers", "callbacks", "utils", "saving", "quantizers")  # __getattr__ asks refuse


@pytest.mark.parametrize("namespace", sorted(unoffered.NAMESPACES))
def test_a_missing_namespace_is_refused_with_its_reason(namespace):
    with pytest.raises(NotImplementedError, match=f"keras.{namespace} is not offered"):
        getattr(kcompile, namespace)


@pytest.mark.parametrize("namespace", sorted(unoffered.NAMES))
def test_every_listed_name_is_refused_naming_it(namespace):
    assert namespace in HOOKED and unoffered.NAMES[namespace]
    module = importlib.import_module(f"kcompile.{namespace}")
    for name, reason in unoffered.NAMES[namespace].items():
        assert name not in vars(module), f"{name} is offered and listed as missing"
        with pytest.raises(NotImplementedError) as info:
            getattr(module, name)
        assert f"keras.{namespace}.{name}" in str(info.value) and reason in str(info.value)


@pytest.mark.parametrize("namespace", HOOKED)
def test_a_name_keras_lacks_too_is_an_attribute_error(namespace):
    module = importlib.import_module(f"kcompile.{namespace}")
    assert not hasattr(module, "NoSuchKerasName")
