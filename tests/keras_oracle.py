"""Real Keras 3 (JAX backend) in a venv of its own, for the tests that hand it a file
kcompile wrote: ``KERAS_ORACLE_PYTHON``, else ``/work/kenv/bin/python``. kcompile never
imports Keras; without that interpreter these tests skip."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

KERAS_PYTHON = Path(os.environ.get("KERAS_ORACLE_PYTHON", "/work/kenv/bin/python"))


def run_in_keras(script: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -c script *args`` in Keras's interpreter (its output captured, as text),
    or the test skipped when there is none."""
    if not KERAS_PYTHON.exists():
        pytest.skip(f"no Keras to hand the file to ({KERAS_PYTHON})")
    return subprocess.run(
        [str(KERAS_PYTHON), "-c", script, *args],
        capture_output=True,
        text=True,
        env={"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin"},
        cwd=cwd,
    )
