"""Pretrained weights for the applications: Keras's own weight files, found where Keras
keeps them, and read as Keras reads them.

``weights="imagenet"`` looks for Keras's file in Keras's cache (``~/.keras/models/<file>``,
or ``$KERAS_HOME/models``) and downloads it there when it is missing, as
``keras.utils.get_file`` does; with no network the error names the URL and the exact path
to put the file at. Those files are Keras 2's HDF5 layout (``.h5``: a group per layer with
weights, loaded by position, not by name), which needs h5py: the ``keras-files`` extra.
"""

from __future__ import annotations

import os
from typing import Any

from kcompile.saving.legacy_h5_format import is_legacy_h5, load_legacy_weights, require_h5py
from kcompile.utils import file_utils


def exists(path: Any) -> bool:
    """Keras's ``file_utils.exists`` for a local path (the applications' ``weights=``)."""
    try:
        return os.path.exists(os.fspath(path))
    except TypeError:
        return False


def get_file(fname: str, origin: str, cache_subdir: str = "models", **kwargs: Any) -> str:
    """The path of Keras's file ``fname`` in Keras's cache, downloaded from ``origin`` when
    it is not there (``keras.utils.get_file``). An HDF5 file is refused before any
    download when h5py is missing: it could not be read."""
    if is_legacy_h5(fname):
        require_h5py()
    return file_utils.get_file(fname, origin, cache_subdir=cache_subdir, **kwargs)


def load_weights(model: Any, path: Any) -> None:
    """``path``'s weights into ``model``: a Keras 2 HDF5 file (``.h5``, ``.hdf5``) as Keras
    reads one (``legacy_h5_format.load_weights_from_hdf5_group``); any other file through
    ``model.load_weights``."""
    path = os.fspath(path)
    if not is_legacy_h5(path):
        model.load_weights(path)
        return
    load_legacy_weights(model, path)
