"""Errors as Keras shows them: public exception types from one module, and tracebacks
that end at the user's own line (kcompile's frames filtered, as Keras 3 filters its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import numpy as np
import pytest

import kcompile
from kcompile import config, errors, layers, ops
from kcompile.utils import traceback_utils

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _filtering_as_users_have_it():
    config.enable_traceback_filtering()
    yield
    config.disable_traceback_filtering()


def _frames(error: BaseException) -> list[str]:
    return [f.filename for f in traceback.extract_tb(error.__traceback__)]


def _own(filename: str) -> bool:
    return traceback_utils._is_own(filename)


def test_every_public_type_is_named_in_the_errors_module():
    assert errors.__all__
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert cls.__module__ == "kcompile.errors"
        assert issubclass(cls, ValueError | TypeError | RuntimeError), name
    # The label-range error a user meets first is a ValueError, named publicly.
    assert issubclass(errors.FeedError, ValueError)
    assert kcompile.errors.FeedError is errors.FeedError


def test_layer_call_error_keeps_only_the_users_frames():
    x = kcompile.Input(shape=(4,))
    y = layers.Dense(3)(x)
    with pytest.raises(ValueError, match="layer 'add'") as info:
        layers.Add()([y, x])
    frames = _frames(info.value)
    assert frames[0] == __file__
    own = [f for f in frames if _own(f)]
    assert own == [traceback_utils.__file__]  # only the re-raise's line


def test_users_frames_inside_the_library_are_kept():
    """A custom layer's ``call`` runs inside kcompile's tracing: its line stays."""

    class Broken(layers.Layer):
        def call(self, x):
            return ops.matmul(x, np.ones((5, 2), "float32"))  # 4 columns meet 5 rows

    with pytest.raises(Exception) as info:
        Broken()(kcompile.Input(shape=(4,)))
    frames = _frames(info.value)
    assert frames.count(__file__) >= 2  # the test's call and Broken.call
    assert sum(_own(f) for f in frames) <= 2


def test_disabling_the_filter_shows_the_library_frames():
    x = kcompile.Input(shape=(4,))
    y = layers.Dense(3)(x)
    config.disable_traceback_filtering()
    try:
        assert not config.is_traceback_filtering_enabled()
        with pytest.raises(ValueError) as info:
            layers.Add()([y, x])
    finally:
        config.enable_traceback_filtering()
    assert sum(_own(f) for f in _frames(info.value)) > 2


def test_ops_on_arrays_filter_too():
    with pytest.raises(ValueError) as info:
        ops.matmul(np.ones((2, 3), "float32"), np.ones((4, 5), "float32"))
    assert [f for f in _frames(info.value) if _own(f)] == [traceback_utils.__file__]


def test_a_script_error_prints_one_message_line_after_the_users_frames(tmp_path):
    script = tmp_path / "user_program.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import kcompile as keras
            from kcompile import layers

            model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3)])
            model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
            model.fit(np.ones((10, 4), "float32"), np.arange(10), verbose=0)
            """
        )
    )
    # The script imports this checkout's kcompile, whatever install the interpreter has.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("kcompile.errors.FeedError: input 'y'"), lines[-1]
    files = [line.split('"')[1] for line in lines if line.startswith('  File "')]
    assert files[0] == str(script)
    assert [f for f in files if _own(f)] == [traceback_utils.__file__], run.stderr
