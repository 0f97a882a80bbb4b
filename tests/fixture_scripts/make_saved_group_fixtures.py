"""Run ``saved_group_programs`` on Keras 3 (JAX backend) and store, for each program's
model, the HDF5 groups of its ``.weights.h5`` file (and of its ``.keras`` file's
``model.weights.h5``): each group's attributes (Keras's ``name`` of the object it holds)
and its datasets' shapes, in ``keras_fixtures/saved_groups.json`` (which records the
Keras version). Run it where Keras is installed::

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_saved_group_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from saved_group_programs import PROGRAMS, WHOLE_FILE, saved_groups  # noqa: E402


def main() -> None:
    record: dict = {"keras_version": keras.__version__, "programs": {}}
    for name, program in PROGRAMS.items():
        with tempfile.TemporaryDirectory() as directory:
            model = program(keras)
            record["programs"][name] = saved_groups(model, directory, name in WHOLE_FILE)
    path = TESTS / "keras_fixtures" / "saved_groups.json"
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
